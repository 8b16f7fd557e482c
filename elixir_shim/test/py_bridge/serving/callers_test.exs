defmodule PyBridge.Serving.CallersTest do
  # Callers that leave: they die, give up on their :timeout, or stop reading
  # a stream. Their queued work must never run, their running streams must
  # stop in the worker, and nothing may be left in the serving's tables.
  use ExUnit.Case, async: true

  import PyBridge.TestSupport
  import PyBridge.FaultHelpers
  import ExUnit.CaptureLog

  alias PyBridge.{Error, Serving}

  # The worker is busy with `item` (a sleep) once this returns.
  defp occupy(name, item) do
    task = Task.async(fn -> Serving.batched_run(name, item) end)
    assert wait_until(fn -> tables(name).batches == 1 end)
    task
  end

  describe "a caller that dies" do
    test "has its queued items removed before they run" do
      trace = trace_file()
      name = start_scripted(["--trace", trace])
      busy = occupy(name, {:sleep, 500, "busy"})

      victim = spawn(fn -> Serving.batched_run(name, ["victim-1", "victim-2"]) end)
      assert wait_until(fn -> tables(name).queued == 2 end)
      Process.exit(victim, :kill)

      assert wait_until(fn -> tables(name).queued == 0 end)
      assert Task.await(busy) == "busy"
      assert Serving.batched_run(name, "later") == "later"
      refute Enum.any?(trace_lines(trace), &(&1 =~ "victim"))
      assert_clean(name)
    end

    test "has its running stream cancelled in the worker" do
      trace = trace_file()
      name = start_scripted(["--trace", trace], stream: true)
      test = self()

      reader =
        spawn(fn ->
          name
          |> Serving.batched_run({:stream, 100_000, 5})
          |> Enum.each(fn chunk -> send(test, {:chunk, chunk}) end)
        end)

      assert_receive {:chunk, 2}, 5_000
      Process.exit(reader, :kill)

      assert wait_until(fn -> Enum.any?(trace_lines(trace), &(&1 =~ "cancelled")) end)
      assert_clean(name)
      assert name |> Serving.batched_run({:stream, 2, 1}) |> Enum.to_list() == [0, 1]
    end
  end

  describe "a caller's :timeout" do
    test "exits the caller like GenServer.call and removes its queued item" do
      trace = trace_file()
      name = start_scripted(["--trace", trace])
      busy = occupy(name, {:sleep, 600, "busy"})

      assert catch_exit(Serving.batched_run(name, "too-late", timeout: 100)) ==
               {:timeout, {Serving, :batched_run, [name, "too-late"]}}

      assert tables(name).queued == 0
      assert Task.await(busy) == "busy"
      assert_clean(name)
      refute Enum.any?(trace_lines(trace), &(&1 =~ "too-late"))
    end

    test "drops the reply that arrives after the caller left, without noise" do
      name = start_scripted()

      # Other tests log concurrently; only this serving's records count.
      log =
        capture_log([metadata: [:serving]], fn ->
          assert {:timeout, _} =
                   catch_exit(Serving.batched_run(name, {:sleep, 400, "late"}, timeout: 50))

          # The worker finishes the batch anyway (a sleep cannot be cancelled).
          assert_clean(name)
          assert wait_until(fn -> tables(name).idle_workers == 1 end)
          assert Serving.batched_run(name, "next") == "next"
        end)

      refute_received _
      ours = log |> String.split("\n") |> Enum.filter(&(&1 =~ "serving=#{inspect(name)}"))
      refute Enum.any?(ours, &(&1 =~ ~r/\[(warning|error)\]/)), Enum.join(ours, "\n")
    end

    test "ends a stream and cancels it in the worker" do
      trace = trace_file()
      name = start_scripted(["--trace", trace], stream: true)
      input = {:stream, 100_000, 5}

      assert catch_exit(name |> Serving.batched_run(input, timeout: 200) |> Enum.to_list()) ==
               {:timeout, {Serving, :batched_run, [name, input]}}

      assert wait_until(fn -> Enum.any?(trace_lines(trace), &(&1 =~ "cancelled")) end)
      assert_clean(name)
    end

    test "is not there by default" do
      name = start_scripted()
      assert Serving.batched_run(name, {:sleep, 1_200, "slow"}) == "slow"
    end
  end

  describe "a stream halted early" do
    test "is cancelled in the worker" do
      trace = trace_file()
      name = start_scripted(["--trace", trace], stream: true)

      assert name |> Serving.batched_run({:stream, 100_000, 5}) |> Enum.take(3) == [0, 1, 2]
      assert wait_until(fn -> Enum.any?(trace_lines(trace), &(&1 =~ "cancelled")) end)
      assert_clean(name)
      refute_received _
    end
  end

  describe ":max_queue" do
    test "callers past it get :overloaded at once; the queue is kept" do
      name = start_scripted([], max_queue: 2)
      busy = occupy(name, {:sleep, 800, "busy"})
      queued = Task.async(fn -> Serving.batched_run(name, ["q1", "q2"]) end)
      assert wait_until(fn -> tables(name).queued == 2 end)

      error = catch_error(Serving.batched_run(name, "one too many"))
      assert %Error{type: :overloaded, retryable: true} = error
      assert error.message =~ "max_queue: 2"

      assert Task.await(busy) == "busy"
      assert Task.await(queued) == ["q1", "q2"]
      assert Serving.batched_run(name, "room again") == "room again"
      assert_clean(name)
    end

    test "a request larger than the whole queue is refused as never fitting" do
      name = start_scripted([], max_queue: 2)
      error = catch_error(Serving.batched_run(name, ["a", "b", "c"]))
      assert %Error{type: :overloaded, retryable: false} = error
      assert error.message =~ "a request of 3 items can never fit"
      assert Serving.batched_run(name, ["a", "b"]) == ["a", "b"]
      assert_clean(name)
    end

    test "defaults to 10_000" do
      name = start_scripted([], batch_size: 1)
      busy = occupy(name, {:sleep, 1_500, "busy"})

      assert %Error{type: :overloaded} =
               catch_error(Serving.batched_run(name, List.duplicate("x", 10_001)))

      queued = Task.async(fn -> Serving.batched_run(name, List.duplicate("x", 10_000)) end)
      assert wait_until(fn -> tables(name).queued == 10_000 end)
      Task.shutdown(queued, :brutal_kill)
      assert Task.await(busy) == "busy"
      assert_clean(name)
    end
  end

  describe ":max_frame_bytes" do
    test "an input larger than the limit fails in its caller; others are served" do
      name = start_scripted([], max_frame_bytes: 4_096)
      error = catch_error(Serving.batched_run(name, String.duplicate("x", 10_000)))
      assert %Error{type: :frame_too_large} = error
      assert error.message =~ "4096"
      assert Serving.batched_run(name, "small") == "small"
      assert_clean(name)
    end
  end
end
