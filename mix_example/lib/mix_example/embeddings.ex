defmodule MixExample.Embeddings do
  @moduledoc """
  The app's embedding serving, built from the implementation named in
  `config :mix_example, :implementation`.

  With `{PyBridge, PyBridge.Text, PyBridge.Serving}` the model runs in a
  PyBridge worker. With `{Bumblebee, Bumblebee.Text, Nx.Serving}` Bumblebee
  runs it natively; nothing else in the app changes, because the two take the
  same calls and return the same shapes:

      # bridge (today)                           # native (after the switch)
      PyBridge.load_model(repo)                  Bumblebee.load_model(repo)
      PyBridge.load_tokenizer(repo)              Bumblebee.load_tokenizer(repo)
      PyBridge.Text.text_embedding(info, tok,    Bumblebee.Text.text_embedding(info, tok,
        same_options)                              same_options)
      {PyBridge.Serving, serving: s, ...}        {Nx.Serving, serving: s, ...}
      PyBridge.Serving.batched_run(name, x)      Nx.Serving.batched_run(name, x)

  Before switching, `PyBridge.Parity.assert_parity/4` checks in a test that
  both give the same answers.
  """

  @repository {:hf, "sentence-transformers/all-MiniLM-L6-v2"}

  @doc "The name callers use with `batched_run/2`."
  def name, do: __MODULE__

  @doc "The configured `{loader, text_module, serving_module}`."
  def implementation, do: Application.fetch_env!(:mix_example, :implementation)

  @doc """
  Builds the embedding serving: mean pooling over the last hidden state,
  L2-normalized, as sentence-transformers does for all-MiniLM-L6-v2.
  """
  def serving do
    {loader, text, _serving} = implementation()
    {:ok, model_info} = loader.load_model(@repository)
    {:ok, tokenizer} = loader.load_tokenizer(@repository)

    text.text_embedding(model_info, tokenizer,
      output_attribute: :hidden_state,
      output_pool: :mean_pooling,
      embedding_processor: :l2_norm
    )
  end

  @doc "The child spec that starts the serving under the app's supervisor."
  def child_spec(_opts) do
    {_loader, _text, serving_module} = implementation()

    Supervisor.child_spec(
      {serving_module, serving: serving(), name: name(), batch_size: 16, batch_timeout: 20},
      id: __MODULE__
    )
  end

  @doc "Embeds one text or a list of texts, as lists of floats."
  @spec embed(String.t() | [String.t()]) :: [float()] | [[float()]]
  def embed(texts) do
    {_loader, _text, serving_module} = implementation()

    case serving_module.batched_run(name(), texts) do
      results when is_list(results) -> Enum.map(results, &to_floats/1)
      result -> to_floats(result)
    end
  end

  # Works whether the embedding is an Nx tensor (when the app has Nx) or a
  # PyBridge.Tensor (when it does not).
  defp to_floats(%{embedding: %PyBridge.Tensor{} = tensor}), do: PyBridge.Tensor.to_list(tensor)
  defp to_floats(%{embedding: tensor}), do: apply(Nx, :to_flat_list, [tensor])
end
