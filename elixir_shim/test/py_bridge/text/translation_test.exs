defmodule PyBridge.Text.TranslationTest do
  use ExUnit.Case, async: false

  import PyBridge.TestSupport

  @moduletag :model

  @texts ["the cat sat on the mat", "hello", "i love paris"]

  # The tiny NLLB (M2M100) model has four language tokens; its expected
  # translations come from `model.generate` run directly on each text alone,
  # with src_lang set and the decoder started with [start, target]
  # (tests/reference.py generation --source --target).
  setup_all do
    dir = tiny_model("nllb_translation")
    {:ok, model_info} = PyBridge.load_model({:local, dir})
    {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})
    {:ok, config} = PyBridge.load_generation_config({:local, dir})
    config = PyBridge.configure(config, max_new_tokens: 8)
    serving = PyBridge.Text.translation(model_info, tokenizer, config)
    start_supervised!({PyBridge.Serving, serving: serving, name: TranslationTest, batch_size: 4})

    [eng_fra, deu_spa] =
      reference(
        ["generation", "--model", dir, "--max-new-tokens", "8"] ++
          ["--source", "eng_Latn", "--target", "fra_Latn" | @texts] ++
          ["---", "generation", "--model", dir, "--max-new-tokens", "8"] ++
          ["--source", "deu_Latn", "--target", "spa_Latn" | @texts]
      )

    %{
      model_info: model_info,
      tokenizer: tokenizer,
      config: config,
      eng_fra: eng_fra,
      deu_spa: deu_spa
    }
  end

  defp input(text, source, target),
    do: %{text: text, source_language_token: source, target_language_token: target}

  describe "translation/4" do
    test "translations equal transformers' generate, alone and batched", ctx do
      for {source, target, expected} <- [
            {"eng_Latn", "fra_Latn", ctx.eng_fra},
            {"deu_Latn", "spa_Latn", ctx.deu_spa}
          ] do
        inputs = Enum.map(@texts, &input(&1, source, target))
        batched = PyBridge.Serving.batched_run(TranslationTest, inputs)
        longest = expected |> Enum.map(& &1.input) |> Enum.max()

        for {one_input, many, expected} <- Enum.zip([inputs, batched, expected]) do
          %{results: [one]} = PyBridge.Serving.batched_run(TranslationTest, one_input)
          assert one.text == expected.text

          assert one.token_summary == %{
                   input: expected.input,
                   output: expected.output,
                   padding: 0
                 }

          assert many == %{
                   results: [
                     %{
                       one
                       | token_summary: %{one.token_summary | padding: longest - expected.input}
                     }
                   ]
                 }
        end
      end

      # The source language changes the encoder input, hence the output.
      refute Enum.map(ctx.eng_fra, & &1.text) == Enum.map(ctx.deu_spa, & &1.text)
    end

    test "streaming gives the same text in chunks, then {:done, summary}", ctx do
      serving =
        PyBridge.Text.translation(ctx.model_info, ctx.tokenizer, ctx.config,
          stream: true,
          stream_done: true
        )

      [expected | _] = ctx.eng_fra

      events =
        PyBridge.Serving.run(serving, input(hd(@texts), "eng_Latn", "fra_Latn")) |> Enum.to_list()

      {chunks, [done]} = Enum.split(events, -1)
      assert Enum.join(chunks) == expected.text

      assert done ==
               {:done,
                %{token_summary: %{input: expected.input, output: expected.output, padding: 0}}}
    end

    test "a list with several source languages raises, as in Bumblebee" do
      inputs = [input("hello", "eng_Latn", "fra_Latn"), input("hello", "deu_Latn", "fra_Latn")]

      assert_raise ArgumentError,
                   ~r/only when all of them have the same :source_language_token/,
                   fn ->
                     PyBridge.Serving.batched_run(TranslationTest, inputs)
                   end
    end

    test "a token the tokenizer does not know fails the request in the worker" do
      error =
        assert_raise PyBridge.Error, fn ->
          PyBridge.Serving.batched_run(TranslationTest, input("hello", "eng_Latn", "xx_Xxxx"))
        end

      assert error.type == :bad_input
      assert error.message =~ ~s(the specified language token 'xx_Xxxx' is not a valid token)
    end

    test "inputs, options and the architecture are validated", ctx do
      assert_raise ArgumentError,
                   ~r/expected the input map to have :text, :source_language_token/,
                   fn ->
                     PyBridge.Serving.batched_run(TranslationTest, %{text: "hello"})
                   end

      assert_raise ArgumentError, ~r/invalid input, expected a map, got: "hello"/, fn ->
        PyBridge.Serving.batched_run(TranslationTest, "hello")
      end

      assert_raise ArgumentError, ~r/unknown keys \[:top_k\]/, fn ->
        PyBridge.Text.translation(ctx.model_info, ctx.tokenizer, ctx.config, top_k: 1)
      end

      {:ok, gpt2} = PyBridge.load_model({:local, tiny_model("gpt2_causal_lm")})

      assert_raise ArgumentError,
                   ~r/expected a model with architecture :for_conditional_generation/,
                   fn -> PyBridge.Text.translation(gpt2, ctx.tokenizer, ctx.config) end
    end
  end
end
