defmodule PyBridge.Serving.Server do
  @moduledoc false
  # The process registered under a serving's name. It queues the items of
  # every caller, cuts batches by `Nx.Serving`'s rules (`batch_size` items at
  # once, or whatever has waited `batch_timeout` ms), hands each batch to an
  # idle worker, and fans the per-item results back out to their callers.
  #
  # Callers are monitored: a caller that dies or gives up has its queued
  # items removed before they run, and a running batch whose callers are all
  # gone is cancelled in the worker.

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
    queued: 0,
    timers: %{},
    due: MapSet.new(),
    # ref => %{pid, monitor, alias, pending, key}
    requests: %{},
    # worker pid => %{monitor, batch: nil | id}
    workers: %{},
    # batch id => %{worker, entries: [{ref, index}]}
    batches: %{},
    next_batch: 0
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
      requests: map_size(state.requests),
      batches: map_size(state.batches),
      workers: map_size(state.workers),
      idle_workers: Enum.count(state.workers, fn {_, w} -> w.batch == nil end)
    }

    {:reply, snapshot, state}
  end

  @impl true
  # A caller's request: {ref (also the reply alias), caller pid, items, key}.
  def handle_info({:run, ref, pid, items, key}, state) do
    count = length(items)

    if state.queued + count > state.max_queue do
      send(ref, {ref, {:failed, overloaded(state)}})
      {:noreply, state}
    else
      monitor = Process.monitor(pid)
      request = %{pid: pid, monitor: monitor, pending: count, key: key}
      entries = items |> Enum.with_index() |> Enum.map(fn {item, i} -> {ref, i, item} end)
      queue = Map.get(state.queues, key, :queue.new())
      queue = Enum.reduce(entries, queue, &:queue.in/2)

      state = %{
        state
        | requests: Map.put(state.requests, ref, request),
          queues: Map.put(state.queues, key, queue),
          queued: state.queued + count
      }

      {:noreply, state |> arm_timer(key) |> dispatch()}
    end
  end

  def handle_info({:cancel, ref}, state), do: {:noreply, drop_request(state, ref)}

  def handle_info({:batch_timeout, key}, state) do
    state = %{state | timers: Map.delete(state.timers, key), due: MapSet.put(state.due, key)}
    {:noreply, dispatch(state)}
  end

  def handle_info({:worker_ready, worker, _info}, state) do
    monitor = Process.monitor(worker)
    workers = Map.put(state.workers, worker, %{monitor: monitor, batch: nil})
    {:noreply, dispatch(%{state | workers: workers})}
  end

  def handle_info({:batch_done, worker, id, results}, state) do
    {batch, state} = take_batch(state, worker, id)

    state =
      if batch do
        batch.entries
        |> Enum.zip(results)
        |> Enum.group_by(fn {{ref, _}, _} -> ref end, fn {{_, i}, result} -> {i, result} end)
        |> Enum.reduce(state, fn {ref, items}, acc -> deliver(acc, ref, items) end)
      else
        state
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

  def handle_info({:batch_failed, worker, id, error}, state) do
    {batch, state} = take_batch(state, worker, id)
    state = if batch, do: fail_refs(state, batch.entries, error), else: state
    {:noreply, dispatch(state)}
  end

  def handle_info({:DOWN, monitor, :process, pid, reason}, state) do
    case state.workers do
      %{^pid => %{monitor: ^monitor, batch: batch_id}} ->
        state = %{state | workers: Map.delete(state.workers, pid)}
        # The worker normally reports its batch before it stops; this covers a
        # worker process that was killed outright.
        state =
          case batch_id && Map.pop(state.batches, batch_id) do
            {%{entries: entries}, batches} ->
              error = Error.new(:worker_crashed, "the worker process exited: #{inspect(reason)}")
              fail_refs(%{state | batches: batches}, entries, error)

            _ ->
              state
          end

        {:noreply, state}

      _ ->
        {:noreply, drop_caller(state, pid)}
    end
  end

  def handle_info({:EXIT, _from, reason}, state), do: {:stop, reason, state}
  def handle_info(_message, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    # Callers still waiting see this process go down and exit like
    # Nx.Serving's callers do; nothing else to release.
    for {_ref, %{monitor: monitor}} <- state.requests, do: Process.demonitor(monitor, [:flush])
    :ok
  end

  ## Batching

  defp arm_timer(state, key) do
    if Map.has_key?(state.timers, key) or MapSet.member?(state.due, key) do
      state
    else
      timer = Process.send_after(self(), {:batch_timeout, key}, state.batch_timeout)
      %{state | timers: Map.put(state.timers, key, timer)}
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
    Enum.find_value(state.workers, fn {pid, w} -> if w.batch == nil, do: pid end)
  end

  defp ready_key(state) do
    Enum.find_value(state.queues, fn {key, queue} ->
      size = :queue.len(queue)
      if size > 0 and (size >= state.batch_size or MapSet.member?(state.due, key)), do: key
    end)
  end

  defp cut_batch(state, key, worker) do
    queue = state.queues[key]
    {taken, rest} = :queue.split(min(state.batch_size, :queue.len(queue)), queue)
    entries = :queue.to_list(taken)
    id = state.next_batch
    Worker.run(worker, id, Enum.map(entries, &elem(&1, 2)), %{stream: key == :stream})

    state = %{
      state
      | queues: Map.put(state.queues, key, rest),
        queued: state.queued - length(entries),
        batches:
          Map.put(state.batches, id, %{
            worker: worker,
            entries: Enum.map(entries, &Tuple.delete_at(&1, 2)),
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

      {timer, timers} ->
        Process.cancel_timer(timer)
        %{state | timers: timers}
    end
  end

  defp take_batch(state, worker, id) do
    {batch, batches} = Map.pop(state.batches, id)
    workers = Map.update(state.workers, worker, nil, &%{&1 | batch: nil})
    workers = if workers[worker] == nil, do: Map.delete(workers, worker), else: workers
    {batch, %{state | batches: batches, workers: workers}}
  end

  ## Replies

  defp deliver(state, ref, items) do
    case state.requests do
      %{^ref => request} ->
        send(ref, {ref, {:items, items}})
        pending = request.pending - length(items)

        if pending == 0 do
          Process.demonitor(request.monitor, [:flush])
          %{state | requests: Map.delete(state.requests, ref)}
        else
          %{state | requests: Map.put(state.requests, ref, %{request | pending: pending})}
        end

      _ ->
        # The caller left; its late results are dropped without noise.
        state
    end
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

  defp drop_caller(state, pid) do
    state.requests
    |> Enum.filter(fn {_ref, request} -> request.pid == pid end)
    |> Enum.reduce(state, fn {ref, _}, acc -> drop_request(acc, ref) end)
  end

  # Removes a request: its queued items go, and a running batch that serves
  # nobody any more is cancelled in the worker.
  defp drop_request(state, ref) do
    case Map.pop(state.requests, ref) do
      {nil, _} ->
        state

      {request, requests} ->
        Process.demonitor(request.monitor, [:flush])
        queue = Map.get(state.queues, request.key, :queue.new())
        kept = :queue.filter(fn {r, _, _} -> r != ref end, queue)
        removed = :queue.len(queue) - :queue.len(kept)

        state = %{
          state
          | requests: requests,
            queues: Map.put(state.queues, request.key, kept),
            queued: state.queued - removed
        }

        cancel_orphaned_batches(state)
    end
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

  defp overloaded(state) do
    Error.new(
      :overloaded,
      "the serving #{inspect(state.name)} has #{state.queued} items queued (max_queue: #{state.max_queue})"
    )
  end
end
