defmodule PyBridge.FaultHelpers do
  @moduledoc false
  # Helpers for the fault, shutdown and soak tests: servings run by the
  # scripted worker (test/support/workers/scripted.py), their workers' OS
  # pids, and checks that nothing was left behind.

  import ExUnit.Assertions
  import PyBridge.TestSupport

  alias PyBridge.Serving

  def unique_name(prefix \\ PyBridge.Faults),
    do: Module.concat(prefix, "S#{System.unique_integer([:positive])}")

  @doc """
  Starts a serving of the scripted worker under the test's supervisor and
  returns its name. `flags` go to the script; `:stream` makes it a streaming
  serving; other options go to `PyBridge.Serving.start_link/1`.
  """
  def start_scripted(flags \\ [], opts \\ []) do
    {name, opts} = Keyword.pop_lazy(opts, :name, &unique_name/0)
    {stream, opts} = Keyword.pop(opts, :stream, false)
    serving = scripted_serving(flags, stream: stream)

    ExUnit.Callbacks.start_supervised!({Serving, [serving: serving, name: name] ++ opts}, id: name)

    name
  end

  @doc "A file the scripted worker appends its events to (`--trace`), removed after the test."
  def trace_file(prefix \\ "py_bridge_trace") do
    path =
      Path.join(
        System.tmp_dir!(),
        "#{prefix}_#{System.pid()}_#{System.unique_integer([:positive])}"
      )

    ExUnit.Callbacks.on_exit(fn -> File.rm(path) end)
    path
  end

  def trace_lines(path) do
    case File.read(path) do
      {:ok, text} -> String.split(text, "\n", trim: true)
      {:error, :enoent} -> []
    end
  end

  @doc "The serving's worker processes (not the OS processes)."
  def worker_pids(name) do
    {_, workers, _, _} =
      name
      |> Module.concat("Supervisor")
      |> Supervisor.which_children()
      |> List.keyfind(:workers, 0)

    for {_, pid, _, _} <- Supervisor.which_children(workers), is_pid(pid), do: pid
  end

  @doc "The OS pids of the serving's workers; a worker that is stopping has none."
  def os_pids(name) do
    for pid <- worker_pids(name), os_pid = os_pid(pid), do: os_pid
  end

  def os_pid(worker) do
    :sys.get_state(worker).os_pid
  catch
    :exit, _ -> nil
  end

  def kill_os_process(os_pid), do: System.cmd("kill", ["-KILL", Integer.to_string(os_pid)])

  def tables(name), do: Serving.Server.tables(name)

  @doc "Waits until the serving holds no request, queued item, batch or timer."
  def assert_clean(name, timeout \\ 10_000) do
    clean? = fn ->
      t = tables(name)

      t.queued == 0 and t.queue_entries == 0 and t.requests == 0 and t.monitors == 0 and
        t.batches == 0 and t.timers == 0 and t.due == 0
    end

    assert wait_until(clean?, timeout), "tables not clean: #{inspect(tables(name))}"
  end

  @doc "Waits until no OS process has `marker` on its command line."
  def assert_no_process_with(marker, timeout \\ 5_000) do
    gone? = fn ->
      {out, 0} = System.cmd("ps", ["-eo", "args"])
      not String.contains?(out, marker)
    end

    assert wait_until(gone?, timeout),
           "a process with #{marker} on its command line is still running"
  end

  def await_exit(pid, timeout \\ 5_000) do
    ref = Process.monitor(pid)

    receive do
      {:DOWN, ^ref, :process, ^pid, reason} -> reason
    after
      timeout -> flunk("#{inspect(pid)} did not exit within #{timeout} ms")
    end
  end
end
