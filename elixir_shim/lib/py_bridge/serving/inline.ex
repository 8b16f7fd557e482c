defmodule PyBridge.Serving.Inline do
  @moduledoc false
  # Backs PyBridge.Serving.run/2: one serving process per distinct serving,
  # started on first use under PyBridge.InlineSupervisor and stopped once it
  # has been idle for :inline_idle_timeout ms, so repeated run/2 calls load
  # the model once.

  use GenServer

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
    {:ok, %{}}
  end

  @impl true
  def handle_call({:checkout, serving}, _from, servings) do
    key = :erlang.phash2(serving)
    now = System.monotonic_time(:millisecond)

    case servings do
      %{^key => %{name: name, pid: pid} = entry} when is_pid(pid) ->
        if Process.alive?(pid) do
          {:reply, {:ok, name}, Map.put(servings, key, %{entry | used: now})}
        else
          start(serving, key, now, Map.delete(servings, key))
        end

      _ ->
        start(serving, key, now, servings)
    end
  end

  @impl true
  def handle_info(:sweep, servings) do
    Process.send_after(self(), :sweep, @sweep_every)
    idle = Application.get_env(:py_bridge, :inline_idle_timeout, 60_000)
    now = System.monotonic_time(:millisecond)

    servings =
      Map.reject(servings, fn {_key, entry} ->
        stale? = now - entry.used > idle and not busy?(entry.name)
        if stale?, do: DynamicSupervisor.terminate_child(PyBridge.InlineSupervisor, entry.pid)
        stale?
      end)

    {:noreply, servings}
  end

  defp start(serving, key, now, servings) do
    name = Module.concat(PyBridge.Inline, "S#{key}")

    spec =
      Supervisor.child_spec({PyBridge.Serving, serving: serving, name: name}, restart: :temporary)

    case DynamicSupervisor.start_child(PyBridge.InlineSupervisor, spec) do
      {:ok, pid} ->
        {:reply, {:ok, name}, Map.put(servings, key, %{name: name, pid: pid, used: now})}

      {:error, reason} ->
        {:reply, {:error, reason}, servings}
    end
  end

  defp busy?(name) do
    case Process.whereis(name) do
      nil -> false
      pid -> PyBridge.Serving.Server.tables(pid).requests > 0
    end
  end
end
