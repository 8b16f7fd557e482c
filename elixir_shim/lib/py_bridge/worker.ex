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
  #
  # The OS process never outlives this process: terminate/2 stops it
  # ({:shutdown}, then SIGTERM, then SIGKILL by OS pid), a watcher kills it if
  # this process is killed before terminate/2 runs, and the worker itself
  # exits when its input closes or (Linux) when its parent dies.
  #
  # Python runs batches one at a time, in the order sent, and answers them
  # in that order. `inflight` lists the batches sent and not yet answered,
  # oldest (the one running) first. A frame that cannot be trusted is
  # charged to the running batch, whose callers fail at once; the batch
  # stays listed as :abandoned until Python's own answer for it arrives and
  # is dropped, so a later batch is never blamed for an earlier one's frames.
  #
  # Messages to the server:
  #
  #   {:worker_ready, worker, info}          the model is loaded; send batches
  #   {:worker_start_failed, worker, error}  the model could not be loaded
  #   {:worker_stopping, worker, why}        :shutdown or :crashed; send no more batches
  #   {:batch_done, worker, id, results}     one {:ok, v} | {:error, map} per item
  #   {:batch_chunk, worker, id, index, value}
  #   {:batch_failed, worker, id, %PyBridge.Error{}}

  use GenServer, restart: :permanent
  require Logger

  alias PyBridge.{Command, Error, Protocol}

  @default_shutdown 30_000
  @default_max_frame_bytes 1_073_741_824
  # How long the worker has to exit after {:shutdown}, and after SIGTERM.
  @exit_grace 2_000
  @term_grace 2_000

  defstruct [
    :port,
    :os_pid,
    :server,
    :serving_name,
    :index,
    :info,
    :stderr,
    inflight: [],
    opened: false,
    shutdown: @default_shutdown,
    max_frame_bytes: @default_max_frame_bytes
  ]

  @doc false
  def child_spec(opts) do
    %{
      id: {__MODULE__, Keyword.fetch!(opts, :index)},
      start: {__MODULE__, :start_link, [opts]},
      restart: :permanent,
      # terminate/2 drains the running batch for :shutdown ms, then waits out
      # each step of stopping the OS process.
      shutdown:
        Keyword.get(opts, :shutdown, @default_shutdown) + @exit_grace + 2 * @term_grace + 1_000
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

    state = %__MODULE__{
      server: Keyword.fetch!(opts, :server),
      serving_name: name,
      index: index,
      shutdown: Keyword.get(opts, :shutdown, @default_shutdown),
      max_frame_bytes: opts[:max_frame_bytes] || @default_max_frame_bytes
    }

    case start(serving, opts, state) do
      {:ok, state} ->
        {:ok, state}

      {:error, error} ->
        send(state.server, {:worker_start_failed, self(), error})
        # {:shutdown, _} keeps proc_lib from adding a crash report to the
        # supervisor's own report of the failed start.
        {:stop, {:shutdown, error}}
    end
  end

  defp start(serving, opts, state) do
    with {:ok, command} <- Command.resolve(opts[:bridge_command] || serving.model.bridge_command),
         {:ok, stderr} <- open_stderr(state),
         {:ok, port} <- open_port(command, serving, opts, stderr) do
      {:os_pid, os_pid} = Port.info(port, :os_pid)
      Command.reap_on_exit(self(), os_pid)
      Logger.metadata(os_pid: os_pid)
      state = %{state | port: port, os_pid: os_pid, stderr: stderr}
      port_command(port, Protocol.encode(Protocol.hello(serving.task, serving.options)))
      await_ready(state, deadline(Keyword.get(opts, :start_timeout, :infinity)))
    end
  end

  defp open_stderr(state) do
    label = String.replace("#{inspect(state.serving_name)}-#{state.index}", ~r/[^\w.-]/, "_")

    case Command.open_stderr(label) do
      {:ok, stderr} ->
        {:ok, stderr}

      {:error, reason} ->
        {:error,
         Error.new(
           :internal,
           "cannot create a file for the worker's stderr in #{System.tmp_dir!()}: #{inspect(reason)}"
         )}
    end
  end

  defp open_port(command, serving, opts, stderr) do
    args = ["serve", "--task", Atom.to_string(serving.task)] ++ worker_args(serving, opts)
    env = PyBridge.Repository.env(serving.model.repository)
    {:ok, Command.open(command, args, env: env, stderr: stderr)}
  rescue
    error in ErlangError ->
      Command.close_stderr(stderr)

      {:error,
       Error.new(
         :model_load_failed,
         "cannot start #{inspect(command)}: #{inspect(error.original)}"
       )}
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

  # The model loads while we wait; log records keep flowing meanwhile. Every
  # way out but :ready stops the OS process and removes the stderr file.
  defp await_ready(%{port: port} = state, deadline) do
    receive do
      {^port, {:data, frame}} ->
        state = opened(state)

        case decode(frame, state) do
          {:ok, {:ready, info}} when is_map(info) ->
            Logger.info("PyBridge worker ready on #{inspect(Map.get(info, :device))}")
            send(state.server, {:worker_ready, self(), info})
            {:ok, %{state | info: info}}

          {:ok, {:log, level, message, meta}} when is_binary(message) ->
            forward_log(level, message, meta)
            await_ready(state, deadline)

          {:ok, {:error, nil, error}} ->
            start_failed(state, Error.from_wire(error), @exit_grace)

          {:ok, other} ->
            error =
              Error.new(:protocol_error, "expected :ready, got: #{inspect(other, limit: 10)}")

            start_failed(state, error, 0)

          {:error, error} ->
            start_failed(state, error, 0)
        end

      {^port, {:exit_status, status}} ->
        error = crash_error(state, status, "the worker exited while loading the model")
        start_failed(%{state | port: nil}, error, 0)

      {:EXIT, ^port, _reason} ->
        error =
          crash_error(state, await_status(port), "the worker exited while loading the model")

        start_failed(%{state | port: nil}, error, 0)

      {:EXIT, _parent, reason} ->
        start_failed(
          state,
          Error.new(
            :cancelled,
            "the serving stopped while the model was loading: #{inspect(reason)}"
          ),
          0
        )
    after
      remaining(deadline) ->
        {_at, timeout} = deadline

        error =
          Error.new(:timeout, "the model did not load within #{timeout} ms (:start_timeout)")

        start_failed(state, error, 0)
    end
  end

  # Log records during the load must not extend :start_timeout.
  defp deadline(:infinity), do: :infinity

  defp deadline(timeout) when is_integer(timeout) and timeout >= 0,
    do: {System.monotonic_time(:millisecond) + timeout, timeout}

  defp remaining(:infinity), do: :infinity
  defp remaining({at, _timeout}), do: max(at - System.monotonic_time(:millisecond), 0)

  defp start_failed(state, error, grace) do
    stop_port(state, grace > 0)
    Command.close_stderr(state.stderr)
    {:error, error}
  end

  @impl true
  def handle_cast({:run, batch_id, items, opts}, state) do
    frame = Protocol.encode({:run, batch_id, items, opts})

    if byte_size(frame) > state.max_frame_bytes do
      error =
        Error.new(
          :frame_too_large,
          "the batch is #{byte_size(frame)} bytes on the wire, over :max_frame_bytes (#{state.max_frame_bytes})"
        )

      send(state.server, {:batch_failed, self(), batch_id, error})
      {:noreply, state}
    else
      # A port that is already closed reports its exit status next, which
      # fails this batch as a crash.
      port_command(state.port, frame)
      {:noreply, %{state | inflight: state.inflight ++ [{batch_id, :live}]}}
    end
  end

  def handle_cast({:cancel, batch_id}, state) do
    if List.keymember?(state.inflight, batch_id, 0),
      do: port_command(state.port, Protocol.encode({:cancel, batch_id}))

    {:noreply, state}
  end

  @impl true
  def handle_info({port, {:data, frame}}, %{port: port} = state) do
    state = opened(state)

    case decode(frame, state) do
      {:ok, message} ->
        handle_message(message, state)

      {:error, error} ->
        # A frame we cannot trust may have been the running batch's reply:
        # fail the batch rather than leave its callers waiting for ever.
        Logger.error("#{Exception.message(error)}; failing the running batch")
        {:noreply, abandon_running(state, error)}
    end
  end

  def handle_info({port, {:exit_status, status}}, %{port: port} = state),
    do: crashed(state, status)

  def handle_info({:EXIT, port, _reason}, %{port: port} = state),
    do: crashed(state, await_status(port))

  def handle_info(_message, state), do: {:noreply, state}

  defp crashed(state, status) do
    # Said first, so the server hands no batch to this process while it stops.
    send(state.server, {:worker_stopping, self(), :crashed})
    error = crash_error(state, status, "the worker exited")
    Logger.error(Exception.message(error) <> stderr_suffix(error))
    state = fail_inflight(%{state | port: nil}, error)
    return_unsent(state)
    {:stop, {:shutdown, {:worker_exited, status}}, state}
  end

  # Batches handed to us after the OS process had died were never written to
  # it, so nothing of them ran: they go back to the server, which queues them
  # for the restarted worker instead of failing callers that lost nothing.
  defp return_unsent(state) do
    receive do
      {:"$gen_cast", {:run, id, items, opts}} ->
        key = if opts[:stream], do: :stream, else: :default
        send(state.server, {:batch_unsent, self(), id, items, key})
        return_unsent(state)
    after
      0 -> :ok
    end
  end

  # One clause per worker → shim message of protocols/PROTOCOL.md §4.
  defp handle_message({:reply, id, results}, state) when is_integer(id) and is_list(results) do
    answered(state, id, {:batch_done, self(), id, results})
  end

  defp handle_message({:reply, id, other}, state) when is_integer(id) do
    error =
      Error.new(
        :protocol_error,
        "the worker answered with a malformed reply: #{inspect(other, limit: 5)}"
      )

    answered(state, id, {:batch_failed, self(), id, error})
  end

  defp handle_message({:error, id, error}, state) when is_integer(id) do
    answered(state, id, {:batch_failed, self(), id, Error.from_wire(error)})
  end

  defp handle_message({:chunk, id, index, value}, state)
       when is_integer(id) and is_integer(index) do
    case List.keyfind(state.inflight, id, 0) do
      {^id, :live} -> send(state.server, {:batch_chunk, self(), id, index, value})
      _ -> Logger.debug("dropping a chunk of batch #{id}, which has no caller any more")
    end

    {:noreply, state}
  end

  defp handle_message({:error, nil, error}, state) do
    Logger.error("the worker reported: #{Exception.message(Error.from_wire(error))}")
    {:noreply, state}
  end

  defp handle_message({:log, level, message, meta}, state) when is_binary(message) do
    forward_log(level, message, meta)
    {:noreply, state}
  end

  defp handle_message({:pong, _ref}, state), do: {:noreply, state}

  defp handle_message(other, state) do
    Logger.warning("ignoring an unexpected message from the worker: #{inspect(other, limit: 10)}")
    {:noreply, state}
  end

  # The answer for an abandoned batch (its callers already failed) is
  # dropped quietly; an answer for a batch never sent is the worker's bug.
  defp answered(state, id, message) do
    case List.keytake(state.inflight, id, 0) do
      {{^id, :live}, inflight} ->
        stderr = Command.trim_stderr(state.stderr)
        send(state.server, message)
        {:noreply, %{state | inflight: inflight, stderr: stderr}}

      {{^id, :abandoned}, inflight} ->
        Logger.debug("dropping the late answer of batch #{id}")
        {:noreply, %{state | inflight: inflight}}

      nil ->
        Logger.warning("ignoring an answer for batch #{id}, which this worker was never given")
        {:noreply, state}
    end
  end

  @impl true
  def terminate(_reason, %{port: nil} = state), do: Command.close_stderr(state.stderr)

  def terminate(_reason, state) do
    send(state.server, {:worker_stopping, self(), :shutdown})
    # Let the running batch finish within :shutdown so its callers get answers.
    state = drain(state, System.monotonic_time(:millisecond) + state.shutdown)
    drained? = not live?(state)

    state =
      fail_inflight(
        state,
        Error.new(
          :cancelled,
          "the serving is shutting down and the batch did not finish within :shutdown (#{state.shutdown} ms)"
        )
      )

    stop_port(state, drained?)
    Command.close_stderr(state.stderr)
  end

  defp drain(%{port: nil} = state, _deadline), do: state

  defp drain(%{port: port} = state, deadline) do
    if live?(state), do: await_answers(state, port, deadline), else: state
  end

  defp await_answers(state, port, deadline) do
    remaining = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {^port, {:data, frame}} ->
        case decode(frame, state) do
          {:ok, message} ->
            {:noreply, state} = handle_message(message, state)
            drain(state, deadline)

          {:error, error} ->
            state |> abandon_running(error) |> drain(deadline)
        end

      {^port, {:exit_status, status}} ->
        fail_inflight(%{state | port: nil}, crash_error(state, status, "the worker exited"))
    after
      remaining -> state
    end
  end

  # Ask politely when the worker is idle, then escalate by OS pid:
  # {:shutdown} → SIGTERM → SIGKILL. A busy worker cannot read {:shutdown}
  # before its model call returns, so it goes straight to SIGTERM.
  defp stop_port(%{port: nil}, _ask?), do: :ok

  defp stop_port(%{port: port, os_pid: os_pid}, ask?) do
    asked? = ask? and port_command(port, Protocol.encode({:shutdown})) == :ok

    unless asked? and await_exit(port, @exit_grace) do
      Command.signal(os_pid, "TERM")

      unless await_exit(port, @term_grace) do
        Command.signal(os_pid, "KILL")
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

  # A port may report its closing before its program's exit status; the
  # status follows, later under load.
  defp await_status(port) do
    receive do
      {^port, {:exit_status, status}} -> status
    after
      5_000 -> nil
    end
  end

  defp port_command(port, frame) do
    Port.command(port, frame)
    :ok
  rescue
    ArgumentError -> :closed
  end

  # The worker opens its stderr file before it writes any frame, so after the
  # first frame the file's name is no longer needed.
  defp opened(%{opened: true} = state), do: state
  defp opened(state), do: %{state | opened: true, stderr: Command.unlink_stderr(state.stderr)}

  # Python never compresses; a compressed frame must not make the VM
  # allocate more than the frames the worker itself would accept.
  defp decode(<<131, 80, size::32, _::binary>>, state) when size > state.max_frame_bytes do
    {:error,
     Error.new(
       :protocol_error,
       "the worker sent a compressed frame that expands to #{size} bytes, over :max_frame_bytes (#{state.max_frame_bytes})"
     )}
  end

  defp decode(frame, _state), do: Protocol.decode(frame)

  defp live?(state), do: Enum.any?(state.inflight, &match?({_, :live}, &1))

  defp abandon_running(%{inflight: [{id, :live} | rest]} = state, error) do
    send(state.server, {:batch_failed, self(), id, error})
    %{state | inflight: [{id, :abandoned} | rest]}
  end

  defp abandon_running(state, _error), do: state

  # Every batch still listed fails; abandoned ones already did.
  defp fail_inflight(state, error) do
    for {id, :live} <- state.inflight,
        do: send(state.server, {:batch_failed, self(), id, error})

    %{state | inflight: []}
  end

  defp crash_error(state, status, message) do
    tail = Command.stderr_tail(state.stderr, 40)

    last =
      case List.last(tail) do
        nil -> ""
        line -> "; the last line of its stderr: " <> line
      end

    Error.new(:worker_crashed, "#{message} with status #{describe_status(status)}#{last}",
      details: %{exit_status: status, os_pid: state.os_pid, stderr: tail}
    )
  end

  defp stderr_suffix(%Error{details: %{stderr: [_, _ | _] = lines}}),
    do: "\nlast lines of its stderr:\n" <> Enum.join(lines, "\n")

  defp stderr_suffix(_error), do: ""

  # Ports report death by signal N as status 128 + N.
  defp describe_status(nil), do: "unknown"
  defp describe_status(status) when status > 128, do: "#{status} (signal #{status - 128})"
  defp describe_status(status), do: Integer.to_string(status)

  @python_levels %{debug: :debug, info: :info, warning: :warning, error: :error}

  defp forward_log(level, message, meta) do
    level = Map.get(@python_levels, level, :info)
    logger = if is_map(meta), do: Map.get(meta, :logger)
    Logger.log(level, message, python_logger: logger)
  end
end
