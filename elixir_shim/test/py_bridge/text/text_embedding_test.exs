defmodule PyBridge.Text.TextEmbeddingTest do
  use ExUnit.Case, async: false

  import PyBridge.TestSupport

  @moduletag :model
  @repo {:hf, "sentence-transformers/all-MiniLM-L6-v2"}

  setup_all do
    {:ok, model_info} = PyBridge.load_model(@repo)
    {:ok, tokenizer} = PyBridge.load_tokenizer(@repo)

    # sentence-transformers' all-MiniLM-L6-v2 pipeline: mean pooling over the
    # last hidden state, then L2 normalization.
    serving =
      PyBridge.Text.text_embedding(model_info, tokenizer,
        output_attribute: :hidden_state,
        output_pool: :mean_pooling,
        embedding_processor: :l2_norm
      )

    name = __MODULE__.Embeddings

    start_supervised!(
      {PyBridge.Serving, serving: serving, name: name, batch_size: 4, batch_timeout: 20}
    )

    %{name: name, model_info: model_info, tokenizer: tokenizer}
  end

  describe "batched_run/2 through a supervised worker" do
    test "embeddings match sentence-transformers' own", %{name: name, model_info: model_info} do
      texts = [
        "A man is eating food.",
        "A man is riding a horse.",
        "Ein Mann isst Brot, und es schmeckt ihm. Café crème, 東京.",
        ""
      ]

      results = PyBridge.Serving.batched_run(name, texts)
      expected = reference(["embedding", "--model", model_info.spec.path | texts])

      assert length(results) == length(texts)

      for {%{embedding: embedding}, reference} <- Enum.zip(results, expected) do
        assert PyBridge.Tensor.shape(embedding) == {384}
        assert PyBridge.Tensor.type(embedding) == {:f, 32}
        assert cosine(PyBridge.Tensor.to_list(embedding), reference) >= 0.99999
      end
    end

    test "similar sentences rank as sentence-transformers ranks them", %{
      name: name,
      model_info: model_info
    } do
      query = "How do I bake bread at home?"

      corpus = [
        "The stock market fell sharply today.",
        "A simple recipe for homemade sourdough loaves.",
        "Kneading dough and baking it in your own oven.",
        "Cats sleep for most of the day.",
        "Tips for growing tomatoes in the garden."
      ]

      [%{embedding: q} | docs] = PyBridge.Serving.batched_run(name, [query | corpus])

      ours =
        rank(PyBridge.Tensor.to_list(q), Enum.map(docs, &PyBridge.Tensor.to_list(&1.embedding)))

      [ref_q | ref_docs] =
        reference(["embedding", "--model", model_info.spec.path, query | corpus])

      assert ours == rank(ref_q, ref_docs)
      # The two baking sentences come first; anything else means the model is wrong.
      assert Enum.take(ours, 2) |> Enum.sort() == [1, 2]
    end

    test "a single input gives one result, a list gives a list", %{name: name} do
      assert %{embedding: %PyBridge.Tensor{}} = PyBridge.Serving.batched_run(name, "hello")
      assert [%{embedding: _}] = PyBridge.Serving.batched_run(name, ["hello"])
    end

    test "many concurrent callers are each answered with their own embedding", %{name: name} do
      texts = for i <- 1..24, do: "sentence number #{i}"
      alone = Map.new(texts, &{&1, PyBridge.Serving.batched_run(name, &1).embedding})

      texts
      |> Task.async_stream(&{&1, PyBridge.Serving.batched_run(name, &1).embedding},
        max_concurrency: 24
      )
      |> Enum.each(fn {:ok, {text, embedding}} ->
        assert cosine(PyBridge.Tensor.to_list(embedding), PyBridge.Tensor.to_list(alone[text])) >
                 0.99999
      end)
    end

    test "texts longer than the model's maximum length are truncated, not refused", %{name: name} do
      long = String.duplicate("words and more words ", 600)
      assert %{embedding: embedding} = PyBridge.Serving.batched_run(name, long)
      assert PyBridge.Tensor.shape(embedding) == {384}
    end
  end

  describe "input validation, in the caller" do
    test "rejects a non-string", %{name: name} do
      assert_raise ArgumentError, "invalid input, expected a string, got: 123", fn ->
        PyBridge.Serving.batched_run(name, 123)
      end
    end

    test "rejects invalid UTF-8 and names the batch", %{name: name} do
      assert_raise ArgumentError,
                   ~r/^invalid input in the batch, expected a valid UTF-8 string/,
                   fn ->
                     PyBridge.Serving.batched_run(name, ["fine", <<0xFF, 0xFE>>])
                   end
    end

    test "rejects an empty list", %{name: name} do
      assert_raise ArgumentError, ~r/non-empty list/, fn ->
        PyBridge.Serving.batched_run(name, [])
      end
    end
  end

  describe "text_embedding/3 options" do
    test "unknown options raise", %{model_info: model_info, tokenizer: tokenizer} do
      assert_raise ArgumentError, ~r/unknown keys \[:pool\]/, fn ->
        PyBridge.Text.text_embedding(model_info, tokenizer, pool: :mean)
      end
    end

    test "a bad output_pool raises with the allowed values", %{
      model_info: model_info,
      tokenizer: tokenizer
    } do
      assert_raise ArgumentError, ~r/expected :output_pool to be one of nil, :mean_pooling/, fn ->
        PyBridge.Text.text_embedding(model_info, tokenizer, output_pool: :max_pooling)
      end
    end

    test ":compile needs both keys", %{model_info: model_info, tokenizer: tokenizer} do
      assert_raise ArgumentError, ~r/missing keys \[:sequence_length\]/, fn ->
        PyBridge.Text.text_embedding(model_info, tokenizer, compile: [batch_size: 4])
      end
    end
  end

  defp rank(query, docs) do
    docs
    |> Enum.with_index()
    |> Enum.sort_by(fn {doc, _} -> -cosine(query, doc) end)
    |> Enum.map(&elem(&1, 1))
  end
end
