defmodule PyBridge.Serving.Inline do
  @moduledoc false
  # Backs PyBridge.Serving.run/2: one serving process per distinct serving,
  # started on first use under PyBridge.InlineSupervisor and stopped once it
  # has been idle for :inline_idle_timeout ms, so repeated run/2 calls load
  # the model once.
  #
  # A model can take long to load, and meanwhile run/2 for servings that are
  # up, or that start faster, must not wait. So neither this process nor the
  # supervisor blocks on a load: each serving is owned by a Holder, which
  # starts it after its own start has returned and reports back. Concurrent
  # first calls for one serving share its single start.

  use GenServer

  alias PyBridge.Serving.Inline.Holder

  @sweep_every 5_000

  def start_link(_opts), do: GenServer.start_link(__MODULE__, :ok, name: __MODULE__)

  @doc false
  @spec checkout(PyBridge.Serving.t()) :: atom()
  def checkout(serving) do
    case GenServer.call(__MODULE__, {:checkout, serving}, :infinity) do
      {:ok, name} -> name
      {:error, %PyBridge.Error{} = error} -> raise error
      {:error, reason} -> exit({reason, {PyBridge.Serving, :run, [serving]}})
    end
  end

  @impl true
  def init(:ok) do
    Process.send_after(self(), :sweep, @sweep_every)
    # running: serving => %{name, holder, used}
    # starting: serving => %{holder, monitor, waiting: [from]}
    # names: serving => atom, kept so a serving started again reuses its atom
    {:ok, %{running: %{}, starting: %{}, names: %{}}}
  end

  @impl true
  # The serving struct itself is the key: two servings are the same when
  # they are equal, which a hash could only approximate.
  def handle_call({:checkout, serving}, from, state) do
    case state do
      %{running: %{^serving => %{holder: holder} = entry}} ->
        if Process.alive?(holder) do
          entry = %{entry | used: System.monotonic_time(:millisecond)}
          {:reply, {:ok, entry.name}, %{state | running: Map.put(state.running, serving, entry)}}
        else
          state = %{state | running: Map.delete(state.running, serving)}
          start(state, serving, from)
        end

      _ ->
        start(state, serving, from)
    end
  end

  @impl true
  def handle_info({:inline_started, holder, result}, state) do
    case Enum.find(state.starting, fn {_serving, s} -> s.holder == holder end) do
      {serving, starting} ->
        Process.demonitor(starting.monitor, [:flush])
        state = %{state | starting: Map.delete(state.starting, serving)}

        state =
          case result do
            {:ok, name} ->
              entry = %{name: name, holder: holder, used: System.monotonic_time(:millisecond)}
              %{state | running: Map.put(state.running, serving, entry)}

            {:error, _} ->
              state
          end

        for from <- starting.waiting, do: GenServer.reply(from, result)
        {:noreply, state}

      nil ->
        {:noreply, state}
    end
  end

  # A holder that died before it reported.
  def handle_info({:DOWN, monitor, :process, _pid, reason}, state) do
    case Enum.find(state.starting, fn {_serving, s} -> s.monitor == monitor end) do
      {serving, starting} ->
        for from <- starting.waiting, do: GenServer.reply(from, {:error, reason})
        {:noreply, %{state | starting: Map.delete(state.starting, serving)}}

      nil ->
        {:noreply, state}
    end
  end

  def handle_info(:sweep, state) do
    Process.send_after(self(), :sweep, @sweep_every)
    idle = Application.get_env(:py_bridge, :inline_idle_timeout, 60_000)
    now = System.monotonic_time(:millisecond)

    running =
      Map.reject(state.running, fn {_serving, entry} ->
        stale? = now - entry.used > idle and not busy?(entry.name)
        if stale?, do: DynamicSupervisor.terminate_child(PyBridge.InlineSupervisor, entry.holder)
        stale?
      end)

    {:noreply, %{state | running: running}}
  end

  def handle_info(_message, state), do: {:noreply, state}

  defp start(state, serving, from) do
    case state.starting do
      %{^serving => starting} ->
        starting = %{starting | waiting: [from | starting.waiting]}
        {:noreply, %{state | starting: Map.put(state.starting, serving, starting)}}

      _ ->
        {name, state} = name_for(state, serving)

        case DynamicSupervisor.start_child(
               PyBridge.InlineSupervisor,
               {Holder, {serving, name, self()}}
             ) do
          {:ok, holder} ->
            starting = %{holder: holder, monitor: Process.monitor(holder), waiting: [from]}
            {:noreply, %{state | starting: Map.put(state.starting, serving, starting)}}

          {:error, reason} ->
            {:reply, {:error, reason}, state}
        end
    end
  end

  defp name_for(state, serving) do
    case state.names do
      %{^serving => name} ->
        {name, state}

      names ->
        name = Module.concat(PyBridge.Inline, "S#{map_size(names)}")
        {name, %{state | names: Map.put(names, serving, name)}}
    end
  end

  defp busy?(name) do
    case Process.whereis(name) do
      nil -> false
      pid -> PyBridge.Serving.Server.tables(pid).requests > 0
    end
  catch
    :exit, _ -> false
  end
end

defmodule PyBridge.Serving.Inline.Holder do
  @moduledoc false
  # Owns one inline serving under PyBridge.InlineSupervisor. Its own start
  # returns at once; the serving (and its model load) starts right after, and
  # the result goes to the Inline process as {:inline_started, holder, result}.
  # Stopping the holder stops the serving, which drains as usual.

  use GenServer

  @inline_batch_size 32

  def child_spec({_serving, name, _owner} = args) do
    %{
      id: name,
      start: {__MODULE__, :start_link, [args]},
      restart: :temporary,
      type: :supervisor,
      shutdown: :infinity
    }
  end

  def start_link(args), do: GenServer.start_link(__MODULE__, args)

  @impl true
  def init(args) do
    Process.flag(:trap_exit, true)
    {:ok, nil, {:continue, {:start, args}}}
  end

  @impl true
  def handle_continue({:start, {serving, name, owner}}, nil) do
    # Like Nx.Serving.run/2, a list given to run/2 runs in batches as large
    # as the serving allows, not one item at a time.
    batch_size = if serving.batch_size, do: [], else: [batch_size: @inline_batch_size]

    case PyBridge.Serving.start_link(
           [serving: serving, name: name, batch_timeout: 0] ++ batch_size
         ) do
      {:ok, supervisor} ->
        send(owner, {:inline_started, self(), {:ok, name}})
        {:noreply, supervisor}

      {:error, reason} ->
        send(owner, {:inline_started, self(), {:error, reason}})
        {:stop, :normal, nil}
    end
  end

  @impl true
  # The serving gave up (its workers could not be restarted): so does the holder.
  def handle_info({:EXIT, supervisor, _reason}, supervisor), do: {:stop, :normal, nil}
  def handle_info(_message, supervisor), do: {:noreply, supervisor}

  @impl true
  def terminate(_reason, nil), do: :ok

  def terminate(_reason, supervisor) do
    Supervisor.stop(supervisor)
  catch
    :exit, _ -> :ok
  end
end
