defmodule PyBridge.Repository do
  @moduledoc false
  # Bumblebee's repository forms, validated the way Bumblebee validates them,
  # and turned into `bridge` command-line arguments.

  @type t :: {:hf, String.t()} | {:hf, String.t(), keyword()} | {:local, Path.t()}

  @hf_options [:revision, :cache_dir, :offline, :auth_token, :subdir]

  @doc false
  @spec normalize!(term()) :: {:hf, String.t(), keyword()} | {:local, Path.t()}
  def normalize!({:hf, id}) when is_binary(id), do: normalize!({:hf, id, []})

  def normalize!({:hf, id, opts}) when is_binary(id) and is_list(opts) do
    {:hf, id, Keyword.validate!(opts, @hf_options)}
  end

  def normalize!({:local, dir}) when is_binary(dir), do: {:local, Path.expand(dir)}

  def normalize!(other) do
    raise ArgumentError,
          "expected repository to be either {:hf, repository_id}, {:hf, repository_id, options}" <>
            " or {:local, directory}, got: #{inspect(other)}"
  end

  @doc false
  @spec args({:hf, String.t(), keyword()} | {:local, Path.t()}) :: [String.t()]
  def args({:local, dir}), do: ["--model", dir]

  def args({:hf, id, opts}) do
    offline? = Keyword.get(opts, :offline, env_offline?())

    ["--model", id] ++
      flag("--revision", opts[:revision]) ++
      flag("--subdir", opts[:subdir]) ++
      flag("--cache-dir", opts[:cache_dir] && Path.expand(opts[:cache_dir])) ++
      if(offline?, do: ["--offline"], else: [])
  end

  @doc false
  # The token travels in the environment, never on a command line others can read.
  @spec env(term()) :: [{charlist(), charlist()}]
  def env({:hf, _id, opts}) do
    case opts[:auth_token] do
      nil -> []
      token -> [{~c"HF_TOKEN", String.to_charlist(token)}]
    end
  end

  def env(_repository), do: []

  @doc false
  @spec describe(term()) :: String.t()
  def describe({:hf, id, _opts}), do: id
  def describe({:local, dir}), do: dir

  defp flag(_name, nil), do: []
  defp flag(name, value), do: [name, to_string(value)]

  defp env_offline? do
    System.get_env("PYBRIDGE_OFFLINE", System.get_env("HF_HUB_OFFLINE", "")) in ["1", "true"]
  end
end
