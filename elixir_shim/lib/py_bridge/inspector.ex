defmodule PyBridge.Inspector do
  @moduledoc false
  # Runs `bridge inspect --etf` to read a model's spec without loading its
  # weights. Answers are cached for the life of the VM, keyed by everything
  # that can change them: for a local directory that includes the time
  # config.json was last written, so editing the model is seen.

  alias PyBridge.{Command, Error, Protocol}

  @spec inspect_model(term(), keyword()) :: {:ok, PyBridge.ModelSpec.t()} | {:error, Error.t()}
  def inspect_model(repository, opts) do
    key =
      {__MODULE__, repository, version(repository), opts[:architecture], opts[:allow_pickle],
       opts[:trust_remote_code], opts[:bridge_command]}

    case :persistent_term.get(key, nil) do
      nil ->
        with {:ok, spec} <- run(repository, opts) do
          :persistent_term.put(key, spec)
          {:ok, spec}
        end

      spec ->
        {:ok, spec}
    end
  end

  defp version({:local, dir}) do
    case File.stat(Path.join(dir, "config.json"), time: :posix) do
      {:ok, %File.Stat{mtime: mtime, size: size}} -> {mtime, size}
      {:error, _} -> :missing
    end
  end

  # Hub repositories are content-addressed by revision in the hub's cache.
  defp version(_repository), do: nil

  defp run(repository, opts) do
    with {:ok, command} <- Command.resolve(opts[:bridge_command]) do
      args =
        ["inspect", "--etf"] ++
          PyBridge.Repository.args(repository) ++
          if(opts[:architecture],
            do: ["--architecture", Atom.to_string(opts[:architecture])],
            else: []
          )

      port = Command.open(command, args, env: PyBridge.Repository.env(repository))
      await(port, nil)
    end
  end

  defp await(port, answer) do
    receive do
      {^port, {:data, frame}} ->
        await(port, Protocol.decode(frame))

      {^port, {:exit_status, status}} ->
        case answer do
          {:ok, {:ok, spec}} ->
            {:ok, PyBridge.ModelSpec.from_wire(spec)}

          {:ok, {:error, nil, error}} ->
            {:error, Error.from_wire(error)}

          {:error, error} ->
            {:error, error}

          _ ->
            {:error,
             Error.new(
               :model_load_failed,
               "bridge inspect exited with status #{status} and no answer"
             )}
        end
    end
  end
end
