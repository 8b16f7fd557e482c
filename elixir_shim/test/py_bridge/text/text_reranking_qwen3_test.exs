defmodule PyBridge.Text.TextRerankingQwen3Test do
  use ExUnit.Case, async: false

  import PyBridge.TestSupport

  @moduletag :model

  @pairs [
    {"what is the capital of france", "paris is the capital of france"},
    {"what is the capital of france", "the cat sat on the mat"},
    {"café", "zürich 東京"},
    {"yes", ""}
  ]

  setup_all do
    dir = tiny_model("qwen3_causal_lm")
    {:ok, model_info} = PyBridge.load_model({:local, dir})
    {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})
    pairs = Enum.flat_map(@pairs, &Tuple.to_list/1)

    # The Qwen3-Reranker model card's recipe run with transformers, one pair
    # at a time: with the default prompt, then with another task description;
    # and the ids of "yes" and "no" in the vocabulary.
    expected =
      Task.async(fn ->
        reference(
          ["rerank", "--model", dir | pairs] ++
            ["---", "rerank", "--model", dir, "--task", "Find recipes" | pairs] ++
            ["---", "token_ids", "--model", dir, "yes", "no"]
        )
      end)

    name = __MODULE__.Serving
    serving = PyBridge.Text.text_reranking_qwen3(model_info, tokenizer)

    start_supervised!(
      {PyBridge.Serving, serving: serving, name: name, batch_size: 4, batch_timeout: 20}
    )

    [default, recipes, [yes, no]] = Task.await(expected, :infinity)

    %{
      name: name,
      model_info: model_info,
      tokenizer: tokenizer,
      default: default,
      recipes: recipes,
      yes: yes,
      no: no
    }
  end

  describe "text_reranking_qwen3/3" do
    test "a list of pairs gives one map holding P(yes) for each, as the model card computes",
         ctx do
      assert %{scores: scores} = PyBridge.Serving.batched_run(ctx.name, @pairs)
      assert length(scores) == length(@pairs)

      for {{query, document}, score, expected} <- Enum.zip([@pairs, scores, ctx.default]) do
        assert %{query: ^query, document: ^document, score: value} = score
        assert Map.keys(score) == [:document, :query, :score]
        assert value >= 0.0 and value <= 1.0
        assert_in_delta value, expected.score, 1.0e-5
      end
    end

    test "a single pair gives %{scores: map}", ctx do
      [{query, document} = pair | _] = @pairs

      assert %{scores: %{query: ^query, document: ^document, score: score}} =
               PyBridge.Serving.batched_run(ctx.name, pair)

      assert_in_delta score, hd(ctx.default).score, 1.0e-5
    end

    test "task_description, yes_token and no_token reach the prompt and the scores", ctx do
      # With the answers swapped, the serving's P("yes") is the model's P("no").
      serving =
        PyBridge.Text.text_reranking_qwen3(ctx.model_info, ctx.tokenizer,
          task_description: "Find recipes",
          yes_token: ctx.no,
          no_token: ctx.yes
        )

      %{scores: scores} = PyBridge.Serving.run(serving, @pairs)

      for {%{score: score}, expected} <- Enum.zip(scores, ctx.recipes) do
        assert_in_delta score, 1.0 - expected.score, 1.0e-5
      end
    end

    test "a document longer than the model's maximum is truncated, not refused", ctx do
      long = String.duplicate("paris is the capital of france ", 60)

      assert %{scores: %{score: score}} =
               PyBridge.Serving.batched_run(ctx.name, {"capital of france", long})

      assert score >= 0.0 and score <= 1.0
    end
  end

  describe "input validation, in the caller" do
    test "a string is neither a pair nor a list, worded as Bumblebee words it", ctx do
      assert_raise ArgumentError,
                   ~s/expected a query-document tuple {query, doc} or a list of such tuples, got: "query"/,
                   fn -> PyBridge.Serving.batched_run(ctx.name, "query") end
    end

    test "a bad element of a list raises", ctx do
      assert_raise ArgumentError,
                   ~s/expected a query-document tuple {query, doc} where both are strings, got: {"q", nil}/,
                   fn -> PyBridge.Serving.batched_run(ctx.name, [{"q", "d"}, {"q", nil}]) end
    end

    test "invalid UTF-8 raises", ctx do
      assert_raise ArgumentError, ~r/where both are valid UTF-8 strings/, fn ->
        PyBridge.Serving.batched_run(ctx.name, {"q", <<0xC3>>})
      end
    end
  end

  describe "text_reranking_qwen3/3 options" do
    test "defaults are the Qwen3-Reranker prompt; token ids are left to the tokenizer", ctx do
      options = PyBridge.Text.text_reranking_qwen3(ctx.model_info, ctx.tokenizer).options

      assert options.task_description ==
               "Given a web search query, retrieve relevant passages that answer the query"

      assert options.instruction_prefix =~ ~r/^<\|im_start\|>system\nJudge whether the Document/

      assert options.instruction_suffix ==
               "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"

      assert options.yes_token == nil and options.no_token == nil
    end

    test "unknown options and bad values raise", ctx do
      assert_raise ArgumentError, ~r/unknown keys \[:top_k\]/, fn ->
        PyBridge.Text.text_reranking_qwen3(ctx.model_info, ctx.tokenizer, top_k: 1)
      end

      assert_raise ArgumentError, ~r/expected :yes_token to be a token id/, fn ->
        PyBridge.Text.text_reranking_qwen3(ctx.model_info, ctx.tokenizer, yes_token: "yes")
      end

      assert_raise ArgumentError, ~r/expected :task_description to be a string/, fn ->
        PyBridge.Text.text_reranking_qwen3(ctx.model_info, ctx.tokenizer, task_description: 1)
      end
    end

    test "a model that is not a causal language model is refused" do
      dir = tiny_model("bert_masked_lm")
      {:ok, model_info} = PyBridge.load_model({:local, dir})
      {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})

      assert_raise ArgumentError,
                   "expected a model with architecture :for_causal_language_modeling, got :for_masked_language_modeling",
                   fn -> PyBridge.Text.text_reranking_qwen3(model_info, tokenizer) end
    end
  end
end
