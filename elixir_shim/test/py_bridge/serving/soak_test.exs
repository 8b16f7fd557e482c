defmodule PyBridge.Serving.SoakTest do
  # Many callers against a fast echo worker (two partitions) while callers
  # are killed at random moments and each worker is killed once. Bounded in
  # count (64 callers × 100 requests by default; SOAK_REQUESTS sets the
  # requests per caller) and in time, so it runs by default.
  use ExUnit.Case, async: true

  import PyBridge.TestSupport
  import PyBridge.FaultHelpers

  alias PyBridge.{Error, Serving}

  @moduletag :soak
  @moduletag timeout: 180_000

  @callers 64
  @caller_kills 12

  test "every live caller gets exactly one answer per request, and nothing leaks" do
    per_caller = String.to_integer(System.get_env("SOAK_REQUESTS", "100"))
    total = @callers * per_caller
    name = start_scripted([], partitions: 2, batch_size: 8, batch_timeout: 2)
    [first_os_pid, second_os_pid] = os_pids(name)
    test = self()

    callers =
      Map.new(1..@callers, fn c ->
        {pid, _ref} = spawn_monitor(fn -> caller(test, name, c, per_caller) end)
        {pid, c}
      end)

    # What happens once how many answers have arrived: a worker is killed
    # at a third and at two thirds, callers at random points in between.
    chaos =
      [
        {div(total, 3), {:kill_worker, first_os_pid}},
        {div(2 * total, 3), {:kill_worker, second_os_pid}}
      ] ++
        for pid <- callers |> Map.keys() |> Enum.take_random(@caller_kills) do
          {Enum.random(div(total, 20)..div(9 * total, 10)), {:kill_caller, pid}}
        end

    {answers, done, killed} = run(%{}, %{}, [], Enum.sort(chaos), map_size(callers))

    # Every caller that was not killed finished, each request answered
    # exactly once, with its own input or a crash of the worker it was on.
    assert map_size(done) + length(killed) == @callers

    for {c, stray} <- done do
      assert stray == [], "caller #{c} got answers after its last request: #{inspect(stray)}"

      for r <- 1..per_caller do
        assert [outcome] = Map.get(answers, {c, r}, []),
               "request #{r} of caller #{c}: #{inspect(answers[{c, r}])}"

        case outcome do
          {:ok, result} ->
            assert result == input(c, r)

          {:exit, reason} ->
            assert {%Error{type: :worker_crashed}, {Serving, :batched_run, [^name, _]}} = reason
        end
      end
    end

    # A killed caller's requests were answered at most once too.
    assert Enum.all?(answers, fn {_, outcomes} -> length(outcomes) == 1 end)
    assert Enum.count(answers, fn {_, [o]} -> match?({:ok, _}, o) end) > total / 2
    # The chaos was real: callers died, and worker crashes failed requests.
    assert killed != []
    assert Enum.any?(answers, fn {_, [o]} -> match?({:exit, _}, o) end)

    assert_clean(name)
    assert wait_until(fn -> tables(name).idle_workers == 2 end, 10_000)
    refute os_alive?(first_os_pid) or os_alive?(second_os_pid)
    final_os_pids = os_pids(name)

    stop_supervised!(name)
    refute Enum.any?(final_os_pids, &os_alive?/1)
  end

  defp run(answers, done, killed, chaos, 0),
    do: {answers, done, killed} |> check_no_chaos_left(chaos)

  defp run(answers, done, killed, [{at, action} | rest] = chaos, running) do
    if count(answers) >= at do
      case action do
        {:kill_worker, os_pid} -> kill_os_process(os_pid)
        {:kill_caller, pid} -> Process.exit(pid, :kill)
      end

      run(answers, done, killed, rest, running)
    else
      await(answers, done, killed, chaos, running)
    end
  end

  defp run(answers, done, killed, [], running), do: await(answers, done, killed, [], running)

  defp await(answers, done, killed, chaos, running) do
    receive do
      {:answer, c, r, outcome} ->
        answers = Map.update(answers, {c, r}, [outcome], &[outcome | &1])
        run(answers, done, killed, chaos, running)

      {:done, c, stray} ->
        run(answers, Map.put(done, c, stray), killed, chaos, running)

      {:DOWN, _ref, :process, pid, :killed} ->
        run(answers, done, [pid | killed], chaos, running - 1)

      {:DOWN, _ref, :process, _pid, :normal} ->
        run(answers, done, killed, chaos, running - 1)

      {:DOWN, _ref, :process, _pid, reason} ->
        flunk("a caller crashed: #{inspect(reason)}")
    after
      30_000 ->
        flunk("no progress for 30 s: #{count(answers)} answers, #{map_size(done)} callers done")
    end
  end

  # Kills planned after the last answer never happened; that is fine.
  defp check_no_chaos_left(result, chaos) do
    assert Enum.all?(chaos, &match?({_, {:kill_caller, _}}, &1)), "a worker kill never happened"
    result
  end

  defp count(answers), do: map_size(answers)

  # Each caller sends its requests one after another; odd ones are batches.
  defp caller(test, name, c, per_caller) do
    for r <- 1..per_caller do
      outcome =
        try do
          {:ok, Serving.batched_run(name, input(c, r))}
        catch
          :exit, reason -> {:exit, reason}
        end

      send(test, {:answer, c, r, outcome})
    end

    # Anything arriving now would be an answer given twice.
    Process.sleep(50)
    {:messages, stray} = Process.info(self(), :messages)
    send(test, {:done, c, stray})
  end

  defp input(c, r) when rem(r, 2) == 1, do: ["c#{c}-r#{r}-a", "c#{c}-r#{r}-b"]
  defp input(c, r), do: "c#{c}-r#{r}"
end
