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

  @typedoc false
  # The worker's stderr: a file the worker appends to and the shim reads back
  # through its own handle, so the name can go as soon as the worker has it open.
  @type stderr :: %{path: String.t() | nil, io: :file.io_device(), kept: binary()}

  # Keep the file small: past this size its tail is kept in memory and the file emptied.
  @stderr_limit 1_048_576
  @tail_bytes 8_192

  @doc false
  @spec resolve(t() | nil) :: {:ok, {String.t(), [String.t()]}} | {:error, PyBridge.Error.t()}
  def resolve(command \\ nil) do
    command = command || Application.get_env(:py_bridge, :bridge_command, "bridge")
    {program, prefix} = split(command)

    path =
      cond do
        String.contains?(program, "/") -> program |> Path.expand() |> executable()
        program == "bridge" and prefix == [] -> find_our_bridge()
        true -> System.find_executable(program)
      end

    case path do
      {:not_ours, found} ->
        {:error,
         PyBridge.Error.new(
           :model_load_failed,
           "the `bridge` on the PATH (#{Enum.join(found, ", ")}) is not PyBridge's worker " <>
             "(iproute2 ships a `bridge` command too): set `config :py_bridge, bridge_command: " <>
             "\"/path/to/venv/bin/bridge\"` or put the py-bridge environment first on the PATH"
         )}

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
  # Opens `bridge <args>` as a port on fds 3/4, with its stderr sent to the
  # `:stderr` file (see open_stderr/1).
  @spec open({String.t(), [String.t()]}, [String.t()], keyword()) :: port()
  def open({path, prefix}, args, opts \\ []) do
    env =
      [{~c"PYTHONUNBUFFERED", ~c"1"}] ++
        Keyword.get(opts, :env, []) ++
        case opts[:stderr] do
          %{path: stderr} when is_binary(stderr) ->
            [{~c"PYBRIDGE_STDERR_FILE", String.to_charlist(stderr)}]

          _ ->
            []
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

  ## The worker's stderr file

  @doc false
  # Creates an empty private file for a worker's stderr and opens it for reading.
  @spec open_stderr(String.t()) :: {:ok, stderr()} | {:error, term()}
  def open_stderr(label, tries \\ 5) do
    # Other BEAMs (peer nodes, other applications) share the directory: the
    # OS pid keeps names apart, and :exclusive catches whatever still collides.
    name = "py_bridge-#{label}-#{System.pid()}-#{System.unique_integer([:positive])}.stderr"
    path = Path.join(System.tmp_dir!(), name)

    case :file.open(path, [:read, :write, :binary, :raw, :exclusive]) do
      {:ok, io} ->
        File.chmod(path, 0o600)
        {:ok, %{path: path, io: io, kept: ""}}

      {:error, :eexist} when tries > 1 ->
        open_stderr(label, tries - 1)

      {:error, reason} ->
        {:error, reason}
    end
  end

  @doc false
  # Removes the file's name once the worker holds it open: from then on no way
  # of stopping, not even the BEAM being killed, leaves the file behind.
  @spec unlink_stderr(stderr()) :: stderr()
  def unlink_stderr(%{path: nil} = stderr), do: stderr

  def unlink_stderr(%{path: path} = stderr) do
    File.rm(path)
    %{stderr | path: nil}
  end

  @doc false
  @spec close_stderr(stderr() | nil) :: :ok
  def close_stderr(nil), do: :ok

  def close_stderr(stderr) do
    unlink_stderr(stderr)
    :file.close(stderr.io)
    :ok
  end

  @doc false
  # Bounds the file: past @stderr_limit bytes its tail moves to memory and the
  # file is emptied (the worker appends, so it goes on writing at the new end).
  @spec trim_stderr(stderr()) :: stderr()
  def trim_stderr(stderr) do
    case :file.position(stderr.io, :eof) do
      {:ok, size} when size > @stderr_limit ->
        kept = read_tail(stderr.io, size)
        {:ok, 0} = :file.position(stderr.io, 0)
        :file.truncate(stderr.io)
        %{stderr | kept: kept}

      _ ->
        stderr
    end
  end

  @doc false
  @spec stderr_tail(stderr() | nil, pos_integer()) :: [String.t()]
  def stderr_tail(stderr, lines \\ 20)
  def stderr_tail(nil, _lines), do: []

  def stderr_tail(stderr, lines) do
    data =
      case :file.position(stderr.io, :eof) do
        {:ok, size} -> stderr.kept <> read_tail(stderr.io, size)
        _ -> stderr.kept
      end

    data
    |> String.split("\n", trim: true)
    |> Enum.take(-lines)
    |> Enum.map(&printable/1)
  end

  defp read_tail(io, size) do
    offset = max(size - @tail_bytes, 0)

    case :file.pread(io, offset, @tail_bytes) do
      {:ok, data} -> data
      _ -> ""
    end
  end

  defp printable(line) do
    if String.valid?(line), do: line, else: inspect(line, binaries: :as_strings)
  end

  ## The worker's OS process

  @doc false
  # Makes sure the OS process `os_pid` does not outlive `owner`: when the
  # owner dies by any means (even killed before its terminate/2 could stop
  # the worker) the process is given a moment to exit on its own, as it does
  # when its input closes, and is then killed. The process is recognised by
  # its start time, so a recycled pid is never signalled.
  @spec reap_on_exit(pid(), non_neg_integer()) :: pid()
  def reap_on_exit(owner, os_pid) do
    started = start_time(os_pid)

    spawn(fn ->
      ref = Process.monitor(owner)

      receive do
        {:DOWN, ^ref, :process, _, _} -> reap(os_pid, started, 20)
      end
    end)
  end

  defp reap(_os_pid, nil, _tries), do: :ok

  defp reap(os_pid, started, 0) do
    if start_time(os_pid) == started, do: signal(os_pid, "KILL")
    :ok
  end

  defp reap(os_pid, started, tries) do
    if start_time(os_pid) == started do
      Process.sleep(100)
      reap(os_pid, started, tries - 1)
    else
      :ok
    end
  end

  @doc false
  # Sends `signal` ("TERM", "KILL") to an OS process.
  @spec signal(non_neg_integer(), String.t()) :: :ok
  def signal(os_pid, signal) do
    System.cmd("kill", ["-#{signal}", Integer.to_string(os_pid)], stderr_to_stdout: true)
    :ok
  end

  @doc false
  # The process's start time in clock ticks since boot (Linux), or nil when it
  # is gone, a zombie, or this is not Linux.
  @spec start_time(non_neg_integer()) :: String.t() | nil
  def start_time(os_pid) do
    case File.read("/proc/#{os_pid}/stat") do
      {:ok, stat} ->
        # The command name (field 2) may hold spaces and parentheses; the
        # fields after its last ") " do not. Field 22 is the start time.
        {at, 2} = stat |> :binary.matches(") ") |> List.last()
        rest = binary_part(stat, at + 2, byte_size(stat) - at - 2)

        case String.split(rest, " ") do
          ["Z" | _] -> nil
          fields -> Enum.at(fields, 19)
        end

      {:error, _} ->
        nil
    end
  end

  defp split([program | prefix]) when is_binary(program), do: {program, prefix}
  defp split(program) when is_binary(program), do: {program, []}

  defp split(other) do
    raise ArgumentError,
          "expected :bridge_command to be a string or a list of strings, got: #{inspect(other)}"
  end

  # Linux distributions put iproute2's `bridge` (an ELF binary) on the PATH.
  # Ours is a Python console script, so the first `bridge` whose first line
  # is a shebang naming Python wins.
  defp find_our_bridge do
    found =
      (System.get_env("PATH") || "")
      |> String.split(":", trim: true)
      |> Enum.map(&Path.join(&1, "bridge"))
      |> Enum.filter(&executable/1)
      |> Enum.uniq()

    case Enum.find(found, &python_script?/1) do
      nil when found == [] -> nil
      nil -> {:not_ours, found}
      path -> path
    end
  end

  defp python_script?(path) do
    case File.open(path, [:read, :binary], &IO.binread(&1, 256)) do
      {:ok, "#!" <> head} ->
        head |> String.split("\n", parts: 2) |> hd() |> String.contains?("python")

      _ ->
        false
    end
  end

  defp executable(path) do
    case File.stat(path) do
      {:ok, %File.Stat{type: :regular}} -> path
      _ -> nil
    end
  end
end
