defmodule PyBridge.Serving.StartTest do
  # Not async: it counts the inline servings PyBridge runs, which async
  # modules start and stop concurrently.
  use ExUnit.Case, async: false

  # The echo task loads no model, so these servings start in well under a second.
  defp echo_serving do
    model = %PyBridge.Model{repository: {:hf, "sentence-transformers/all-MiniLM-L6-v2", []}}
    PyBridge.Serving.new(model, :echo, %{})
  end

  test "starting a second serving under a taken name leaves the first one serving" do
    name = __MODULE__.Taken
    pid = start_supervised!({PyBridge.Serving, serving: echo_serving(), name: name})
    server = Process.whereis(name)

    other = PyBridge.Serving.client_preprocessing(echo_serving(), fn _ -> raise "not mine" end)

    assert {:error, {:already_started, ^server}} =
             PyBridge.Serving.start_link(serving: other, name: name)

    assert Process.alive?(pid)
    assert PyBridge.Serving.batched_run(name, "still here") == "still here"
  end

  test "start_link checks its options before it starts anything" do
    for {opts, message} <- [
          {[log_level: :verbose], ~r/expected :log_level to be one of/},
          {[device: :cpu], ~r/expected :device to be a device string/},
          {[max_queue: 0], ~r/expected :max_queue to be a positive integer/},
          {[batch_timeout: -1], ~r/expected :batch_timeout to be a non-negative integer/}
        ] do
      assert_raise ArgumentError, message, fn ->
        PyBridge.Serving.start_link([serving: echo_serving(), name: __MODULE__.Options] ++ opts)
      end
    end

    refute Process.whereis(__MODULE__.Options)
  end

  test "run/2 validates the input before it starts a worker" do
    serving =
      PyBridge.Serving.client_preprocessing(echo_serving(), fn
        input when is_binary(input) -> {[input], :single}
        other -> raise ArgumentError, "invalid input, got: #{inspect(other)}"
      end)

    workers_before = DynamicSupervisor.count_children(PyBridge.InlineSupervisor).active

    assert_raise ArgumentError, "invalid input, got: 42", fn ->
      PyBridge.Serving.run(serving, 42)
    end

    assert DynamicSupervisor.count_children(PyBridge.InlineSupervisor).active == workers_before
  end
end
