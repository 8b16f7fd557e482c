defmodule PyBridge.WorkerTest do
  # Fault injection: the worker is the real `bridge serve` with the scripted
  # task of test/support/workers/scripted.py, whose items crash it, hang it,
  # or write garbage on its frame channel.
  use ExUnit.Case, async: true

  import PyBridge.TestSupport
  import PyBridge.FaultHelpers, except: [unique_name: 0]
  import ExUnit.CaptureLog

  alias PyBridge.{Error, Serving}

  defp unique_name, do: unique_name(__MODULE__)
  defp start_serving(flags \\ [], opts \\ []), do: start_scripted(flags, opts)

  defp new_os_pid(name, old) do
    assert wait_until(fn -> match?([pid] when pid != old, os_pids(name)) end, 10_000)
    [pid] = os_pids(name)
    pid
  end

  defp start(flags, opts \\ []) do
    name = unique_name()
    Serving.start_link([serving: scripted_serving(flags), name: name] ++ opts)
  end

  defp crash_reason(name, input) do
    catch_exit(Serving.batched_run(name, input))
  end

  defp stderr_files(label) do
    Path.wildcard(Path.join(System.tmp_dir!(), "py_bridge-#{label}*.stderr"))
  end

  describe "a worker that dies while idle" do
    test "a batch handed to it after its OS process died runs on the restarted worker" do
      name = start_serving()
      [worker] = worker_pids(name)
      [old] = os_pids(name)

      # Hold the worker process so that the port's exit status and then the
      # new batch wait in its mailbox, in that order: the batch is never
      # written to the dead OS process.
      :sys.suspend(worker)
      kill_os_process(old)
      Process.sleep(300)
      caller = Task.async(fn -> Serving.batched_run(name, "after the crash") end)
      assert wait_until(fn -> tables(name).batches == 1 end)
      :sys.resume(worker)

      assert Task.await(caller, 15_000) == "after the crash"
      assert new_os_pid(name, old) != old
      assert_clean(name)
    end
  end

  describe "a worker that dies mid-batch" do
    test "fails its batch at once with the exit status and stderr, and restarts" do
      name = start_serving()
      [old] = os_pids(name)
      input = {:exit, 3}

      assert {%Error{type: :worker_crashed} = error, {Serving, :batched_run, [^name, ^input]}} =
               crash_reason(name, input)

      assert error.details.exit_status == 3
      assert error.details.os_pid == old
      assert "fake worker: exiting with status 3 mid-batch" in error.details.stderr
      assert error.retryable
      assert error.message =~ "with status 3"

      new_os_pid(name, old)
      refute os_alive?(old)
      assert Serving.batched_run(name, "after the crash") == "after the crash"
    end

    test "by a segfault in native code, reports the signal and Python's traceback" do
      name = start_serving()
      [old] = os_pids(name)

      assert {%Error{type: :worker_crashed} = error, _} = crash_reason(name, {:segfault})
      # Ports report death by signal N as 128 + N; SIGSEGV is 11.
      assert error.details.exit_status == 128 + 11
      assert error.message =~ "signal 11"
      stderr = Enum.join(error.details.stderr, "\n")
      assert stderr =~ "about to read address 0"
      assert stderr =~ "Segmentation fault"

      new_os_pid(name, old)
      assert Serving.batched_run(name, "alive") == "alive"
    end

    test "by SIGKILL from itself" do
      name = start_serving()
      assert {%Error{type: :worker_crashed} = error, _} = crash_reason(name, {:kill})
      assert error.details.exit_status == 128 + 9
    end

    test "by SIGKILL from outside, and queued work is answered by the new worker" do
      name = start_serving()
      [old] = os_pids(name)
      hung = Task.async(fn -> crash_reason(name, {:hang}) end)
      assert wait_until(fn -> Serving.Server.tables(name).batches == 1 end)
      queued = Task.async(fn -> Serving.batched_run(name, "queued behind the crash") end)
      assert wait_until(fn -> Serving.Server.tables(name).queued == 1 end)

      System.cmd("kill", ["-KILL", Integer.to_string(old)])

      assert {%Error{type: :worker_crashed, details: %{exit_status: 137}}, _} = Task.await(hung)
      assert Task.await(queued, 10_000) == "queued behind the crash"
      assert new_os_pid(name, old) != old
    end

    test "while streaming: the reader of the stream gets the chunks, then the crash" do
      name = start_serving([], stream: true)
      input = {:stream_exit, 3}
      test = self()
      stream = Serving.batched_run(name, input)

      assert {%Error{type: :worker_crashed}, {Serving, :batched_run, [^name, ^input]}} =
               catch_exit(Enum.each(stream, &send(test, {:chunk, &1})))

      assert_received {:chunk, 0}
      assert_received {:chunk, 1}
      assert_received {:chunk, 2}
      assert wait_until(fn -> Serving.Server.tables(name).idle_workers == 1 end, 10_000)
      assert name |> Serving.batched_run({:stream, 2, 1}) |> Enum.to_list() == [0, 1]
    end
  end

  describe "start_link/1" do
    setup do
      Process.flag(:trap_exit, true)
      :ok
    end

    test "reports a load failure with the Python exception's message" do
      assert {:error, %Error{type: :model_load_failed} = error} =
               start(["--on-load", "raise:the weights do not fit this config"])

      assert error.message == "RuntimeError: the weights do not fit this config"
      assert error.python_type == "RuntimeError"
    end

    test "reports a worker that dies while loading, with its status and stderr" do
      assert {:error, %Error{type: :worker_crashed} = error} = start(["--on-load", "exit:7"])
      assert error.details.exit_status == 7
      assert "fake worker: exiting while loading" in error.details.stderr
    end

    test "reports a segfault while loading" do
      assert {:error, %Error{type: :worker_crashed} = error} = start(["--on-load", "segfault"])
      assert error.details.exit_status == 139
    end

    test "reports a frame that is not a term instead of :ready" do
      assert {:error, %Error{type: :protocol_error}} = start(["--on-load", "garbage"])
    end

    test "reports a worker that speaks another protocol version" do
      assert {:error, %Error{type: :protocol_mismatch} = error} = start(["--protocol", "2"])
      assert error.message =~ "protocol 1"
      assert error.message =~ "speaks 2"
    end

    test "waits for a slow load when no :start_timeout is given" do
      assert {:ok, pid} = start(["--on-load", "sleep:1500"])
      Supervisor.stop(pid)
    end

    test "gives up after :start_timeout and stops the loading worker" do
      trace = trace_file()

      assert {:error, %Error{type: :timeout} = error} =
               start(["--trace", trace, "--on-load", "hang"], start_timeout: 300)

      assert error.message =~ "300 ms"
      # The worker that was loading is gone: nothing holds its stderr file open.
      assert_no_process_with(trace)
    end

    test "stops with the start error under the restart intensity instead of looping" do
      starts = trace_file("py_bridge_starts")

      name = unique_name()
      serving = scripted_serving(["--on-load", "once", "--starts", starts])

      {:ok, sup} =
        Serving.start_link(serving: serving, name: name, max_restarts: 2, max_seconds: 60)

      [old] = os_pids(name)
      hung = Task.async(fn -> crash_reason(name, {:hang}) end)
      assert wait_until(fn -> Serving.Server.tables(name).batches == 1 end)
      waiting = Task.async(fn -> crash_reason(name, "waits for a restart that never comes") end)
      assert wait_until(fn -> Serving.Server.tables(name).queued == 1 end)

      log =
        capture_log(fn ->
          System.cmd("kill", ["-KILL", Integer.to_string(old)])
          assert {%Error{type: :worker_crashed}, _} = Task.await(hung)

          assert {%Error{type: :model_load_failed} = error, _} = Task.await(waiting, 10_000)
          assert error.message =~ "the worker could not be restarted"
          assert error.message =~ "refuses to load again"
          assert_receive {:EXIT, ^sup, :shutdown}, 10_000
        end)

      assert log =~ "could not be restarted"
      # One good start, then at most one failed start per allowed restart plus the last.
      count = starts |> File.read!() |> String.split("\n", trim: true) |> length()
      assert count in 2..4
      refute Process.whereis(name)
    end
  end

  describe "the frame channel" do
    test "stdout writes during load and batches never corrupt a frame" do
      name = start_serving(["--on-load", "print"])
      assert Serving.batched_run(name, {:print, "after the noise"}) == "after the noise"
      assert Serving.batched_run(name, ["a", "b"]) == ["a", "b"]
    end

    test "a frame that is not a safe term fails the running batch; the worker keeps serving" do
      name = start_serving()
      [os_pid] = os_pids(name)

      log =
        capture_log(fn ->
          assert {%Error{type: :protocol_error} = error, _} = crash_reason(name, {:garbage, "x"})
          assert error.message =~ "not a safe Erlang term"
        end)

      assert log =~ "failing the running batch"
      assert Serving.batched_run(name, "next") == "next"
      assert os_pids(name) == [os_pid]
    end

    test "well-formed messages for no batch, or unknown, are ignored" do
      name = start_serving()

      log =
        capture_log(fn ->
          assert Serving.batched_run(name, {:odd, "kept"}) == "kept"
        end)

      assert log =~ "ignoring an unexpected message"
      assert Serving.batched_run(name, "next") == "next"
    end

    test "an item that fails alone raises for its caller; the rest of its batch is answered" do
      name = start_serving([], batch_size: 2, batch_timeout: 200)
      bad = Task.async(fn -> catch_error(Serving.batched_run(name, {:raise, "not this one"})) end)
      good = Task.async(fn -> Serving.batched_run(name, "this one") end)

      assert %Error{type: :bad_input, message: "not this one"} = Task.await(bad)
      assert Task.await(good) == "this one"
    end

    test "a result the codec cannot carry fails that item as :internal" do
      name = start_serving()

      assert %Error{type: :internal} =
               error = catch_error(Serving.batched_run(name, {:unencodable}))

      assert error.message =~ "cannot be sent"
    end
  end

  describe "the stderr file" do
    test "is unlinked once the worker runs, and gone after a crash, a failed start or a stop" do
      Process.flag(:trap_exit, true)
      name = start_serving()
      label = inspect(name)
      assert stderr_files(label) == []

      assert {%Error{type: :worker_crashed}, _} = crash_reason(name, {:exit, 1})
      assert wait_until(fn -> Serving.Server.tables(name).idle_workers == 1 end, 10_000)
      assert stderr_files(label) == []

      failing = unique_name()

      {:error, _} =
        Serving.start_link(serving: scripted_serving(["--on-load", "exit:2"]), name: failing)

      assert stderr_files(inspect(failing)) == []

      stop_supervised!(name)
      assert stderr_files(label) == []
    end

    test "stays bounded while the worker writes, and still yields the last lines" do
      name = start_serving()
      [os_pid] = os_pids(name)
      # 20 000 lines of ~115 bytes: over 2 MiB, past the 1 MiB bound twice.
      for _ <- 1..2, do: assert(Serving.batched_run(name, {:spew, 10_000}) == 10_000)

      # The file, unlinked but open as the worker's fd 2, was emptied after a reply.
      assert %File.Stat{size: size} = File.stat!("/proc/#{os_pid}/fd/2")
      assert size < 1_048_576

      assert {%Error{type: :worker_crashed} = error, _} = crash_reason(name, {:exit, 1})
      tail = error.details.stderr
      assert List.last(tail) == "fake worker: exiting with status 1 mid-batch"
      assert Enum.at(tail, -2) =~ "stderr line 9999 "
    end
  end
end
