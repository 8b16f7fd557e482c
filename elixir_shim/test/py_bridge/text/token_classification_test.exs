defmodule PyBridge.Text.TokenClassificationTest do
  use ExUnit.Case, async: false

  import PyBridge.TestSupport

  @moduletag :model

  # "cafés" and "playing" are several tokens each; the accents and CJK make
  # UTF-8 byte offsets differ from character offsets.
  @texts [
    "John Smith lives in Zürich, cafés playing",
    "Café in Zürich, naïve 東京!",
    "mary visited rome",
    ""
  ]

  setup_all do
    dir = tiny_model("bert_token_classification")
    {:ok, model_info} = PyBridge.load_model({:local, dir})
    {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})

    # transformers' token-classification pipeline on each text, its
    # character offsets turned into UTF-8 byte offsets. Its strategies
    # "none", "simple" and "first" are Bumblebee's nil, :same and :word_first.
    expected =
      Task.async(fn ->
        reference(
          ["token_classification", "--model", dir | @texts] ++
            ["---", "token_classification", "--aggregation", "simple", "--ignore", "O,MISC"] ++
            ["--model", dir | @texts] ++
            ["---", "token_classification", "--aggregation", "first", "--model", dir | @texts]
        )
      end)

    name = __MODULE__.Serving
    serving = PyBridge.Text.token_classification(model_info, tokenizer)

    start_supervised!(
      {PyBridge.Serving, serving: serving, name: name, batch_size: 4, batch_timeout: 20}
    )

    [tokens, same, word_first] = Task.await(expected, :infinity)

    %{
      name: name,
      model_info: model_info,
      tokenizer: tokenizer,
      tokens: tokens,
      same: same,
      word_first: word_first
    }
  end

  describe "token_classification/3" do
    test "without aggregation, one entity per token, as transformers' pipeline finds", ctx do
      results = PyBridge.Serving.batched_run(ctx.name, @texts)

      for {%{entities: entities}, expected} <- Enum.zip(results, ctx.tokens) do
        assert_same_entities(entities, expected)
      end

      # The BIO prefix stays and phrases are raw word pieces.
      [%{entities: first} | _] = results
      assert Enum.any?(first, &String.starts_with?(&1.phrase, "##"))
      assert Enum.all?(first, &(&1.label =~ ~r/^[BI]-/))
    end

    test "start and end are UTF-8 byte offsets into the text", ctx do
      text = Enum.at(@texts, 1)
      %{entities: entities} = PyBridge.Serving.batched_run(ctx.name, text)

      assert Enum.map(entities, & &1.phrase) == [
               "café",
               "in",
               "zürich",
               ",",
               "naïve",
               "東",
               "京",
               "!"
             ]

      for entity <- entities do
        # The model lowercases; the bytes keep the text's own case.
        assert String.downcase(binary_part(text, entity.start, entity.end - entity.start)) ==
                 entity.phrase
      end

      assert List.last(entities).end == byte_size(text)
      assert byte_size(text) > String.length(text)
    end

    test "aggregation: :same groups tokens and leaves out ignored labels", ctx do
      serving =
        PyBridge.Text.token_classification(ctx.model_info, ctx.tokenizer,
          aggregation: :same,
          ignored_labels: ["O", "MISC"]
        )

      results = PyBridge.Serving.run(serving, @texts)

      for {%{entities: entities}, expected} <- Enum.zip(results, ctx.same) do
        assert_same_entities(entities, expected)
        refute Enum.any?(entities, &(&1.label in ["O", "MISC"] or &1.label =~ ~r/^[BI]-/))
      end
    end

    test "aggregation: :word_first labels whole words, as the pipeline's \"first\"", ctx do
      serving =
        PyBridge.Text.token_classification(ctx.model_info, ctx.tokenizer, aggregation: :word_first)

      results = PyBridge.Serving.run(serving, @texts)

      for {%{entities: entities}, expected} <- Enum.zip(results, ctx.word_first) do
        assert Enum.map(entities, &Map.delete(&1, :score)) ==
                 Enum.map(expected, &Map.delete(&1, :score))

        for {ours, theirs} <- Enum.zip(entities, expected),
            # The pipeline scores a group by the mean over its words,
            # Bumblebee over its tokens: they agree on a one-word entity.
            not String.contains?(ours.phrase, " ") do
          assert_in_delta ours.score, theirs.score, 1.0e-5
        end
      end

      # "cafés" is two word pieces and comes back as one word.
      assert [%{entities: entities} | _] = results
      assert Enum.any?(entities, &String.contains?(&1.phrase, "cafés"))
    end

    test "a single text gives one map, a list a list", ctx do
      assert %{entities: [_ | _]} = PyBridge.Serving.batched_run(ctx.name, "mary visited rome")

      assert [%{entities: [_ | _]}] =
               PyBridge.Serving.batched_run(ctx.name, ["mary visited rome"])
    end

    test "a text longer than the model's maximum is truncated, not refused", ctx do
      text = String.duplicate("mary visited rome. ", 100)
      assert %{entities: entities} = PyBridge.Serving.batched_run(ctx.name, text)

      assert entities != []
      # 126 tokens (128 less [CLS] and [SEP]) reach only part of the text.
      assert Enum.max_by(entities, & &1.end).end < div(byte_size(text), 2)

      for entity <- entities do
        assert String.downcase(binary_part(text, entity.start, entity.end - entity.start)) ==
                 entity.phrase
      end
    end
  end

  describe "input validation, in the caller" do
    test "a pair is not a text", ctx do
      assert_raise ArgumentError, ~s/invalid input, expected a string, got: {"a", "b"}/, fn ->
        PyBridge.Serving.batched_run(ctx.name, {"a", "b"})
      end
    end

    test "a bad item in a list names the batch", ctx do
      assert_raise ArgumentError, "invalid input in the batch, expected a string, got: 1", fn ->
        PyBridge.Serving.batched_run(ctx.name, ["fine", 1])
      end
    end
  end

  describe "token_classification/3 options" do
    test "unknown options raise", ctx do
      assert_raise ArgumentError, ~r/unknown keys \[:top_k\]/, fn ->
        PyBridge.Text.token_classification(ctx.model_info, ctx.tokenizer, top_k: 1)
      end
    end

    test "an unknown aggregation raises with the allowed values", ctx do
      assert_raise ArgumentError,
                   "expected :aggregation to be one of nil, :same, :word_first, :word_average, :word_max, got: :simple",
                   fn ->
                     PyBridge.Text.token_classification(ctx.model_info, ctx.tokenizer,
                       aggregation: :simple
                     )
                   end
    end

    test "scores_function and ignored_labels are checked", ctx do
      assert_raise ArgumentError, ~r/expected :scores_function to be one of/, fn ->
        PyBridge.Text.token_classification(ctx.model_info, ctx.tokenizer, scores_function: :relu)
      end

      assert_raise ArgumentError, ~r/expected :ignored_labels to be a list of strings/, fn ->
        PyBridge.Text.token_classification(ctx.model_info, ctx.tokenizer, ignored_labels: [:o])
      end
    end

    test "the options reach the worker", ctx do
      serving =
        PyBridge.Text.token_classification(ctx.model_info, ctx.tokenizer,
          aggregation: :word_max,
          ignored_labels: [],
          scores_function: :sigmoid,
          compile: [batch_size: 2, sequence_length: [16, 32]]
        )

      assert serving.task == :token_classification

      assert serving.options == %{
               aggregation: :word_max,
               ignored_labels: [],
               scores_function: :sigmoid,
               sequence_length: [16, 32]
             }

      assert serving.batch_size == 2
    end

    test "a model without a token classification head is refused" do
      dir = tiny_model("bert_masked_lm")
      {:ok, model_info} = PyBridge.load_model({:local, dir})
      {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})

      assert_raise ArgumentError,
                   "expected a model with architecture :for_token_classification, got :for_masked_language_modeling",
                   fn -> PyBridge.Text.token_classification(model_info, tokenizer) end
    end
  end

  defp assert_same_entities(entities, expected) do
    assert Enum.map(entities, &Map.delete(&1, :score)) ==
             Enum.map(expected, &Map.delete(&1, :score))

    for {ours, theirs} <- Enum.zip(entities, expected) do
      assert is_float(ours.score)
      assert_in_delta ours.score, theirs.score, 1.0e-5
    end
  end
end
