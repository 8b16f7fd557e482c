defmodule PyBridge.Serving.Server do
  @moduledoc false
  # The process registered under a serving's name. It queues the items of
  # every caller, cuts batches by `Nx.Serving`'s rules (`batch_size` items at
  # once, or whatever has waited `batch_timeout` ms), hands each batch to an
  # idle worker, and fans the per-item results back out to their callers.
  #
  # Callers are monitored: a caller that dies or gives up has its queued
  # items removed before they run, and a running batch whose callers are all
  # gone is cancelled in the worker. Every request ends in exactly one of:
  # all its items answered, {:failed, error}, or this process going down.
  #
  # A caller's request is {:run, ref, pid, items, key}, where `ref` is a
  # monitor alias of the caller: replies sent to it after the caller gave up
  # are dropped by the VM, so a late answer never reaches a stale mailbox.

  use GenServer
  require Logger

  alias PyBridge.{Error, Worker}

  defstruct [
    :name,
    :batch_size,
    :batch_timeout,
    :max_queue,
    # key => :queue of {ref, index, item}; a key separates streaming items
    queues: %{},
    # key => number of items in that queue (:queue.len/1 walks the queue)
    sizes: %{},
    queued: 0,
    timers: %{},
    due: MapSet.new(),
    # ref => %{pid, monitor, pending, key}
    requests: %{},
    # caller monitor => ref
    monitors: %{},
    # worker pid => %{monitor, batch: nil | id, stopping: false | :shutdown | :crashed}
    workers: %{},
    # batch id => %{worker, entries: [{ref, index}], cancelled: boolean}
    batches: %{},
    next_batch: 0,
    # why the last worker start failed, for callers left when the serving gives up
    start_error: nil,
    # whether any worker was ever ready: a failed restart, not a failed first start
    started: false
  ]

  def start_link(opts) do
    GenServer.start_link(__MODULE__, opts, name: Keyword.fetch!(opts, :name))
  end

  @doc false
  # Diagnostic snapshot, used by tests to check that no table leaks.
  def tables(server), do: GenServer.call(server, :tables)

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    Logger.metadata(serving: opts[:name])
    PyBridge.Serving.Distributed.join(opts[:name], self())

    {:ok,
     %__MODULE__{
       name: Keyword.fetch!(opts, :name),
       batch_size: Keyword.fetch!(opts, :batch_size),
       batch_timeout: Keyword.fetch!(opts, :batch_timeout),
       max_queue: Keyword.fetch!(opts, :max_queue)
     }}
  end

  @impl true
  def handle_call(:tables, _from, state) do
    snapshot = %{
      queued: state.queued,
      queue_entries: state.queues |> Map.values() |> Enum.map(&:queue.len/1) |> Enum.sum(),
      requests: map_size(state.requests),
      monitors: map_size(state.monitors),
      batches: map_size(state.batches),
      timers: map_size(state.timers),
      due: MapSet.size(state.due),
      workers: map_size(state.workers),
      idle_workers:
        Enum.count(state.workers, fn {_, w} -> w.batch == nil and w.stopping == false end)
    }

    {:reply, snapshot, state}
  end

  @impl true
  # A request of no items is already answered: its caller does not wait.
  def handle_info({:run, _ref, _pid, [], _key}, state), do: {:noreply, state}

  def handle_info({:run, ref, pid, items, key}, state) do
    count = length(items)

    if state.queued + count > state.max_queue do
      send(ref, {ref, {:failed, overloaded(state, count)}})
      {:noreply, state}
    else
      monitor = Process.monitor(pid)
      request = %{pid: pid, monitor: monitor, pending: count, key: key}
      queue = Map.get(state.queues, key, :queue.new())

      queue =
        items
        |> Enum.with_index()
        |> Enum.reduce(queue, fn {item, i}, q -> :queue.in({ref, i, item}, q) end)

      state = %{
        state
        | requests: Map.put(state.requests, ref, request),
          monitors: Map.put(state.monitors, monitor, ref),
          queues: Map.put(state.queues, key, queue),
          sizes: Map.update(state.sizes, key, count, &(&1 + count)),
          queued: state.queued + count
      }

      {:noreply, state |> arm_timer(key) |> dispatch()}
    end
  end

  def handle_info({:cancel, ref}, state), do: {:noreply, drop_request(state, ref)}

  # A timer cancelled after it fired still delivers its message; the token
  # tells the live timer from such a stale one.
  def handle_info({:batch_timeout, key, token}, state) do
    case state.timers do
      %{^key => {_timer, ^token}} ->
        state = %{state | timers: Map.delete(state.timers, key), due: MapSet.put(state.due, key)}
        {:noreply, dispatch(state)}

      _ ->
        {:noreply, state}
    end
  end

  def handle_info({:worker_ready, worker, _info}, state) do
    monitor = Process.monitor(worker)
    workers = Map.put(state.workers, worker, %{monitor: monitor, batch: nil, stopping: false})
    {:noreply, dispatch(%{state | workers: workers, start_error: nil, started: true})}
  end

  def handle_info({:worker_start_failed, _worker, error}, state),
    do: {:noreply, %{state | start_error: error}}

  # The worker is draining for shutdown, or its OS process died: it takes
  # nothing new, and reports what it held before it goes.
  def handle_info({:worker_stopping, worker, why}, state) do
    workers =
      case state.workers do
        %{^worker => w} -> Map.put(state.workers, worker, %{w | stopping: why})
        workers -> workers
      end

    {:noreply, %{state | workers: workers}}
  end

  def handle_info({:batch_done, worker, id, results}, state) do
    {batch, state} = take_batch(state, worker, id)

    state =
      cond do
        batch == nil ->
          state

        length(results) != length(batch.entries) ->
          error =
            Error.new(
              :protocol_error,
              "the worker answered #{length(results)} results for a batch of #{length(batch.entries)} items"
            )

          fail_refs(state, batch.entries, error)

        true ->
          batch.entries
          |> Enum.zip(results)
          |> Enum.group_by(fn {{ref, _}, _} -> ref end, fn {{_, i}, result} ->
            {i, checked_result(result)}
          end)
          |> Enum.reduce(state, fn {ref, items}, acc -> deliver(acc, ref, items) end)
      end

    {:noreply, dispatch(state)}
  end

  def handle_info({:batch_chunk, _worker, id, index, value}, state) do
    with %{entries: entries} <- state.batches[id],
         {ref, i} when is_map_key(state.requests, ref) <- Enum.at(entries, index) do
      send(ref, {ref, {:chunk, i, value}})
    end

    {:noreply, state}
  end

  def handle_info({:batch_unsent, worker, id, items, key}, state) do
    {batch, state} = take_batch(state, worker, id)
    state = if batch, do: requeue(state, batch.entries, items, key), else: state
    {:noreply, dispatch(state)}
  end

  def handle_info({:batch_failed, worker, id, error}, state) do
    {batch, state} = take_batch(state, worker, id)
    state = if batch, do: fail_refs(state, batch.entries, error), else: state
    {:noreply, dispatch(state)}
  end

  def handle_info({:DOWN, monitor, :process, pid, reason}, state) do
    case state.workers do
      %{^pid => %{monitor: ^monitor} = worker} ->
        {:noreply, worker_down(state, pid, worker, reason)}

      _ ->
        case Map.pop(state.monitors, monitor) do
          {nil, _} -> {:noreply, state}
          {ref, monitors} -> {:noreply, drop_request(%{state | monitors: monitors}, ref)}
        end
    end
  end

  def handle_info({:EXIT, _from, reason}, state), do: {:stop, reason, state}
  def handle_info(_message, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    # Whoever still waits gets a reason now rather than a bare :shutdown.
    error =
      case state.start_error do
        %Error{} = cause when state.started ->
          Logger.error(
            "PyBridge serving #{inspect(state.name)} stopped: its worker could not be restarted: " <>
              Exception.message(cause)
          )

          %{cause | message: "the worker could not be restarted: " <> cause.message}

        _ ->
          Error.new(:cancelled, "the serving #{inspect(state.name)} is shutting down")
      end

    for {ref, _request} <- state.requests, do: send(ref, {ref, {:failed, error}})
    :ok
  end

  ## Workers

  # The worker normally reports its batch itself before it stops; this covers
  # a worker process that was killed outright, or a batch sent to a worker
  # that was already stopping.
  defp worker_down(state, pid, worker, reason) do
    state = %{state | workers: Map.delete(state.workers, pid)}

    case worker.batch && Map.pop(state.batches, worker.batch) do
      {%{entries: entries}, batches} ->
        error =
          if worker.stopping == :shutdown,
            do: Error.new(:cancelled, "the serving #{inspect(state.name)} is shutting down"),
            else: Error.new(:worker_crashed, "the worker process exited: #{inspect(reason)}")

        fail_refs(%{state | batches: batches}, entries, error)

      _ ->
        state
    end
  end

  ## Batching

  defp arm_timer(state, key) do
    if Map.has_key?(state.timers, key) or MapSet.member?(state.due, key) do
      state
    else
      token = make_ref()
      timer = Process.send_after(self(), {:batch_timeout, key, token}, state.batch_timeout)
      %{state | timers: Map.put(state.timers, key, {timer, token})}
    end
  end

  # Hands ready batches to idle workers until one or the other runs out.
  defp dispatch(state) do
    with worker when worker != nil <- idle_worker(state),
         key when key != nil <- ready_key(state) do
      state |> cut_batch(key, worker) |> dispatch()
    else
      nil -> state
    end
  end

  defp idle_worker(state) do
    Enum.find_value(state.workers, fn {pid, w} ->
      if w.batch == nil and w.stopping == false, do: pid
    end)
  end

  defp ready_key(state) do
    Enum.find_value(state.sizes, fn {key, size} ->
      if size > 0 and (size >= state.batch_size or MapSet.member?(state.due, key)), do: key
    end)
  end

  defp cut_batch(state, key, worker) do
    queue = state.queues[key]
    count = min(state.batch_size, state.sizes[key])
    {taken, rest} = :queue.split(count, queue)
    entries = :queue.to_list(taken)
    id = state.next_batch
    Worker.run(worker, id, Enum.map(entries, &elem(&1, 2)), %{stream: key == :stream})

    state = %{
      state
      | queues: Map.put(state.queues, key, rest),
        sizes: Map.update!(state.sizes, key, &(&1 - count)),
        queued: state.queued - count,
        batches:
          Map.put(state.batches, id, %{
            worker: worker,
            entries: Enum.map(entries, fn {ref, i, _item} -> {ref, i} end),
            cancelled: false
          }),
        workers: Map.update!(state.workers, worker, &%{&1 | batch: id}),
        next_batch: id + 1,
        due: MapSet.delete(state.due, key)
    }

    # Items left behind start a fresh wait, as a new batch would.
    if :queue.is_empty(rest),
      do: cancel_timer(state, key),
      else: state |> cancel_timer(key) |> arm_timer(key)
  end

  defp cancel_timer(state, key) do
    case Map.pop(state.timers, key) do
      {nil, _} ->
        state

      {{timer, _token}, timers} ->
        Process.cancel_timer(timer)
        %{state | timers: timers}
    end
  end

  # Puts a batch that never ran back at the front of its queue, due at once;
  # items of callers that left meanwhile are dropped.
  defp requeue(state, entries, items, key) do
    live =
      for {{ref, index}, item} <- Enum.zip(entries, items),
          Map.has_key?(state.requests, ref),
          do: {ref, index, item}

    queue =
      Enum.reduce(Enum.reverse(live), Map.get(state.queues, key, :queue.new()), &:queue.in_r/2)

    count = length(live)

    %{
      state
      | queues: Map.put(state.queues, key, queue),
        sizes: Map.update(state.sizes, key, count, &(&1 + count)),
        queued: state.queued + count,
        due: MapSet.put(state.due, key)
    }
  end

  defp take_batch(state, worker, id) do
    case Map.pop(state.batches, id) do
      {%{worker: ^worker} = batch, batches} ->
        workers =
          case state.workers do
            %{^worker => w} -> Map.put(state.workers, worker, %{w | batch: nil})
            workers -> workers
          end

        {batch, %{state | batches: batches, workers: workers}}

      _ ->
        {nil, state}
    end
  end

  ## Replies

  defp deliver(state, ref, items) do
    case state.requests do
      %{^ref => request} ->
        send(ref, {ref, {:items, items}})
        pending = request.pending - length(items)

        if pending == 0 do
          forget(state, ref, request)
        else
          %{state | requests: Map.put(state.requests, ref, %{request | pending: pending})}
        end

      _ ->
        # The caller left; its late results are dropped without noise.
        state
    end
  end

  # Each item's answer must be {:ok, value} or {:error, error map}; anything
  # else is the worker's fault and becomes a protocol error for that item.
  defp checked_result({:ok, _} = result), do: result
  defp checked_result({:error, %{type: _, message: _}} = result), do: result

  defp checked_result(other) do
    error = %{
      type: :protocol_error,
      message: "the worker answered an item with #{inspect(other, limit: 5)}",
      retryable: false
    }

    {:error, error}
  end

  defp fail_refs(state, entries, error) do
    entries
    |> Enum.map(&elem(&1, 0))
    |> Enum.uniq()
    |> Enum.reduce(state, fn ref, acc ->
      if Map.has_key?(acc.requests, ref), do: send(ref, {ref, {:failed, error}})
      drop_request(acc, ref)
    end)
  end

  ## Callers that leave

  # Removes a request: its queued items go, and a running batch that serves
  # nobody any more is cancelled in the worker.
  defp drop_request(state, ref) do
    case state.requests do
      %{^ref => request} ->
        queue = Map.get(state.queues, request.key, :queue.new())
        kept = :queue.filter(fn {r, _, _} -> r != ref end, queue)
        removed = Map.get(state.sizes, request.key, 0) - :queue.len(kept)

        state = %{
          forget(state, ref, request)
          | queues: Map.put(state.queues, request.key, kept),
            sizes: Map.put(state.sizes, request.key, :queue.len(kept)),
            queued: state.queued - removed
        }

        state |> maybe_cancel_timer(request.key) |> cancel_orphaned_batches()

      _ ->
        state
    end
  end

  defp forget(state, ref, request) do
    Process.demonitor(request.monitor, [:flush])

    %{
      state
      | requests: Map.delete(state.requests, ref),
        monitors: Map.delete(state.monitors, request.monitor)
    }
  end

  defp maybe_cancel_timer(state, key) do
    if Map.get(state.sizes, key, 0) == 0,
      do: %{cancel_timer(state, key) | due: MapSet.delete(state.due, key)},
      else: state
  end

  defp cancel_orphaned_batches(state) do
    batches =
      Map.new(state.batches, fn {id, batch} ->
        if not batch.cancelled and
             Enum.all?(batch.entries, fn {ref, _} -> not Map.has_key?(state.requests, ref) end) do
          Worker.cancel(batch.worker, id)
          {id, %{batch | cancelled: true}}
        else
          {id, batch}
        end
      end)

    %{state | batches: batches}
  end

  # A request larger than the whole queue can never be taken: retrying it is
  # pointless, so it is not marked retryable.
  defp overloaded(state, count) when count > state.max_queue do
    Error.new(
      :overloaded,
      "a request of #{count} items can never fit the queue of #{inspect(state.name)} " <>
        "(max_queue: #{state.max_queue}); split it into smaller lists",
      retryable: false
    )
  end

  defp overloaded(state, _count) do
    Error.new(
      :overloaded,
      "the serving #{inspect(state.name)} has #{state.queued} items queued (max_queue: #{state.max_queue})"
    )
  end
end
