defmodule PyBridge.Text.GenerationTest do
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import PyBridge.TestSupport

  alias PyBridge.Text.GenerationConfig

  @moduletag :model

  # Greedy output of the tiny random GPT-2 is degenerate but deterministic;
  # every expected text comes from `model.generate` run directly on each
  # prompt alone (tests/reference.py generation).
  @prompts ["the cat sat on the mat", "hello", "i love this movie and the weather is nice today"]

  setup_all do
    dir = tiny_model("gpt2_causal_lm")
    {:ok, model_info} = PyBridge.load_model({:local, dir})
    {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})
    {:ok, config} = PyBridge.load_generation_config({:local, dir})
    config = PyBridge.configure(config, max_new_tokens: 12)
    serving = PyBridge.Text.generation(model_info, tokenizer, config)
    start_supervised!({PyBridge.Serving, serving: serving, name: GenerationTest, batch_size: 4})

    # One reference process: torch is imported once.
    [expected, [long], [eos]] =
      reference(
        ["generation", "--model", dir, "--max-new-tokens", "12" | @prompts] ++
          ["---", "generation", "--model", dir, "--max-new-tokens", "400", "hello"] ++
          ["---", "token_ids", "--model", dir, "<|endoftext|>"]
      )

    %{
      dir: dir,
      model_info: model_info,
      tokenizer: tokenizer,
      config: config,
      serving: serving,
      expected: expected,
      expected_long: long,
      eos: eos
    }
  end

  describe "load_generation_config/2" do
    test "reads Bumblebee's fields from generation_config.json", ctx do
      {:ok, config} = PyBridge.load_generation_config({:local, ctx.dir})
      eos = ctx.eos

      assert %GenerationConfig{
               max_new_tokens: 20,
               max_length: nil,
               strategy: %{type: :greedy_search},
               eos_token_id: ^eos,
               pad_token_id: ^eos,
               bos_token_id: ^eos
             } = config

      # The builder suppresses the 128 lone non-UTF-8 byte tokens.
      assert length(config.suppressed_token_ids) == 128
    end

    test "falls back to config.json when there is no generation_config.json" do
      dir = tiny_model("bert_base")
      refute File.exists?(Path.join(dir, "generation_config.json"))

      assert {:ok, %GenerationConfig{pad_token_id: 0, max_new_tokens: 20}} =
               PyBridge.load_generation_config({:local, dir})
    end

    test "reads sampling and contrastive strategies as Bumblebee does" do
      data = %{"do_sample" => true, "top_k" => 0, "top_p" => 0.9, "max_length" => 50}

      assert {:ok, %{strategy: %{type: :multinomial_sampling, top_p: 0.9} = strategy} = config} =
               GenerationConfig.from_data(data)

      refute Map.has_key?(strategy, :top_k)
      assert config.max_length == 50 and config.max_new_tokens == nil

      assert {:ok, %{strategy: %{type: :contrastive_search, top_k: 4, alpha: 0.6}}} =
               GenerationConfig.from_data(%{"top_k" => 4, "penalty_alpha" => 0.6})

      assert {:ok, %{forced_token_ids: [{1, 7}]}} =
               GenerationConfig.from_data(%{"forced_decoder_ids" => [[1, 7], [2, nil]]})
    end

    test "a missing repository is an error, not a raise" do
      assert {:error, message} = PyBridge.load_generation_config({:local, "/no/such/model"})
      assert message =~ "not found"
    end
  end

  describe "configure/2" do
    test "max_new_tokens and max_length replace each other, both raise", ctx do
      config = PyBridge.configure(ctx.config, max_length: 30)
      assert {config.max_new_tokens, config.max_length} == {nil, 30}
      config = PyBridge.configure(config, max_new_tokens: 5)
      assert {config.max_new_tokens, config.max_length} == {5, nil}
      config = PyBridge.configure(config, min_length: 3)
      assert {config.min_new_tokens, config.min_length} == {nil, 3}

      assert_raise ArgumentError, ~r/only one of :max_new_tokens or :max_length/, fn ->
        PyBridge.configure(config, max_new_tokens: 1, max_length: 2)
      end

      assert_raise ArgumentError, ~r/only one of :min_new_tokens or :min_length/, fn ->
        PyBridge.configure(config, min_new_tokens: 1, min_length: 2)
      end
    end

    test "unknown attributes and malformed strategies raise", ctx do
      assert_raise ArgumentError, ~r/unexpected attribute :beams/, fn ->
        PyBridge.configure(ctx.config, beams: 4)
      end

      assert_raise ArgumentError,
                   ~r/missing keys \[:alpha\] for strategy :contrastive_search/,
                   fn ->
                     PyBridge.configure(ctx.config,
                       strategy: %{type: :contrastive_search, top_k: 4}
                     )
                   end

      assert_raise ArgumentError,
                   ~r/unexpected keys \[:top_k\] for strategy :greedy_search/,
                   fn ->
                     PyBridge.configure(ctx.config, strategy: %{type: :greedy_search, top_k: 4})
                   end

      assert %GenerationConfig{max_new_tokens: 3} =
               PyBridge.configure(GenerationConfig, max_new_tokens: 3)
    end
  end

  describe "generation/4" do
    test "the text equals transformers' generate, alone and batched", ctx do
      single = Enum.map(@prompts, &PyBridge.Serving.batched_run(GenerationTest, &1))
      batched = PyBridge.Serving.batched_run(GenerationTest, @prompts)

      for {one, many, expected} <- Enum.zip([single, batched, ctx.expected]) do
        assert %{results: [%{text: text, token_summary: summary}]} = one
        assert text == expected.text
        assert summary == %{input: expected.input, output: expected.output, padding: 0}

        assert many.results == [
                 %{
                   one_result(one)
                   | token_summary: %{summary | padding: padding_in(ctx.expected, expected)}
                 }
               ]
      end
    end

    test "the map input form, with a seed or without", ctx do
      assert %{results: [%{text: text}]} =
               PyBridge.Serving.batched_run(GenerationTest, %{text: hd(@prompts), seed: 42})

      assert %{results: [%{text: ^text}]} =
               PyBridge.Serving.batched_run(GenerationTest, %{text: hd(@prompts)})

      assert text == hd(ctx.expected).text
    end

    test "seeded sampling is reproducible", ctx do
      config = PyBridge.configure(ctx.config, strategy: %{type: :multinomial_sampling, top_k: 20})
      serving = PyBridge.Text.generation(ctx.model_info, ctx.tokenizer, config)
      inputs = for seed <- [1, 2, 3], do: %{text: "hello", seed: seed}

      first = PyBridge.Serving.run(serving, inputs)
      # The same seeds in another order and batch give the same texts.
      second = PyBridge.Serving.run(serving, Enum.reverse(inputs)) |> Enum.reverse()
      assert first == second
      assert length(Enum.uniq_by(first, &one_result(&1).text)) > 1
    end

    test "a prompt longer than the model takes is truncated, not an error" do
      long = String.duplicate("the cat sat on the mat ", 200)

      assert %{results: [%{token_summary: %{input: input, output: 12}}]} =
               PyBridge.Serving.batched_run(GenerationTest, long)

      # 512 positions, 12 of them kept for the new tokens.
      assert input == 500
    end

    test "options, architecture and inputs are validated", ctx do
      assert_raise ArgumentError, ~r/unknown keys \[:top_k\]/, fn ->
        PyBridge.Text.generation(ctx.model_info, ctx.tokenizer, ctx.config, top_k: 3)
      end

      dir = tiny_model("bert_base")
      {:ok, bert} = PyBridge.load_model({:local, dir})

      assert_raise ArgumentError, ~r/expected a model with architecture/, fn ->
        PyBridge.Text.generation(bert, ctx.tokenizer, ctx.config)
      end

      assert_raise ArgumentError, ~r/expected :pad_token_id \(or :eos_token_id/, fn ->
        config = PyBridge.configure(ctx.config, pad_token_id: nil, eos_token_id: nil)
        PyBridge.Text.generation(ctx.model_info, ctx.tokenizer, config)
      end

      assert_raise ArgumentError,
                   ~r/invalid input, expected the input map to have :text key/,
                   fn ->
                     PyBridge.Serving.batched_run(GenerationTest, %{prompt: "hi"})
                   end

      assert_raise ArgumentError,
                   ~r/invalid input in the batch, expected either a string or a map/,
                   fn ->
                     PyBridge.Serving.batched_run(GenerationTest, ["ok", 42])
                   end
    end
  end

  describe "generation/4 with stream: true" do
    test "run/2 streams chunks in order that add up to the text, then {:done, summary}", ctx do
      serving =
        PyBridge.Text.generation(ctx.model_info, ctx.tokenizer, ctx.config,
          stream: true,
          stream_done: true
        )

      for {prompt, expected} <- Enum.zip(@prompts, ctx.expected) do
        events = PyBridge.Serving.run(serving, prompt) |> Enum.to_list()

        {chunks, [done]} = Enum.split(events, -1)
        summary = %{input: expected.input, output: expected.output, padding: 0}
        assert done == {:done, %{token_summary: summary}}
        assert Enum.all?(chunks, &is_binary/1)
        assert Enum.join(chunks) == expected.text
        # Bumblebee cuts before spaces: no chunk but the last holds one after its first byte.
        for chunk <- Enum.drop(chunks, -1) do
          refute chunk |> binary_part(1, byte_size(chunk) - 1) |> String.contains?(" ")
        end
      end

      assert_raise ArgumentError, ~r/only accepts singular input when stream is enabled/, fn ->
        PyBridge.Serving.run(serving, ["a", "b"])
      end
    end

    test "without stream_done, text chunks only; a consumer that stops or dies stops the worker",
         ctx do
      config = PyBridge.configure(ctx.config, max_new_tokens: 400)
      serving = PyBridge.Text.generation(ctx.model_info, ctx.tokenizer, config, stream: true)
      name = GenerationStreamTest
      start_supervised!({PyBridge.Serving, serving: serving, name: name}, id: name)

      chunks = PyBridge.Serving.batched_run(name, "hello") |> Enum.to_list()
      assert Enum.all?(chunks, &is_binary/1)
      assert Enum.join(chunks) == ctx.expected_long.text

      previous = Logger.level()
      Logger.configure(level: :info)

      try do
        log =
          capture_log([level: :info], fn ->
            assert [_first] = PyBridge.Serving.batched_run(name, "hello") |> Enum.take(1)
            assert wait_until(fn -> idle?(name) end)

            test = self()

            # This consumer holds its stream open, blocked on its first chunk, until killed.
            {pid, monitor} =
              spawn_monitor(fn ->
                PyBridge.Serving.batched_run(name, "the cat")
                |> Stream.each(fn chunk ->
                  send(test, {:chunk, chunk})
                  Process.sleep(:infinity)
                end)
                |> Stream.run()
              end)

            assert_receive {:chunk, _}, 30_000
            Process.exit(pid, :kill)
            assert_receive {:DOWN, ^monitor, _, _, :killed}
            assert wait_until(fn -> idle?(name) end)
            # Log records travel from the worker's port after the reply.
            Process.sleep(200)
          end)

        # The worker logs how far each cancelled generation got.
        counts =
          Regex.scan(~r/generation cancelled after (\d+) of 400 new tokens/, log)
          |> Enum.map(fn [_, n] -> String.to_integer(n) end)

        assert length(counts) == 2
        assert Enum.all?(counts, &(&1 < 400))
      after
        Logger.configure(level: previous)
      end
    end
  end

  defp one_result(%{results: [result]}), do: result

  # Bumblebee pads a caller's prompts to the longest of them.
  defp padding_in(expected, item), do: Enum.max(Enum.map(expected, & &1.input)) - item.input

  defp idle?(name), do: PyBridge.Serving.Server.tables(Process.whereis(name)).batches == 0
end
