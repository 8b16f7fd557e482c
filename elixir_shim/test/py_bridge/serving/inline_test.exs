defmodule PyBridge.Serving.InlineTest do
  # PyBridge.Serving.run/2 starts one serving per distinct serving and keeps
  # it; a model that takes long to load must not hold up run/2 for others.
  use ExUnit.Case, async: true

  import PyBridge.TestSupport
  import PyBridge.FaultHelpers

  alias PyBridge.{Error, Serving}

  defp stop_inline(serving) do
    name = Serving.Inline.checkout(serving)
    supervisor = Process.whereis(Module.concat(name, "Supervisor"))
    DynamicSupervisor.terminate_child(PyBridge.InlineSupervisor, supervisor)
  end

  test "a slow model load does not hold up run/2 for another serving" do
    gate = trace_file("py_bridge_gate")
    slow = scripted_serving(["--on-load", "wait:" <> gate])
    fast = scripted_serving(["--trace", trace_file()])

    loading = Task.async(fn -> Serving.run(slow, "slow") end)
    # The slow worker is loading (and will until the gate opens) ...
    refute Task.yield(loading, 300)
    # ... and meanwhile another serving starts and answers.
    assert Serving.run(fast, "fast") == "fast"
    refute Task.yield(loading, 0)

    File.write!(gate, "")
    assert Task.await(loading, 10_000) == "slow"

    stop_inline(slow)
    stop_inline(fast)
  end

  test "concurrent first calls for one serving share its single start" do
    trace = trace_file()
    serving = scripted_serving(["--trace", trace])

    results =
      1..8
      |> Enum.map(fn i -> Task.async(fn -> Serving.run(serving, "call #{i}") end) end)
      |> Enum.map(&Task.await(&1, 10_000))

    assert results == Enum.map(1..8, &"call #{&1}")
    assert Enum.count(trace_lines(trace), &(&1 == "load")) == 1
    stop_inline(serving)
  end

  test "a serving that cannot load raises its error, and the next call tries again" do
    trace = trace_file()
    serving = scripted_serving(["--trace", trace, "--on-load", "raise:no weights here"])

    assert_raise Error, "(model_load_failed) RuntimeError: no weights here", fn ->
      Serving.run(serving, "x")
    end

    assert_raise Error, ~r/no weights here/, fn -> Serving.run(serving, "x") end
    assert Enum.count(trace_lines(trace), &(&1 == "load")) == 2
  end
end
