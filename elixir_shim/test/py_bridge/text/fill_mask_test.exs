defmodule PyBridge.Text.FillMaskTest do
  use ExUnit.Case, async: false

  import PyBridge.TestSupport

  @moduletag :model

  @texts ["paris is the [MASK] of france", "[MASK]", "café in zürich is [MASK]!", "東[MASK]"]
  # The mask comes first, so it survives the cut to 128 tokens.
  @long "[MASK] " <> String.duplicate("the cat sat on the mat ", 60)

  setup_all do
    dir = tiny_model("bert_masked_lm")
    {:ok, model_info} = PyBridge.load_model({:local, dir})
    {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})

    # transformers' fill-mask pipeline, top 3, leading whitespace trimmed.
    expected =
      Task.async(fn -> reference(["fill_mask", "--model", dir, "--top-k", "3" | @texts]) end)

    name = __MODULE__.Serving
    serving = PyBridge.Text.fill_mask(model_info, tokenizer, top_k: 3)

    start_supervised!(
      {PyBridge.Serving, serving: serving, name: name, batch_size: 4, batch_timeout: 20}
    )

    %{
      name: name,
      model_info: model_info,
      tokenizer: tokenizer,
      expected: Task.await(expected, :infinity)
    }
  end

  describe "fill_mask/3" do
    test "predictions are transformers' pipeline's, highest first, top_k of them", ctx do
      results = PyBridge.Serving.batched_run(ctx.name, @texts)

      for {%{predictions: predictions}, expected} <- Enum.zip(results, ctx.expected) do
        assert length(predictions) == 3
        assert Enum.map(predictions, & &1.token) == Enum.map(expected, & &1.token)

        for {ours, theirs} <- Enum.zip(predictions, expected) do
          assert Map.keys(ours) == [:score, :token]
          assert_in_delta ours.score, theirs.score, 1.0e-5
        end

        scores = Enum.map(predictions, & &1.score)
        assert scores == Enum.sort(scores, :desc)
      end
    end

    test "a single text gives one map, a list a list", ctx do
      [text | _] = @texts
      assert %{predictions: [_, _, _]} = PyBridge.Serving.batched_run(ctx.name, text)
      assert [%{predictions: [_, _, _]}] = PyBridge.Serving.batched_run(ctx.name, [text])
    end

    test "a text longer than the model's maximum is truncated, not refused", ctx do
      assert %{predictions: [_, _, _]} = PyBridge.Serving.batched_run(ctx.name, @long)
    end

    test "a text whose mask is cut off fails alone, its batch neighbour is answered", ctx do
      # batch_size 2 and a batch timeout longer than the callers wait: the two
      # requests can only be answered if they ran in one batch.
      name = __MODULE__.Pair
      serving = PyBridge.Text.fill_mask(ctx.model_info, ctx.tokenizer, top_k: 3)

      start_supervised!(
        {PyBridge.Serving, serving: serving, name: name, batch_size: 2, batch_timeout: 120_000},
        id: name
      )

      cut = String.duplicate("the cat sat on the mat ", 60) <> "[MASK]"
      [good | _] = @texts

      bad_caller =
        Task.async(fn ->
          try do
            PyBridge.Serving.batched_run(name, cut, timeout: 60_000)
          rescue
            error in PyBridge.Error -> {:raised, error}
          end
        end)

      good_caller =
        Task.async(fn -> PyBridge.Serving.batched_run(name, good, timeout: 60_000) end)

      assert {:raised, %PyBridge.Error{type: :bad_input, message: message}} =
               Task.await(bad_caller, :infinity)

      assert message =~ "cut off"
      assert %{predictions: predictions} = Task.await(good_caller, :infinity)
      assert Enum.map(predictions, & &1.token) == Enum.map(hd(ctx.expected), & &1.token)
    end
  end

  describe "input validation, in the caller" do
    test "a text without [MASK] raises, worded as Bumblebee words it", ctx do
      assert_raise ArgumentError,
                   ~s/expected exactly one occurrence of [MASK], got: 0 in "no mask here"/,
                   fn -> PyBridge.Serving.batched_run(ctx.name, "no mask here") end
    end

    test "two masks in one text of a batch raise", ctx do
      assert_raise ArgumentError,
                   ~s/expected exactly one occurrence of [MASK], got: 2 in "[MASK] and [MASK]"/,
                   fn ->
                     PyBridge.Serving.batched_run(ctx.name, ["a [MASK]", "[MASK] and [MASK]"])
                   end
    end

    test "a non-string raises before the mask is counted", ctx do
      assert_raise ArgumentError, "invalid input in the batch, expected a string, got: 7", fn ->
        PyBridge.Serving.batched_run(ctx.name, ["no mask", 7])
      end
    end
  end

  describe "fill_mask/3 options" do
    test "top_k defaults to 5 and must be a positive integer", ctx do
      assert PyBridge.Text.fill_mask(ctx.model_info, ctx.tokenizer).options.top_k == 5

      assert_raise ArgumentError, "expected :top_k to be a positive integer, got: 0", fn ->
        PyBridge.Text.fill_mask(ctx.model_info, ctx.tokenizer, top_k: 0)
      end
    end

    test "unknown options raise", ctx do
      assert_raise ArgumentError, ~r/unknown keys \[:aggregation\]/, fn ->
        PyBridge.Text.fill_mask(ctx.model_info, ctx.tokenizer, aggregation: :same)
      end
    end

    test ":compile needs both keys", ctx do
      assert_raise ArgumentError, ~r/missing keys \[:batch_size\]/, fn ->
        PyBridge.Text.fill_mask(ctx.model_info, ctx.tokenizer, compile: [sequence_length: 32])
      end
    end

    test "a model without a masked language modeling head is refused" do
      dir = tiny_model("bert_base")
      {:ok, model_info} = PyBridge.load_model({:local, dir})
      {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})

      assert_raise ArgumentError,
                   "expected a model with architecture :for_masked_language_modeling, got :base",
                   fn -> PyBridge.Text.fill_mask(model_info, tokenizer) end
    end
  end
end
