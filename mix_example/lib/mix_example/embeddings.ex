defmodule MixExample.Embeddings do
  @moduledoc """
  The one place this application names its model and serving constructor.

  Today the model runs in a PyBridge worker. The day you want Bumblebee to
  run it natively, this module and the child spec in
  `MixExample.Application` are the whole change:

      # bridge (today)                          # native (after the switch)
      {:ok, info} = PyBridge.load_model(repo)   {:ok, info} = Bumblebee.load_model(repo)
      {:ok, tok} = PyBridge.load_tokenizer(repo) {:ok, tok} = Bumblebee.load_tokenizer(repo)
      PyBridge.Text.text_embedding(info, tok,    Bumblebee.Text.text_embedding(info, tok,
        ...same options...)                        ...same options...)
      {PyBridge.Serving, serving: ..., ...}     {Nx.Serving, serving: ..., ...}
      PyBridge.Serving.batched_run(name, x)     Nx.Serving.batched_run(name, x)

  Results have the same shape either way: `%{embedding: tensor}`.
  """

  @repository {:hf, "sentence-transformers/all-MiniLM-L6-v2"}

  @doc "The name callers use with `PyBridge.Serving.batched_run/2`."
  def name, do: __MODULE__

  @doc """
  Builds the embedding serving: mean pooling over the last hidden state,
  L2-normalized, as sentence-transformers does for all-MiniLM-L6-v2.
  """
  @spec serving() :: PyBridge.Serving.t()
  def serving do
    {:ok, model_info} = PyBridge.load_model(@repository)
    {:ok, tokenizer} = PyBridge.load_tokenizer(@repository)

    PyBridge.Text.text_embedding(model_info, tokenizer,
      output_attribute: :hidden_state,
      output_pool: :mean_pooling,
      embedding_processor: :l2_norm
    )
  end

  @doc "Embeds one text or a list of texts, as lists of floats."
  @spec embed(String.t() | [String.t()]) :: [float()] | [[float()]]
  def embed(texts) do
    case PyBridge.Serving.batched_run(name(), texts) do
      results when is_list(results) -> Enum.map(results, &to_floats/1)
      result -> to_floats(result)
    end
  end

  # Works whether the embedding is an Nx tensor (when the app has Nx) or a
  # PyBridge.Tensor (when it does not).
  defp to_floats(%{embedding: %PyBridge.Tensor{} = tensor}), do: PyBridge.Tensor.to_list(tensor)
  defp to_floats(%{embedding: tensor}), do: apply(Nx, :to_flat_list, [tensor])
end
