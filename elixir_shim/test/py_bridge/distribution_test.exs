defmodule PyBridge.DistributionTest do
  # Servings spread over BEAM nodes through :pg, as Nx.Serving's do: a caller
  # on one node reaches a serving that runs on another.
  use ExUnit.Case, async: false

  @moduletag :distribution

  # test_helper.exs makes this node distributed (epmd on 127.0.0.1), or
  # excludes the :distribution tag with a note when it cannot.

  setup do
    {:ok, peer, node} =
      :peer.start(%{
        name: :"py_bridge_peer_#{System.unique_integer([:positive])}",
        host: ~c"127.0.0.1",
        longnames: true,
        args: Enum.flat_map(:code.get_path(), &[~c"-pa", &1])
      })

    bridge = Application.fetch_env!(:py_bridge, :bridge_command)
    :ok = :erpc.call(node, Application, :put_env, [:py_bridge, :bridge_command, bridge])
    {:ok, _} = :erpc.call(node, Application, :ensure_all_started, [:py_bridge])
    :ok = :erpc.call(node, Logger, :configure, [[level: :warning]])
    on_exit(fn -> :peer.stop(peer) end)
    %{node: node}
  end

  defp start_remote_echo(node, name) do
    model = %PyBridge.Model{repository: {:hf, "sentence-transformers/all-MiniLM-L6-v2", []}}
    serving = PyBridge.Serving.new(model, :echo, %{})
    spec = {PyBridge.Serving, serving: serving, name: name, batch_size: 4, batch_timeout: 5}
    # Under the peer's own supervisor, so the serving outlives the RPC.
    {:ok, _} =
      :erpc.call(node, DynamicSupervisor, :start_child, [PyBridge.InlineSupervisor, spec])
  end

  test "a bare name with no local serving runs on the node that has it", %{node: node} do
    name = __MODULE__.RemoteEcho
    start_remote_echo(node, name)
    assert Process.whereis(name) == nil

    assert PyBridge.TestSupport.wait_until(fn -> :pg.get_members(PyBridge.PG, name) != [] end)
    assert PyBridge.Serving.batched_run(name, "across the cluster") == "across the cluster"
    assert PyBridge.Serving.batched_run({:distributed, name}, ["a", "b"]) == ["a", "b"]
  end

  test "a name no node serves exits with :noproc" do
    name = __MODULE__.Nowhere

    assert {:noproc, {PyBridge.Serving, :distributed_batched_run, [^name, "x"]}} =
             catch_exit(PyBridge.Serving.batched_run(name, "x"))
  end
end
