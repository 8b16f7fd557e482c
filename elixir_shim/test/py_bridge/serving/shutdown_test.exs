defmodule PyBridge.Serving.ShutdownTest do
  # Every way of stopping a serving leaves no OS process behind: a clean
  # stop, a worker that will not stop, a worker process killed outright, and
  # the whole BEAM killed with SIGKILL.
  use ExUnit.Case, async: true

  import PyBridge.TestSupport
  import PyBridge.FaultHelpers

  alias PyBridge.{Error, Serving}

  defp occupy(name, item) do
    task = Task.async(fn -> catch_exit(Serving.batched_run(name, item)) end)
    assert wait_until(fn -> tables(name).batches == 1 end)
    task
  end

  defp assert_gone(os_pid, within) do
    assert wait_until(fn -> not os_alive?(os_pid) end, within),
           "OS process #{os_pid} is still alive"
  end

  describe "stopping the serving" do
    test "lets a batch that finishes within :shutdown answer its caller" do
      name = start_scripted([], shutdown: 5_000)
      [os_pid] = os_pids(name)
      running = Task.async(fn -> Serving.batched_run(name, {:sleep, 700, "finished"}) end)
      assert wait_until(fn -> tables(name).batches == 1 end)
      queued = Task.async(fn -> catch_exit(Serving.batched_run(name, "queued")) end)
      assert wait_until(fn -> tables(name).queued == 1 end)

      stop_supervised!(name)

      assert Task.await(running) == "finished"

      assert {%Error{type: :cancelled} = error, {Serving, :batched_run, [^name, "queued"]}} =
               Task.await(queued)

      assert error.message =~ "shutting down"
      # The idle worker was asked to exit and did, before the serving returned.
      refute os_alive?(os_pid)
    end

    test "fails a batch that runs past :shutdown, then stops the worker with SIGTERM" do
      name = start_scripted([], shutdown: 300)
      [os_pid] = os_pids(name)
      input = {:sleep, 60_000, "never"}
      running = occupy(name, input)

      stop_supervised!(name)

      assert {%Error{type: :cancelled} = error, {Serving, :batched_run, [^name, ^input]}} =
               Task.await(running)

      assert error.message =~ ":shutdown (300 ms)"
      refute os_alive?(os_pid)
    end

    test "kills a worker that ignores SIGTERM while it holds the GIL in native code" do
      name = start_scripted(["--ignore-sigterm"], shutdown: 200)
      [os_pid] = os_pids(name)
      running = occupy(name, {:hang_gil, 600})

      stop_supervised!(name)

      assert {%Error{type: :cancelled}, _} = Task.await(running)
      refute os_alive?(os_pid)
    end
  end

  describe "a worker process killed outright" do
    test "takes its OS process with it, even one stuck in native code" do
      name = start_scripted(["--ignore-sigterm"])
      [worker] = worker_pids(name)
      os_pid = os_pid(worker)
      running = occupy(name, {:hang_gil, 600})

      # No terminate/2 runs: only the watcher started with the port is left
      # to stop the OS process, which cannot see its input close.
      Process.exit(worker, :kill)

      assert {%Error{type: :worker_crashed}, _} = Task.await(running)
      assert_gone(os_pid, 5_000)
      assert wait_until(fn -> match?([pid] when pid != os_pid, os_pids(name)) end, 10_000)
      assert Serving.batched_run(name, "restarted") == "restarted"
    end
  end

  describe "the BEAM killed with SIGKILL" do
    @tag timeout: 60_000
    test "takes the worker with it within 2 seconds, even mid model call" do
      trace = trace_file()
      ebin = Application.app_dir(:py_bridge, "ebin")
      bridge = Application.fetch_env!(:py_bridge, :bridge_command)

      # The other BEAM starts a serving and blocks its worker in native code
      # holding the GIL, so only the kernel's parent-death signal can end it.
      script = """
      Application.put_env(:py_bridge, :bridge_command, #{inspect(bridge)})
      {:ok, _} = Application.ensure_all_started(:py_bridge)
      serving = PyBridge.TestSupport.scripted_serving(["--trace", #{inspect(trace)}])
      {:ok, _} = PyBridge.Serving.start_link(serving: serving, name: DoomedServing)
      spawn(fn -> PyBridge.Serving.batched_run(DoomedServing, {:hang_gil, 3600}) end)
      [os_pid] = PyBridge.FaultHelpers.os_pids(DoomedServing)
      IO.puts("PIDS \#{System.pid()} \#{os_pid}")
      Process.sleep(:infinity)
      """

      port =
        Port.open({:spawn_executable, System.find_executable("elixir")}, [
          :binary,
          :exit_status,
          :stderr_to_stdout,
          {:line, 1024},
          args: ["-pa", ebin, "-e", script]
        ])

      {beam, worker} = read_pids(port)
      # Should this test fail, the worker must not outlive it either (the
      # command-line check keeps a recycled pid safe).
      on_exit(fn ->
        with {:ok, cmdline} <- File.read("/proc/#{worker}/cmdline"),
             true <- String.contains?(cmdline, trace) do
          System.cmd("kill", ["-KILL", Integer.to_string(worker)])
        end
      end)

      assert os_alive?(worker)
      assert wait_until(fn -> Enum.any?(trace_lines(trace), &(&1 =~ "hang_gil")) end, 10_000)

      System.cmd("kill", ["-KILL", Integer.to_string(beam)])
      assert_receive {^port, {:exit_status, 137}}, 5_000

      assert_gone(worker, 2_000)
    end
  end

  defp read_pids(port) do
    receive do
      {^port, {:data, {:eol, "PIDS " <> pids}}} ->
        [beam, worker] = pids |> String.split() |> Enum.map(&String.to_integer/1)
        {beam, worker}

      {^port, {:data, _other}} ->
        read_pids(port)

      {^port, {:exit_status, status}} ->
        flunk("the other BEAM exited with status #{status} before starting its serving")
    after
      30_000 -> flunk("the other BEAM did not start its serving")
    end
  end
end
