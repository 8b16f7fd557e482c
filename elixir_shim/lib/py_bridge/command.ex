defmodule PyBridge.Command do
  @moduledoc """
  How the shim finds and starts the `bridge` program.

  The command comes from, in order:

    1. the `:bridge_command` option of a serving or of `PyBridge.load_model/2`;
    2. the application setting `config :py_bridge, bridge_command: ...`;
    3. `bridge` on the `PATH`.

  A command is a program name or path (`"bridge"`, `"/opt/venv/bin/bridge"`),
  or a list whose head is the program and whose tail comes before the
  subcommand (`["python3", "-m", "py_bridge"]`). Relative paths are expanded
  against the current directory.
  """

  @type t :: String.t() | [String.t()]

  @doc false
  @spec resolve(t() | nil) :: {:ok, {String.t(), [String.t()]}} | {:error, PyBridge.Error.t()}
  def resolve(command \\ nil) do
    command = command || Application.get_env(:py_bridge, :bridge_command, "bridge")
    {program, prefix} = split(command)

    path =
      if String.contains?(program, "/"),
        do: program |> Path.expand() |> executable(),
        else: System.find_executable(program)

    case path do
      nil ->
        {:error,
         PyBridge.Error.new(
           :model_load_failed,
           "cannot find the bridge program #{inspect(program)}: install the py-bridge Python package " <>
             "(pip install py-bridge) or set `config :py_bridge, bridge_command: \"/path/to/bridge\"`"
         )}

      path ->
        {:ok, {path, prefix}}
    end
  end

  @doc false
  # Opens `bridge <args>` as a port on fds 3/4, with its stderr sent to `stderr_path`.
  @spec open({String.t(), [String.t()]}, [String.t()], keyword()) :: port()
  def open({path, prefix}, args, opts \\ []) do
    env =
      [{~c"PYTHONUNBUFFERED", ~c"1"}] ++
        Keyword.get(opts, :env, []) ++
        case opts[:stderr_path] do
          nil -> []
          stderr -> [{~c"PYBRIDGE_STDERR_FILE", String.to_charlist(stderr)}]
        end

    Port.open({:spawn_executable, path}, [
      :binary,
      :nouse_stdio,
      :exit_status,
      {:packet, 4},
      {:args, prefix ++ args},
      {:env, env}
    ])
  end

  @doc false
  @spec stderr_tail(String.t() | nil, pos_integer()) :: [String.t()]
  def stderr_tail(path, lines \\ 20)
  def stderr_tail(nil, _lines), do: []

  def stderr_tail(path, lines) do
    case File.open(path, [:read, :binary]) do
      {:ok, file} ->
        try do
          size = File.stat!(path).size
          offset = max(size - 8192, 0)
          {:ok, data} = :file.pread(file, offset, 8192)
          data = if is_binary(data), do: data, else: ""

          data
          |> String.split("\n", trim: true)
          |> Enum.take(-lines)
        after
          File.close(file)
        end

      {:error, _} ->
        []
    end
  end

  defp split([program | prefix]) when is_binary(program), do: {program, prefix}
  defp split(program) when is_binary(program), do: {program, []}

  defp split(other) do
    raise ArgumentError,
          "expected :bridge_command to be a string or a list of strings, got: #{inspect(other)}"
  end

  defp executable(path) do
    case File.stat(path) do
      {:ok, %File.Stat{type: :regular}} -> path
      _ -> nil
    end
  end
end
