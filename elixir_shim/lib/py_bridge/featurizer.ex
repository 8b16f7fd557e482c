defmodule PyBridge.Featurizer do
  @moduledoc """
  A featurizer (image processor or audio feature extractor), loaded by the
  worker from a repository.

  Returned by `PyBridge.load_featurizer/2` and passed to the servings in
  `PyBridge.Vision` and `PyBridge.Audio` the way a Bumblebee featurizer is.
  The featurizing itself happens in the worker, with the `transformers` class
  the repository names (`AutoImageProcessor`, `AutoFeatureExtractor`), so
  resizing, cropping, normalization and log-mel spectrograms are exactly
  those of `transformers`.

  The struct tells what was found:

    * `:type` - the class named in the settings, such as
      `"WhisperFeatureExtractor"` or `"ViTImageProcessor"`, or `nil`.
    * `:sampling_rate` - for audio featurizers, the rate (in Hz) that
      audio tensors must be sampled at (16 000 for Whisper); `nil` for
      images.
    * `:config` - the settings as saved in `preprocessor_config.json`, a
      map with string keys.
    * `:path` - the local directory the worker loads the featurizer from.

  Changing `:config` changes nothing in the worker: it always loads the
  featurizer from `:path`.
  """

  defstruct [:repository, :path, :type, :sampling_rate, config: %{}]

  @type t :: %__MODULE__{
          repository: PyBridge.repository(),
          path: String.t(),
          type: String.t() | nil,
          sampling_rate: pos_integer() | nil,
          config: %{String.t() => term()}
        }

  @doc false
  # Reads the featurizer settings through `bridge featurizer-config`.
  @spec load(PyBridge.repository(), keyword()) :: {:ok, t()} | {:error, String.t()}
  def load(repository, opts) do
    repository = PyBridge.Repository.normalize!(repository)

    with {:ok, command} <- command(opts[:bridge_command]) do
      args = ["featurizer-config", "--etf"] ++ PyBridge.Repository.args(repository)
      port = PyBridge.Command.open(command, args, env: PyBridge.Repository.env(repository))
      await(port, repository, nil)
    end
  end

  @doc false
  # The options every featurized serving sends so the worker loads this featurizer.
  @spec worker_options(t()) :: %{featurizer: String.t()}
  def worker_options(%__MODULE__{path: path}), do: %{featurizer: path}

  defp command(command) do
    case PyBridge.Command.resolve(command) do
      {:ok, command} -> {:ok, command}
      {:error, error} -> {:error, Exception.message(error)}
    end
  end

  defp await(port, repository, answer) do
    receive do
      {^port, {:data, frame}} ->
        await(port, repository, PyBridge.Protocol.decode(frame))

      {^port, {:exit_status, status}} ->
        case answer do
          {:ok, {:ok, %{path: path, type: type, config: config}}} ->
            {:ok,
             %__MODULE__{
               repository: repository,
               path: path,
               type: type,
               sampling_rate: sampling_rate(config),
               config: config
             }}

          {:ok, {:error, nil, error}} ->
            {:error, PyBridge.Error.from_wire(error).message}

          {:error, error} ->
            {:error, error.message}

          _ ->
            {:error, "bridge featurizer-config exited with status #{status} and no answer"}
        end
    end
  end

  defp sampling_rate(%{"sampling_rate" => rate}) when is_integer(rate) and rate > 0, do: rate
  defp sampling_rate(_config), do: nil
end
