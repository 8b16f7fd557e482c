defmodule PyBridge.Text.TextClassificationTest do
  use ExUnit.Case, async: false

  import PyBridge.TestSupport

  @moduletag :model

  setup_all do
    dir = tiny_model("bert_sequence_classification_3labels")
    {:ok, model_info} = PyBridge.load_model({:local, dir})
    {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})
    %{dir: dir, model_info: model_info, tokenizer: tokenizer}
  end

  describe "text_classification/3" do
    test "labels and scores equal what transformers computes, sorted and cut at top_k", ctx do
      serving = PyBridge.Text.text_classification(ctx.model_info, ctx.tokenizer, top_k: 2)
      texts = ["the cat sat on the mat", "I love this movie", "naïve café in zürich"]

      results = PyBridge.Serving.run(serving, texts)
      expected = reference(["classification", "--model", ctx.dir, "--top-k", "2" | texts])

      for {%{predictions: predictions}, reference} <- Enum.zip(results, expected) do
        assert length(predictions) == 2
        assert Enum.map(predictions, & &1.label) == Enum.map(reference, & &1.label)

        for {ours, theirs} <- Enum.zip(predictions, reference) do
          assert_in_delta ours.score, theirs.score, 1.0e-5
        end

        scores = Enum.map(predictions, & &1.score)
        assert scores == Enum.sort(scores, :desc)
      end
    end

    test "top_k is capped at the number of labels", ctx do
      serving = PyBridge.Text.text_classification(ctx.model_info, ctx.tokenizer, top_k: 10)
      assert %{predictions: predictions} = PyBridge.Serving.run(serving, "hello")
      assert length(predictions) == map_size(ctx.model_info.spec.id_to_label)
    end

    test "the model spec carries the labels and the architecture", ctx do
      assert ctx.model_info.spec.architecture == :for_sequence_classification
      assert ctx.model_info.spec.hf_architecture == "BertForSequenceClassification"
      assert map_size(ctx.model_info.spec.id_to_label) == 3
    end

    test "a model without a classification head is refused", _ctx do
      dir = tiny_model("bert_base")
      {:ok, model_info} = PyBridge.load_model({:local, dir})
      {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})

      assert_raise ArgumentError,
                   ~r/expected a model with architecture :for_sequence_classification/,
                   fn ->
                     PyBridge.Text.text_classification(model_info, tokenizer)
                   end
    end

    test "a pair input is validated", ctx do
      serving = PyBridge.Text.text_classification(ctx.model_info, ctx.tokenizer)

      assert_raise ArgumentError, ~r/expected a string or a \{string, string\} tuple/, fn ->
        PyBridge.Serving.run(serving, {"only one", 2})
      end
    end
  end
end
