defmodule PyBridge.Model do
  @moduledoc """
  Where a worker finds a model and how it loads it.

  This is the `:model` of the map `PyBridge.load_model/2` returns, in the
  place where Bumblebee keeps an Axon model. The weights themselves load in
  the worker when a serving starts, not in the calling process.
  """

  defstruct [
    :repository,
    :architecture,
    :bridge_command,
    type: :f32,
    device: "auto",
    allow_pickle: false,
    trust_remote_code: false
  ]

  @type t :: %__MODULE__{
          repository: {:hf, String.t(), keyword()} | {:local, String.t()},
          architecture: atom() | nil,
          bridge_command: PyBridge.Command.t() | nil,
          type: atom() | {atom(), pos_integer()},
          device: String.t(),
          allow_pickle: boolean(),
          trust_remote_code: boolean()
        }

  @dtypes %{
    :f32 => "float32",
    :f16 => "float16",
    :bf16 => "bfloat16",
    :f64 => "float64",
    {:f, 32} => "float32",
    {:f, 16} => "float16",
    {:bf, 16} => "bfloat16",
    {:f, 64} => "float64"
  }

  @doc false
  @spec dtype!(term()) :: String.t()
  def dtype!(type) do
    Map.get(@dtypes, type) ||
      raise ArgumentError,
            "expected :type to be one of #{inspect(Map.keys(@dtypes))}, got: #{inspect(type)}"
  end

  @doc false
  # Command-line arguments that tell `bridge` what to load and how.
  @spec args(t()) :: [String.t()]
  def args(%__MODULE__{} = model) do
    PyBridge.Repository.args(model.repository) ++
      ["--dtype", dtype!(model.type)] ++
      if(model.architecture, do: ["--architecture", Atom.to_string(model.architecture)], else: []) ++
      if(model.allow_pickle, do: ["--allow-pickle"], else: []) ++
      if(model.trust_remote_code, do: ["--trust-remote-code"], else: [])
  end
end
