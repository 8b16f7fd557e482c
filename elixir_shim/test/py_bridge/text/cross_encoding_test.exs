defmodule PyBridge.Text.CrossEncodingTest do
  use ExUnit.Case, async: false

  import PyBridge.TestSupport

  @moduletag :model

  # The last pair is far longer than the model's 128 positions.
  @long String.duplicate("paris is the capital of france ", 60)
  @pairs [
    {"what is the capital of france", "paris is the capital of france"},
    {"Café in Zürich", "naïve 東京"},
    {"", ""},
    {@long, "the capital of france"}
  ]

  setup_all do
    dir = tiny_model("bert_cross_encoder")
    {:ok, model_info} = PyBridge.load_model({:local, dir})
    {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})

    # transformers' own logit for each pair, one pair at a time, truncated
    # as its tokenizer truncates by default. Computed while the worker starts.
    expected =
      Task.async(fn ->
        reference(["cross_encoding", "--model", dir | Enum.flat_map(@pairs, &Tuple.to_list/1)])
      end)

    name = __MODULE__.Serving
    serving = PyBridge.Text.cross_encoding(model_info, tokenizer)

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

  describe "cross_encoding/3" do
    test "scores are the raw logits transformers computes, long pairs truncated", ctx do
      results = PyBridge.Serving.batched_run(ctx.name, @pairs)

      assert length(results) == length(@pairs)

      for {result, expected} <- Enum.zip(results, ctx.expected) do
        assert Map.keys(result) == [:score]
        assert is_float(result.score)
        assert_in_delta result.score, expected, 1.0e-5
      end
    end

    test "a pair gives one map, a list of one pair a list of one map", ctx do
      [pair | _] = @pairs
      [expected | _] = ctx.expected

      assert %{score: score} = PyBridge.Serving.batched_run(ctx.name, pair)
      assert_in_delta score, expected, 1.0e-5
      assert [%{score: score}] = PyBridge.Serving.batched_run(ctx.name, [pair])
      assert_in_delta score, expected, 1.0e-5
    end
  end

  describe "input validation, in the caller" do
    test "a single text is not a pair", ctx do
      assert_raise ArgumentError,
                   ~s/invalid input, expected a {string, string} pair, got: "just one text"/,
                   fn -> PyBridge.Serving.batched_run(ctx.name, "just one text") end
    end

    test "a bad pair in a list names the batch", ctx do
      assert_raise ArgumentError,
                   ~s/invalid input in the batch, expected a {string, string} pair, got: {"a", 1}/,
                   fn -> PyBridge.Serving.batched_run(ctx.name, [{"a", "b"}, {"a", 1}]) end
    end

    test "invalid UTF-8 is refused", ctx do
      assert_raise ArgumentError,
                   ~r/^invalid input, expected a pair of valid UTF-8 strings/,
                   fn ->
                     PyBridge.Serving.batched_run(ctx.name, {"a", <<0xFF>>})
                   end
    end
  end

  describe "cross_encoding/3 options" do
    test "unknown options raise", ctx do
      assert_raise ArgumentError, ~r/unknown keys \[:top_k\]/, fn ->
        PyBridge.Text.cross_encoding(ctx.model_info, ctx.tokenizer, top_k: 1)
      end
    end

    test ":compile needs both keys", ctx do
      assert_raise ArgumentError, ~r/missing keys \[:sequence_length\]/, fn ->
        PyBridge.Text.cross_encoding(ctx.model_info, ctx.tokenizer, compile: [batch_size: 2])
      end
    end

    test "the Bumblebee options are accepted and :compile sets the batch size", ctx do
      serving =
        PyBridge.Text.cross_encoding(ctx.model_info, ctx.tokenizer,
          compile: [batch_size: 8, sequence_length: 64],
          defn_options: [compiler: :none],
          preallocate_params: true
        )

      assert serving.batch_size == 8
      assert serving.options.sequence_length == 64
    end

    test "a model without a sequence classification head is refused" do
      dir = tiny_model("bert_token_classification")
      {:ok, model_info} = PyBridge.load_model({:local, dir})
      {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})

      assert_raise ArgumentError,
                   "expected a model with architecture :for_sequence_classification, got :for_token_classification",
                   fn -> PyBridge.Text.cross_encoding(model_info, tokenizer) end
    end
  end
end
