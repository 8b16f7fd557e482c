defmodule PyBridge.PythonLoggingTest do
  use ExUnit.Case, async: false

  import PyBridge.TestSupport

  @moduletag :model

  # An Erlang :logger handler that forwards every event to the test process.
  def log(event, %{config: %{test: pid}}), do: send(pid, {:log_event, event})

  setup do
    previous = Logger.level()
    Logger.configure(level: :info)
    :ok = :logger.add_handler(:py_bridge_test, __MODULE__, %{config: %{test: self()}})

    on_exit(fn ->
      :logger.remove_handler(:py_bridge_test)
      Logger.configure(level: previous)
    end)
  end

  test "the worker's Python log records reach Logger with the serving's metadata" do
    dir = tiny_model("bert_base")
    {:ok, model_info} = PyBridge.load_model({:local, dir})
    {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})
    serving = PyBridge.Text.text_embedding(model_info, tokenizer)
    name = __MODULE__.Serving
    pid = start_supervised!({PyBridge.Serving, serving: serving, name: name})
    assert pid

    # The worker logs "loading <model> for <task> on <device>" at info level
    # from Python's logging; it must arrive as an Elixir log event.
    {meta, message} = receive_python_log("loading")
    assert message =~ "loading"
    assert message =~ "text_embedding"
    assert meta[:serving] == name
    assert meta[:model] == dir
    assert is_integer(meta[:os_pid]) and meta[:os_pid] > 0
    assert meta[:python_logger] == "py_bridge.server"
    assert os_alive?(meta[:os_pid])
  end

  # Skips OTP's own reports (supervisor progress) until a Python record comes.
  defp receive_python_log(containing) do
    receive do
      {:log_event, %{level: :info, meta: %{python_logger: _} = meta} = event} ->
        message = message(event)
        if message =~ containing, do: {meta, message}, else: receive_python_log(containing)

      {:log_event, _other} ->
        receive_python_log(containing)
    after
      30_000 -> flunk("no Python log record containing #{inspect(containing)} arrived")
    end
  end

  defp message(%{msg: {:string, message}}), do: IO.chardata_to_string(message)

  defp message(%{msg: {format, args}}) when is_list(args),
    do: format |> :io_lib.format(args) |> IO.chardata_to_string()

  defp message(%{msg: {:report, report}}), do: inspect(report)
end
