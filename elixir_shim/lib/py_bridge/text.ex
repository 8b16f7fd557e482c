defmodule PyBridge.Text do
  @moduledoc """
  Text servings, mirroring `Bumblebee.Text`.

  Every function takes the `model_info` and tokenizer from
  `PyBridge.load_model/2` and `PyBridge.load_tokenizer/2`, validates its
  options as Bumblebee does (an unknown option raises `ArgumentError`) and
  returns a `PyBridge.Serving`.
  """

  @typedoc "A text input: a string."
  @type text_input :: String.t()

  @type text_embedding_output :: %{embedding: PyBridge.Tensor.t() | struct()}
  @type text_classification_input :: String.t() | {String.t(), String.t()}
  @type text_classification_output :: %{predictions: [%{label: String.t(), score: float()}]}

  @doc """
  Builds a serving that computes an embedding of each text.

  The output is `%{embedding: tensor}`: an `Nx.Tensor` when the application
  has Nx, a `PyBridge.Tensor` otherwise. Texts longer than the model's
  maximum length are truncated.

  ## Options

    * `:output_attribute` - the model output to use: `:pooled_state` (the
      pooler output), `:hidden_state` (the last hidden state) or any other
      output name. Defaults to `:pooled_state`.
    * `:output_pool` - pools a sequence output into one vector:
      `:mean_pooling`, `:cls_token_pooling` or `:last_token_pooling`.
      Defaults to `nil` (no pooling).
    * `:embedding_processor` - `:l2_norm` normalizes the embedding.
      Defaults to `nil`.
    * `:compile` - `[batch_size: n, sequence_length: l]`: the serving's batch
      size, and the length inputs are padded to (a list of lengths picks the
      smallest that fits). Defaults to `nil`.
    * `:defn_options`, `:preallocate_params` - accepted for Bumblebee
      compatibility; they mean nothing here.

  ## Examples

      serving =
        PyBridge.Text.text_embedding(model_info, tokenizer,
          output_attribute: :hidden_state,
          output_pool: :mean_pooling,
          embedding_processor: :l2_norm
        )

      PyBridge.Serving.run(serving, "Elixir is a functional language")
      #=> %{embedding: #Nx.Tensor<f32[384] [...]>}
  """
  @spec text_embedding(PyBridge.model_info(), PyBridge.Tokenizer.t(), keyword()) ::
          PyBridge.Serving.t()
  defdelegate text_embedding(model_info, tokenizer, opts \\ []),
    to: PyBridge.Text.TextEmbedding,
    as: :serving

  @doc """
  Builds a serving that classifies each text (or pair of texts).

  The output is `%{predictions: [%{label: label, score: score}]}`, at most
  `:top_k` predictions sorted by score, highest first. Requires a model with
  the `:for_sequence_classification` architecture.

  ## Options

    * `:top_k` - the number of predictions to return. Defaults to `5`.
    * `:scores_function` - `:softmax`, `:sigmoid` or `:none` (raw logits).
      Defaults to `:softmax`.
    * `:compile` - `[batch_size: n, sequence_length: l]`, as in
      `text_embedding/3`. Defaults to `nil`.
    * `:defn_options`, `:preallocate_params` - accepted for Bumblebee
      compatibility; they mean nothing here.

  ## Examples

      serving = PyBridge.Text.text_classification(model_info, tokenizer, top_k: 2)
      PyBridge.Serving.run(serving, "I love it")
      #=> %{predictions: [%{label: "POSITIVE", score: 0.99}, %{label: "NEGATIVE", score: 0.01}]}
  """
  @spec text_classification(PyBridge.model_info(), PyBridge.Tokenizer.t(), keyword()) ::
          PyBridge.Serving.t()
  defdelegate text_classification(model_info, tokenizer, opts \\ []),
    to: PyBridge.Text.TextClassification,
    as: :serving
end
