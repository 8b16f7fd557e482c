defmodule PyBridge.Worker do
  @moduledoc false
  # Owns one `bridge serve` OS process through an Erlang port and runs one
  # batch at a time on it for its serving's server (PyBridge.Serving.Server).
  #
  # Start-up blocks in `init/1` until the model is loaded, so `start_link`
  # reports a load failure as `{:error, %PyBridge.Error{}}` and a supervisor
  # restart reloads the model before the worker takes work again. When the
  # OS process dies, the batch it held fails at once with `:worker_crashed`
  # (exit status and stderr tail attached) and this process stops, so that
  # the supervisor starts a fresh worker.

  use GenServer, restart: :permanent
  require Logger

  alias PyBridge.{Command, Error, Protocol}

  @default_shutdown 30_000
  @term_grace 2_000

  defstruct [
    :port,
    :os_pid,
    :server,
    :serving_name,
    :index,
    :info,
    :stderr_path,
    :current,
    shutdown: @default_shutdown
  ]

  @doc false
  def child_spec(opts) do
    %{
      id: {__MODULE__, Keyword.fetch!(opts, :index)},
      start: {__MODULE__, :start_link, [opts]},
      restart: :permanent,
      # Our terminate/2 needs time to drain the running batch and stop Python.
      shutdown: Keyword.get(opts, :shutdown, @default_shutdown) + 2 * @term_grace + 1_000
    }
  end

  @doc false
  def start_link(opts), do: GenServer.start_link(__MODULE__, opts)

  @doc false
  # Runs one batch; results go to the server as {:batch_done, worker, id, results}.
  def run(worker, batch_id, items, opts),
    do: GenServer.cast(worker, {:run, batch_id, items, opts})

  @doc false
  def cancel(worker, batch_id), do: GenServer.cast(worker, {:cancel, batch_id})

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    serving = Keyword.fetch!(opts, :serving)
    name = Keyword.fetch!(opts, :name)
    index = Keyword.fetch!(opts, :index)

    Logger.metadata(
      serving: name,
      partition: index,
      model: PyBridge.Repository.describe(serving.model.repository)
    )

    with {:ok, command} <- Command.resolve(opts[:bridge_command] || serving.model.bridge_command) do
      stderr_path = stderr_path(name, index)
      args = ["serve", "--task", Atom.to_string(serving.task)] ++ worker_args(serving, opts)
      env = PyBridge.Repository.env(serving.model.repository)
      port = Command.open(command, args, env: env, stderr_path: stderr_path)
      {:os_pid, os_pid} = Port.info(port, :os_pid)
      Logger.metadata(os_pid: os_pid)

      state = %__MODULE__{
        port: port,
        os_pid: os_pid,
        server: Keyword.fetch!(opts, :server),
        serving_name: name,
        index: index,
        stderr_path: stderr_path,
        shutdown: Keyword.get(opts, :shutdown, @default_shutdown)
      }

      Port.command(port, Protocol.encode(Protocol.hello(serving.task, serving.options)))
      await_ready(state, Keyword.get(opts, :start_timeout, :infinity))
    else
      {:error, error} -> {:stop, error}
    end
  end

  defp worker_args(serving, opts) do
    PyBridge.Model.args(serving.model) ++
      ["--device", opts[:device] || serving.model.device] ++
      case opts[:max_frame_bytes] do
        nil -> []
        bytes -> ["--max-frame-bytes", Integer.to_string(bytes)]
      end ++
      ["--log-level", Atom.to_string(opts[:log_level] || :info)]
  end

  # The model loads while we wait; log records keep flowing meanwhile.
  defp await_ready(%{port: port} = state, timeout) do
    receive do
      {^port, {:data, frame}} ->
        case Protocol.decode(frame) do
          {:ok, {:ready, info}} ->
            Logger.debug("worker ready: #{info.model.hf_architecture} on #{info.device}")
            send(state.server, {:worker_ready, self(), info})
            {:ok, %{state | info: info}}

          {:ok, {:log, level, message, meta}} ->
            forward_log(level, message, meta)
            await_ready(state, timeout)

          {:ok, {:error, nil, error}} ->
            error = Error.from_wire(error)
            stop_port(state, 5_000)
            {:stop, error}

          {:ok, other} ->
            stop_port(state, 0)

            {:stop,
             Error.new(:protocol_error, "expected :ready, got: #{inspect(other, limit: 10)}")}

          {:error, error} ->
            stop_port(state, 0)
            {:stop, error}
        end

      {^port, {:exit_status, status}} ->
        {:stop, crash_error(state, status, "the worker exited while loading the model")}
    after
      timeout ->
        stop_port(state, 0)

        {:stop,
         Error.new(:timeout, "the model did not load within #{timeout} ms (:start_timeout)")}
    end
  end

  @impl true
  def handle_cast({:run, batch_id, items, opts}, state) do
    Port.command(state.port, Protocol.encode({:run, batch_id, items, opts}))
    {:noreply, %{state | current: batch_id}}
  end

  def handle_cast({:cancel, batch_id}, state) do
    Port.command(state.port, Protocol.encode({:cancel, batch_id}))
    {:noreply, state}
  end

  @impl true
  def handle_info({port, {:data, frame}}, %{port: port} = state) do
    case Protocol.decode(frame) do
      {:ok, message} ->
        handle_message(message, state)

      {:error, error} ->
        # A frame we cannot trust may belong to the running batch: fail it
        # rather than leave its callers waiting for a reply that decoded wrong.
        Logger.error(error.message)
        {:noreply, fail_current(state, error)}
    end
  end

  def handle_info({port, {:exit_status, status}}, %{port: port} = state) do
    error = crash_error(state, status, "the worker exited")
    Logger.error(Exception.message(error) <> stderr_suffix(error))
    state = fail_current(%{state | port: nil}, error)
    {:stop, {:shutdown, {:worker_exited, status}}, state}
  end

  def handle_info({:EXIT, _pid, reason}, state), do: {:stop, reason, state}
  def handle_info(_message, state), do: {:noreply, state}

  # Each clause is one worker → shim message of protocols/PROTOCOL.md §4.
  defp handle_message({:reply, id, results}, %{current: id} = state) do
    send(state.server, {:batch_done, self(), id, results})
    {:noreply, %{state | current: nil}}
  end

  defp handle_message({:chunk, id, index, value}, state) do
    send(state.server, {:batch_chunk, self(), id, index, value})
    {:noreply, state}
  end

  defp handle_message({:error, id, error}, %{current: id} = state) when id != nil do
    send(state.server, {:batch_failed, self(), id, Error.from_wire(error)})
    {:noreply, %{state | current: nil}}
  end

  defp handle_message({:error, nil, error}, state) do
    error = Error.from_wire(error)
    Logger.error("worker reported: #{Exception.message(error)}")
    {:noreply, state}
  end

  defp handle_message({:log, level, message, meta}, state) do
    forward_log(level, message, meta)
    {:noreply, state}
  end

  defp handle_message({:pong, _ref}, state), do: {:noreply, state}

  defp handle_message(other, state) do
    Logger.warning("ignoring an unexpected message from the worker: #{inspect(other, limit: 10)}")
    {:noreply, state}
  end

  @impl true
  def terminate(_reason, %{port: nil} = state), do: cleanup(state)

  def terminate(_reason, state) do
    # Let the running batch finish within :shutdown so its callers get answers.
    state = drain(state, System.monotonic_time(:millisecond) + state.shutdown)
    state = fail_current(state, Error.new(:cancelled, "the serving is shutting down"))
    stop_port(state, @term_grace)
    cleanup(state)
  end

  defp drain(%{current: nil} = state, _deadline), do: state

  defp drain(%{port: port} = state, deadline) do
    remaining = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {^port, {:data, frame}} ->
        case Protocol.decode(frame) do
          {:ok, message} ->
            {:noreply, state} = handle_message(message, state)
            drain(state, deadline)

          {:error, _} ->
            drain(state, deadline)
        end

      {^port, {:exit_status, status}} ->
        fail_current(%{state | port: nil}, crash_error(state, status, "the worker exited"))
    after
      remaining -> state
    end
  end

  # Ask politely, then escalate by OS pid: {:shutdown} → SIGTERM → SIGKILL.
  defp stop_port(%{port: nil}, _grace), do: :ok

  defp stop_port(%{port: port, os_pid: os_pid}, grace) do
    if grace > 0 do
      try do
        Port.command(port, Protocol.encode({:shutdown}))
      rescue
        ArgumentError -> :ok
      end
    end

    unless await_exit(port, grace) do
      kill(os_pid, "TERM")

      unless await_exit(port, @term_grace) do
        kill(os_pid, "KILL")
        await_exit(port, @term_grace)
      end
    end

    try do
      Port.close(port)
    rescue
      ArgumentError -> :ok
    end

    :ok
  end

  defp await_exit(port, timeout) do
    receive do
      {^port, {:exit_status, _}} -> true
    after
      timeout -> false
    end
  end

  defp kill(os_pid, signal),
    do: System.cmd("kill", ["-#{signal}", Integer.to_string(os_pid)], stderr_to_stdout: true)

  defp fail_current(%{current: nil} = state, _error), do: state

  defp fail_current(%{current: id} = state, error) do
    send(state.server, {:batch_failed, self(), id, error})
    %{state | current: nil}
  end

  defp crash_error(state, status, message) do
    tail = Command.stderr_tail(state.stderr_path)

    Error.new(:worker_crashed, "#{message} with status #{describe_status(status)}",
      details: %{exit_status: status, os_pid: state.os_pid, stderr: tail}
    )
  end

  defp stderr_suffix(%Error{details: %{stderr: [_ | _] = lines}}),
    do: "; last lines of its stderr:\n" <> Enum.join(lines, "\n")

  defp stderr_suffix(_error), do: ""

  # Ports report death by signal N as status 128 + N.
  defp describe_status(status) when status > 128, do: "#{status} (signal #{status - 128})"
  defp describe_status(status), do: Integer.to_string(status)

  defp cleanup(state) do
    if state.stderr_path, do: File.rm(state.stderr_path)
    :ok
  end

  defp stderr_path(name, index) do
    unique = System.unique_integer([:positive])
    Path.join(System.tmp_dir!(), "py_bridge-#{inspect(name)}-#{index}-#{unique}.stderr")
  end

  @python_levels %{debug: :debug, info: :info, warning: :warning, error: :error}

  defp forward_log(level, message, meta) do
    level = Map.get(@python_levels, level, :info)
    Logger.log(level, message, python_logger: Map.get(meta, :logger))
  end
end
