defmodule PyBridge.Serving do
  @moduledoc """
  Runs a model hosted by a Python worker, with `Nx.Serving`'s API.

  A serving is built by a task constructor such as
  `PyBridge.Text.text_embedding/3` and run in one of two ways:

      # Inline, for scripts and tests: no process of yours to start.
      PyBridge.Serving.run(serving, "The cat sat on the mat")

      # In an application: batched across callers, under your supervisor.
      children = [
        {PyBridge.Serving,
         serving: serving, name: MyApp.Embeddings, batch_size: 16, batch_timeout: 50}
      ]

      PyBridge.Serving.batched_run(MyApp.Embeddings, ["first text", "second text"])

  A list input gives a list of results and any other input gives one result,
  as with Bumblebee. Input is validated in the calling process, where a bad
  input raises `ArgumentError` before anything is queued.

  ## Batching

  Items from all callers wait in one queue. A batch is cut as soon as
  `:batch_size` items are waiting, or when the oldest has waited
  `:batch_timeout` ms, and runs on the first idle worker. Each worker runs one
  batch at a time; `:partitions` starts several workers (one per GPU).

  ## Failures

    * Malformed input raises `ArgumentError` in the caller before anything
      is queued. An item the worker rejects fails alone: the caller that
      sent it gets a `PyBridge.Error` raised, every other item of the batch
      is answered. `protocols/bad_inputs.md` lists every bad input and the
      error it gets.
    * When a worker dies (an exception that kills it, `os._exit`, a signal,
      a segfault in native code), the callers of its running batch exit at
      once with
      `{%PyBridge.Error{type: :worker_crashed}, {PyBridge.Serving, :batched_run, [name, input]}}`,
      the shape `Nx.Serving` uses. The error's `:details` hold the exit
      status and the last lines of the worker's stderr. The worker restarts;
      queued items wait for it and are not lost.
    * Past `:max_restarts` restarts in `:max_seconds` the serving stops, and
      callers still waiting exit with the error that kept the worker from
      starting again.
    * A caller that dies or exits on its `:timeout` has its queued items
      removed before they run, and a batch or stream that serves nobody any
      more is cancelled in the worker. A reply that arrives after its caller
      left is dropped.
    * Past `:max_queue` queued items, callers get an `:overloaded`
      `PyBridge.Error` raised at once instead of unbounded memory growth.
    * An input larger than `:max_frame_bytes` on the wire raises a
      `:frame_too_large` `PyBridge.Error` in the caller.

  ## Shutdown

  Stopping the serving (its supervisor, or the application) lets each
  worker finish its running batch for up to `:shutdown` ms; callers whose
  work did not finish, and callers still queued, exit with a `:cancelled`
  `PyBridge.Error`. The worker is then asked to exit, and if it does not,
  sent `SIGTERM` and then `SIGKILL` by OS pid. The worker also exits on its
  own when the BEAM goes away, even by `kill -9`: it watches its input pipe
  and (on Linux) asks the kernel for a signal when its parent dies.

  ## Telemetry

  When the application has `:telemetry`, each `batched_run/3` is wrapped in
  a `[:py_bridge, :serving, :execute]` span with `%{name: name}` metadata.
  """

  alias PyBridge.{Error, Tensor}

  @enforce_keys [:model, :task]
  defstruct [
    :model,
    :task,
    options: %{},
    client_preprocessing: nil,
    client_postprocessing: nil,
    streaming: nil,
    batch_size: nil
  ]

  @type t :: %__MODULE__{
          model: PyBridge.Model.t(),
          task: atom(),
          options: map(),
          client_preprocessing: (term() -> {[term()], term()}) | nil,
          client_postprocessing: ({[term()], term()} -> term()) | nil,
          streaming:
            nil | %{done: boolean(), chunk: (term() -> term()), final: (term() -> term())},
          batch_size: pos_integer() | nil
        }

  @type name :: atom() | {:local, atom()} | {:distributed, atom()}

  @default_max_frame_bytes 1_073_741_824

  @process_options [
    :serving,
    :name,
    :batch_size,
    :batch_timeout,
    :partitions,
    :shutdown,
    :max_queue,
    :start_timeout,
    :bridge_command,
    :device,
    :max_frame_bytes,
    :log_level,
    :hibernate_after,
    :spawn_opt,
    :distribution_weight,
    :max_restarts,
    :max_seconds
  ]

  @doc false
  @spec new(PyBridge.Model.t(), atom(), map()) :: t()
  def new(model, task, options),
    do: %__MODULE__{model: model, task: task, options: PyBridge.Tensor.deep_to_wire(options)}

  @doc """
  Sets the function that turns a caller's input into `{items, info}`.

  It runs in the calling process and is where validation raises.
  """
  @spec client_preprocessing(t(), (term() -> {[term()], term()}) | nil) :: t()
  def client_preprocessing(%__MODULE__{} = serving, fun),
    do: %{serving | client_preprocessing: fun}

  @doc """
  Sets the function that turns `{results, info}` into the caller's output.
  """
  @spec client_postprocessing(t(), ({[term()], term()} -> term()) | nil) :: t()
  def client_postprocessing(%__MODULE__{} = serving, fun),
    do: %{serving | client_postprocessing: fun}

  @doc """
  Sets the batch size the serving was built for (`:compile`'s `:batch_size`).

  A process started with another `:batch_size` raises, as in `Nx.Serving`.
  """
  @spec batch_size(t(), pos_integer() | nil) :: t()
  def batch_size(%__MODULE__{} = serving, size), do: %{serving | batch_size: size}

  @doc false
  def child_spec(opts) when is_list(opts) do
    name = opts[:name]

    unless is_atom(name) and name != nil do
      raise ArgumentError, ":name must be an atom, got: #{inspect(name)}"
    end

    %{id: name, start: {__MODULE__, :start_link, [opts]}, type: :supervisor}
  end

  @doc """
  Starts a serving process named `:name`, with its workers, under a supervisor.

  Returns once every worker has loaded the model, or
  `{:error, %PyBridge.Error{}}` with the worker's reason when loading fails.

  ## Options

    * `:serving` - the `PyBridge.Serving` to run. Required.
    * `:name` - the atom callers use with `batched_run/3`. Required.
    * `:batch_size` - the most items in one batch. Defaults to the serving's
      `:compile` batch size, else `1`.
    * `:batch_timeout` - how long, in ms, the first queued item waits for
      others before its batch runs anyway. Defaults to `100`.
    * `:partitions` - how many workers to start: an integer, or `true` for
      one per visible CUDA device (one without GPUs). Defaults to `false` (one).
    * `:max_queue` - the most items waiting; past it callers get an
      `:overloaded` error. Defaults to `10_000`.
    * `:shutdown` - how long, in ms, stopping waits for a running batch.
      Defaults to `30_000`.
    * `:start_timeout` - how long, in ms, a worker may take to load the
      model. Defaults to `:infinity`: a slow load is not an error.
    * `:bridge_command` - the `bridge` program (see `PyBridge.Command`).
      Defaults to the model's, then the application's setting, then `bridge`.
    * `:device` - `"auto"`, `"cpu"`, `"cuda"`, `"cuda:N"` or `"mps"`, or a
      list with one device per partition. Defaults to the model's (`"auto"`).
    * `:max_frame_bytes` - the largest frame the worker accepts, and the
      most a compressed frame from the worker may expand to. A larger input
      fails in the caller with a `:frame_too_large` error. Defaults to 1 GiB.
    * `:log_level` - the lowest Python log level forwarded to `Logger`.
      Defaults to `:info`.
    * `:max_restarts`, `:max_seconds` - how many worker restarts are
      tolerated in how many seconds before the serving gives up and exits.
      Defaults to `3` in `60`.
    * `:distribution_weight` - accepted for `Nx.Serving` compatibility.
    * `:hibernate_after`, `:spawn_opt` - passed to the serving process.
  """
  @spec start_link(keyword()) :: Supervisor.on_start()
  def start_link(opts) do
    opts = Keyword.validate!(opts, @process_options)
    serving = Keyword.fetch!(opts, :serving)
    name = Keyword.fetch!(opts, :name)

    unless match?(%__MODULE__{}, serving) do
      raise ArgumentError,
            "expected :serving to be a %PyBridge.Serving{}, got: #{inspect(serving)}"
    end

    batch_size = batch_size!(serving, opts[:batch_size])
    partitions = partitions(opts[:partitions] || false)
    validate_limits!(opts)

    # A serving already running under this name keeps its client settings;
    # overwriting them first would break it even though this start fails.
    case Process.whereis(name) do
      nil -> start_supervised(serving, name, batch_size, partitions, opts)
      pid -> {:error, {:already_started, pid}}
    end
  end

  defp start_supervised(serving, name, batch_size, partitions, opts) do
    :persistent_term.put({__MODULE__, name}, client_config(serving, opts))

    server_opts = [
      name: name,
      batch_size: batch_size,
      batch_timeout: Keyword.get(opts, :batch_timeout, 100),
      max_queue: Keyword.get(opts, :max_queue, 10_000)
    ]

    worker_opts =
      opts
      |> Keyword.take([:shutdown, :start_timeout, :bridge_command, :max_frame_bytes, :log_level])
      |> Keyword.merge(serving: serving, name: name, server: name)

    devices = devices(opts[:device], partitions)

    workers =
      for index <- 0..(partitions - 1) do
        {PyBridge.Worker,
         Keyword.merge(worker_opts, index: index, device: Enum.at(devices, index))}
      end

    children = [
      %{id: :server, start: {PyBridge.Serving.Server, :start_link, [server_opts]}},
      %{
        id: :workers,
        type: :supervisor,
        start:
          {Supervisor, :start_link,
           [
             workers,
             [
               strategy: :one_for_one,
               max_restarts: Keyword.get(opts, :max_restarts, 3),
               max_seconds: Keyword.get(opts, :max_seconds, 60)
             ]
           ]}
      }
    ]

    # As in Nx.Serving, the serving gives up as a whole and leaves restarts
    # to the application's supervisor.
    case Supervisor.start_link(children,
           strategy: :rest_for_one,
           max_restarts: 0,
           name: Module.concat(name, "Supervisor")
         ) do
      {:ok, pid} ->
        {:ok, pid}

      {:error, reason} ->
        :persistent_term.erase({__MODULE__, name})
        {:error, unwrap_start_error(reason)}
    end
  end

  @doc """
  Runs `serving` on `input` without a named process.

  The first call starts a worker for this serving under PyBridge's own
  supervisor and keeps it for later calls; it stops after
  `config :py_bridge, :inline_idle_timeout` ms unused (default `60_000`).
  Use a supervised serving and `batched_run/3` in applications.
  """
  @spec run(t(), term()) :: term()
  def run(%__MODULE__{} = serving, input) do
    # Validate before starting a worker: a typo must not cost a model load.
    _ = (serving.client_preprocessing || (&default_preprocessing/1)).(input)
    name = PyBridge.Serving.Inline.checkout(serving)
    batched_run(name, input)
  end

  @doc """
  Runs `input` through the serving process `name`, batched with other callers.

  `name` is the atom given to `start_link/1`, `{:local, name}` or
  `{:distributed, name}`. A bare name runs on this node when the serving is
  here, and otherwise on any node of the cluster that runs it.

  Like `Nx.Serving`, there is no timeout by default. The third argument is a
  keyword list:

    * `:timeout` - ms to wait for the answer (for a streaming serving, for
      the whole stream); past it the request's queued items are removed, its
      running work is cancelled, and the caller exits with
      `{:timeout, {PyBridge.Serving, :batched_run, [name, input]}}`, as
      `GenServer.call/3` does. Defaults to `:infinity`.

  It raises `ArgumentError` for malformed input or options, and a
  `PyBridge.Error` for an item the worker rejected, an `:overloaded` queue
  or an input over `:max_frame_bytes`; it exits as described under
  "Failures" when the worker dies or the serving stops.

  For compatibility with `Nx.Serving.batched_run/3` it may also be a
  function, applied to the input before it is sent to another node.
  """
  @spec batched_run(name(), term(), keyword() | (term() -> term())) :: term()
  def batched_run(name, input, opts \\ [])

  def batched_run(name, input, fun) when is_function(fun, 1),
    do: batched_run(name, input, distributed_preprocessing: fun)

  def batched_run({:local, name}, input, opts) when is_atom(name) do
    case Process.whereis(name) do
      nil -> exit({:noproc, {__MODULE__, :batched_run, [{:local, name}, input]}})
      pid -> local_batched_run(pid, name, input, opts)
    end
  end

  def batched_run({:distributed, name}, input, opts) when is_atom(name) do
    PyBridge.Serving.Distributed.batched_run(name, input, opts)
  end

  def batched_run(name, input, opts) when is_atom(name) do
    case Process.whereis(name) do
      nil -> PyBridge.Serving.Distributed.batched_run(name, input, opts)
      pid -> local_batched_run(pid, name, input, opts)
    end
  end

  def batched_run(name, _input, _opts) do
    raise ArgumentError,
          "expected the serving name to be an atom, {:local, atom} or {:distributed, atom}, " <>
            "got: #{inspect(name)}"
  end

  @doc false
  def local_batched_run(pid, name, input, opts) do
    unless Keyword.keyword?(opts) do
      raise ArgumentError,
            "expected the options of batched_run/3 to be a keyword list or a function, got: #{inspect(opts)}"
    end

    opts = Keyword.validate!(opts, timeout: :infinity, distributed_preprocessing: nil)
    deadline = deadline(opts[:timeout])
    config = client_config!(name)
    span(name, fn -> do_batched_run(pid, name, input, config, deadline) end)
  end

  defp do_batched_run(pid, name, input, config, deadline) do
    {items, info} = config.preprocess.(input)
    # Nx tensors in the items become the wire's struct here, in the caller;
    # without Nx there are none, and the items are not walked at all.
    items = if Tensor.nx_available?(), do: Tensor.deep_to_wire(items), else: items
    check_frame_size!(items, config.max_frame_bytes)
    key = if config.streaming, do: :stream, else: :default
    ref = :erlang.monitor(:process, pid, alias: :demonitor)
    send(pid, {:run, ref, self(), items, key})
    mfa = {__MODULE__, :batched_run, [name, input]}

    if config.streaming do
      PyBridge.Serving.Stream.new(pid, ref, config.streaming, mfa, deadline)
    else
      results = collect(pid, ref, length(items), %{}, deadline, mfa)
      config.postprocess.({results, info})
    end
  end

  # Checked here so that an oversized input fails its own caller, never the
  # other callers it would be batched with.
  defp check_frame_size!(items, limit) do
    size = :erlang.external_size(items)

    if size > limit do
      raise Error.new(
              :frame_too_large,
              "the input is #{size} bytes on the wire, over the serving's :max_frame_bytes (#{limit})"
            )
    end
  end

  defp collect(_pid, ref, 0, acc, _deadline, _mfa) do
    Process.demonitor(ref, [:flush])

    acc
    |> Enum.sort_by(&elem(&1, 0))
    |> Enum.map(fn
      {_i, {:ok, value}} -> Tensor.from_wire(value)
      {_i, {:error, error}} -> raise Error.from_wire(error)
    end)
  end

  defp collect(pid, ref, pending, acc, deadline, mfa) do
    receive do
      {^ref, {:items, items}} ->
        collect(pid, ref, pending - length(items), Enum.into(items, acc), deadline, mfa)

      {^ref, {:failed, %Error{} = error}} ->
        Process.demonitor(ref, [:flush])
        if error.type == :overloaded, do: raise(error), else: exit({error, mfa})

      {:DOWN, ^ref, _, _, reason} ->
        exit({reason, mfa})
    after
      remaining(deadline) ->
        send(pid, {:cancel, ref})
        release(ref)
        exit({:timeout, mfa})
    end
  end

  @doc false
  # Ends a request on the caller's side: the monitor (and with it the reply
  # alias, so nothing more can arrive) goes, and replies that arrived before
  # that are dropped, so a caller that gave up keeps a clean mailbox.
  @spec release(reference()) :: :ok
  def release(ref) do
    Process.demonitor(ref, [:flush])
    flush_replies(ref)
  end

  defp flush_replies(ref) do
    receive do
      {^ref, _reply} -> flush_replies(ref)
    after
      0 -> :ok
    end
  end

  defp deadline(:infinity), do: :infinity
  defp deadline(ms) when is_integer(ms) and ms >= 0, do: System.monotonic_time(:millisecond) + ms

  defp deadline(other),
    do:
      raise(
        ArgumentError,
        "expected :timeout to be a non-negative integer or :infinity, got: #{inspect(other)}"
      )

  defp remaining(:infinity), do: :infinity
  defp remaining(deadline), do: max(deadline - System.monotonic_time(:millisecond), 0)

  defp client_config(serving, opts) do
    %{
      preprocess: serving.client_preprocessing || (&default_preprocessing/1),
      postprocess: serving.client_postprocessing || (&default_postprocessing/1),
      streaming: serving.streaming,
      max_frame_bytes: opts[:max_frame_bytes] || @default_max_frame_bytes
    }
  end

  defp client_config!(name) do
    :persistent_term.get({__MODULE__, name}, nil) ||
      raise ArgumentError, "could not find PyBridge.Serving with name #{inspect(name)}"
  end

  defp default_preprocessing(input) when is_list(input) and input != [], do: {input, :batch}
  defp default_preprocessing(input), do: {[input], :single}
  defp default_postprocessing({results, :batch}), do: results
  defp default_postprocessing({[result], :single}), do: result

  defp span(name, fun) do
    if PyBridge.Optional.available?(:telemetry) do
      apply(:telemetry, :span, [
        [:py_bridge, :serving, :execute],
        %{name: name},
        fn -> {fun.(), %{name: name}} end
      ])
    else
      fun.()
    end
  end

  defp batch_size!(%{batch_size: nil}, nil), do: 1
  defp batch_size!(%{batch_size: nil}, size) when is_integer(size) and size > 0, do: size
  defp batch_size!(%{batch_size: size}, nil), do: size
  defp batch_size!(%{batch_size: size}, size), do: size

  defp batch_size!(%{batch_size: nil}, other),
    do:
      raise(
        ArgumentError,
        "expected :batch_size to be a positive integer, got: #{inspect(other)}"
      )

  defp batch_size!(%{batch_size: compiled}, given) do
    raise ArgumentError,
          "the serving was built with batch size #{compiled} (its :compile option), " <>
            "but :batch_size #{inspect(given)} was given to start_link"
  end

  defp validate_limits!(opts) do
    check = fn key, valid?, expected ->
      case Keyword.fetch(opts, key) do
        {:ok, value} ->
          unless valid?.(value) do
            raise ArgumentError,
                  "expected #{inspect(key)} to be #{expected}, got: #{inspect(value)}"
          end

        :error ->
          :ok
      end
    end

    non_neg = &(is_integer(&1) and &1 >= 0)
    check.(:batch_timeout, non_neg, "a non-negative integer")
    check.(:shutdown, non_neg, "a non-negative integer")
    check.(:max_queue, &(is_integer(&1) and &1 > 0), "a positive integer")

    check.(
      :start_timeout,
      &(&1 == :infinity or non_neg.(&1)),
      "a non-negative integer or :infinity"
    )

    # The worker's own command line takes nothing smaller.
    check.(:max_frame_bytes, &(is_integer(&1) and &1 >= 1024), "an integer of at least 1024")

    check.(
      :log_level,
      &(&1 in [:debug, :info, :warning, :error]),
      "one of :debug, :info, :warning, :error"
    )

    check.(
      :device,
      &(is_binary(&1) or (is_list(&1) and &1 != [] and Enum.all?(&1, fn d -> is_binary(d) end))),
      ~s(a device string such as "cpu" or "cuda:0", or a list of them)
    )
  end

  defp partitions(false), do: 1
  defp partitions(true), do: max(length(cuda_devices()), 1)
  defp partitions(n) when is_integer(n) and n > 0, do: n

  defp partitions(other),
    do:
      raise(
        ArgumentError,
        "expected :partitions to be a boolean or a positive integer, got: #{inspect(other)}"
      )

  defp devices(list, partitions) when is_list(list) do
    if length(list) != partitions do
      raise ArgumentError,
            "expected one :device per partition (#{partitions}), got: #{inspect(list)}"
    end

    list
  end

  defp devices(nil, partitions) do
    case cuda_devices() do
      gpus when partitions > 1 and length(gpus) >= partitions -> Enum.take(gpus, partitions)
      _ -> List.duplicate(nil, partitions)
    end
  end

  defp devices(device, partitions) when is_binary(device), do: List.duplicate(device, partitions)

  defp cuda_devices do
    case System.find_executable("nvidia-smi") do
      nil ->
        []

      smi ->
        case System.cmd(smi, ["-L"], stderr_to_stdout: true) do
          {out, 0} ->
            out
            |> String.split("\n", trim: true)
            |> Enum.with_index()
            |> Enum.map(&"cuda:#{elem(&1, 1)}")

          _ ->
            []
        end
    end
  end

  defp unwrap_start_error(%Error{} = error), do: error
  defp unwrap_start_error({:shutdown, reason}), do: unwrap_start_error(reason)
  defp unwrap_start_error({:failed_to_start_child, _id, reason}), do: unwrap_start_error(reason)
  defp unwrap_start_error(other), do: other
end
