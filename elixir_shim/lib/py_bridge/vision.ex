defmodule PyBridge.Vision do
  @moduledoc """
  Vision servings, mirroring `Bumblebee.Vision`.

  Every function takes the `model_info` from `PyBridge.load_model/2` and the
  featurizer from `PyBridge.load_featurizer/2` (plus a tokenizer and
  generation config for `image_to_text/5`), validates its options as
  Bumblebee does (an unknown option raises `ArgumentError`) and returns a
  `PyBridge.Serving`:

      repo = {:hf, "google/vit-base-patch16-224"}
      {:ok, model_info} = PyBridge.load_model(repo)
      {:ok, featurizer} = PyBridge.load_featurizer(repo)

      serving = PyBridge.Vision.image_classification(model_info, featurizer, top_k: 1)
      PyBridge.Serving.run(serving, {:file, "/path/to/cat.jpg"})
      #=> %{predictions: [%{label: "tabby, tabby cat", score: 0.93}]}

  A list of images gives a list of results; any other input one result.

  ## Images

  An image is either

    * a tensor (`Nx.Tensor` or `PyBridge.Tensor`) of shape
      `{height, width, channels}` and an integer type, holding values
      0..255 in RGB order (the layout `StbImage.to_nx/1` and
      `Image.to_nx/1` give). One channel is read as grey, a fourth channel
      (alpha) is dropped, as in Bumblebee; or
    * `{:file, path}`, decoded in the worker with Pillow (PNG, JPEG, GIF,
      BMP, TIFF, WebP and more), turned upright by its EXIF orientation and
      converted to RGB (alpha dropped, grey repeated). The path must be
      readable by the worker.

  Resizing, cropping and normalization are those of the repository's
  `transformers` image processor.
  """

  @typedoc "An `{height, width, channels}` integer tensor (RGB, 0..255), or `{:file, path}`."
  @type image :: PyBridge.Tensor.t() | struct() | {:file, String.t()}

  @type image_classification_input :: image()
  @type image_classification_output :: %{predictions: [%{label: String.t(), score: float()}]}

  @type image_embedding_input :: image()
  @type image_embedding_output :: %{embedding: PyBridge.Tensor.t() | struct()}

  @typedoc "An image, or a map with the image and the seed used when the generation strategy samples."
  @type image_to_text_input :: image() | %{:image => image(), optional(:seed) => integer() | nil}
  @type image_to_text_output :: %{results: [%{text: String.t()}]}

  @doc """
  Builds a serving that classifies images.

  The output is `%{predictions: [%{label: label, score: score}]}`, at most
  `:top_k` predictions sorted by score, highest first. A class the model's
  config gives no name is labelled `"LABEL_<index>"`. Requires a model with
  the `:for_image_classification` (or `:for_image_classification_with_teacher`)
  architecture.

  ## Options

    * `:top_k` - the number of predictions to return. Defaults to `5`.
    * `:scores_function` - `:softmax`, `:sigmoid` or `:none` (raw logits).
      Defaults to `:softmax`.
    * `:compile` - `[batch_size: n]`: the serving's batch size. Defaults to `nil`.
    * `:defn_options`, `:preallocate_params` - accepted for Bumblebee
      compatibility; they mean nothing here.

  ## Examples

      serving = PyBridge.Vision.image_classification(model_info, featurizer, top_k: 2)
      PyBridge.Serving.run(serving, image)
      #=> %{predictions: [%{label: "Egyptian cat", score: 0.61}, %{label: "tabby, tabby cat", score: 0.22}]}
  """
  @spec image_classification(PyBridge.model_info(), PyBridge.Featurizer.t(), keyword()) ::
          PyBridge.Serving.t()
  defdelegate image_classification(model_info, featurizer, opts \\ []),
    to: PyBridge.Vision.ImageClassification,
    as: :serving

  @doc """
  Builds a serving that computes an embedding of each image.

  The output is `%{embedding: tensor}`: an `Nx.Tensor` when the application
  has Nx, a `PyBridge.Tensor` otherwise; f32, of rank 1 for a pooled output.
  Any architecture works; for CLIP load the model with
  `architecture: :for_embedding` (its projected embedding) and pick
  `output_attribute: :embedding`.

  ## Options

    * `:output_attribute` - the model output to use: `:pooled_state` (the
      pooler output), `:hidden_state` (the last hidden state, one row per
      patch), `:embedding` (the projection of a `:for_embedding` model) or
      any other output name. Defaults to `:pooled_state`.
    * `:embedding_processor` - `:l2_norm` normalizes the embedding.
      Defaults to `nil`.
    * `:compile` - `[batch_size: n]`: the serving's batch size. Defaults to `nil`.
    * `:defn_options`, `:preallocate_params` - accepted for Bumblebee
      compatibility; they mean nothing here.

  There is no `:output_pool`, as in Bumblebee.

  ## Examples

      {:ok, clip} =
        PyBridge.load_model({:hf, "openai/clip-vit-base-patch32"}, architecture: :for_embedding)

      serving =
        PyBridge.Vision.image_embedding(clip, featurizer,
          output_attribute: :embedding,
          embedding_processor: :l2_norm
        )

      PyBridge.Serving.run(serving, {:file, "/path/to/photo.png"})
      #=> %{embedding: #Nx.Tensor<f32[512] [...]>}
  """
  @spec image_embedding(PyBridge.model_info(), PyBridge.Featurizer.t(), keyword()) ::
          PyBridge.Serving.t()
  defdelegate image_embedding(model_info, featurizer, opts \\ []),
    to: PyBridge.Vision.ImageEmbedding,
    as: :serving

  @doc """
  Builds a serving that describes images in text (captioning), with BLIP.

  The output is `%{results: [%{text: caption}]}`, one result. Requires a
  `:for_conditional_generation` model that `transformers` loads as an
  image-to-text model (`BlipForConditionalGeneration`, Bumblebee's only one).
  The generation config sets the caption's length and strategy; BLIP itself
  fixes its start and end tokens.

  ## Options

    * `:compile` - `[batch_size: n]`: the serving's batch size. Defaults to `nil`.
    * `:defn_options`, `:preallocate_params` - accepted for Bumblebee
      compatibility; they mean nothing here.

  There is no streaming, as in Bumblebee.

  ## Examples

      repo = {:hf, "Salesforce/blip-image-captioning-base"}
      {:ok, model_info} = PyBridge.load_model(repo)
      {:ok, featurizer} = PyBridge.load_featurizer(repo)
      {:ok, tokenizer} = PyBridge.load_tokenizer(repo)
      {:ok, generation_config} = PyBridge.load_generation_config(repo)

      serving = PyBridge.Vision.image_to_text(model_info, featurizer, tokenizer, generation_config)
      PyBridge.Serving.run(serving, %{image: {:file, "/path/to/dog.jpg"}})
      #=> %{results: [%{text: "a dog running on the beach"}]}
  """
  @spec image_to_text(
          PyBridge.model_info(),
          PyBridge.Featurizer.t(),
          PyBridge.Tokenizer.t(),
          PyBridge.Text.GenerationConfig.t(),
          keyword()
        ) :: PyBridge.Serving.t()
  defdelegate image_to_text(model_info, featurizer, tokenizer, generation_config, opts \\ []),
    to: PyBridge.Vision.ImageToText,
    as: :serving
end
