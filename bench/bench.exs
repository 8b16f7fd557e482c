# PyBridge benchmarks: every figure is a ratio against a baseline measured in
# the same run, on the same machine, side by side.
#
#     make bench            # or: cd elixir_shim && mix run ../bench/bench.exs
#
# Environment: BENCH_QUICK=1 runs smaller counts (a smoke run, not a measurement).

defmodule Bench do
  @repo_root Path.expand("..", __DIR__)
  @quick System.get_env("BENCH_QUICK") == "1"

  def quick?, do: @quick
  def repo_root, do: @repo_root
  def python, do: Path.join(@repo_root, ".venv/bin/python")
  def bridge, do: Path.join(@repo_root, ".venv/bin/bridge")

  def median(list) do
    sorted = Enum.sort(list)
    Enum.at(sorted, div(length(sorted), 2))
  end

  def time_us(fun) do
    {us, _} = :timer.tc(fun)
    us
  end

  # -- the bare {packet, 4} echo ------------------------------------------------

  def open_echo do
    Port.open({:spawn_executable, python()}, [
      :binary,
      :nouse_stdio,
      {:packet, 4},
      args: [Path.join(@repo_root, "bench/echo_port.py")]
    ])
  end

  def bare_round_trip(port, term) do
    Port.command(port, :erlang.term_to_binary(term))

    receive do
      {^port, {:data, data}} -> :erlang.binary_to_term(data)
    end
  end

  # -- PyBridge's echo task through a supervised serving ---------------------------

  def start_echo_serving(name) do
    model = %PyBridge.Model{repository: {:hf, "sentence-transformers/all-MiniLM-L6-v2", []}}
    serving = PyBridge.Serving.new(model, :echo, %{})

    {:ok, _} =
      PyBridge.Serving.start_link(serving: serving, name: name, batch_size: 1, batch_timeout: 0)

    name
  end

  # -- embeddings -------------------------------------------------------------

  def texts(n) do
    topics = ~w(bread markets cats rivers engines music gardens trains galaxies elections)

    for i <- 1..n do
      topic = Enum.at(topics, rem(i, length(topics)))
      words = String.duplicate("and more about #{topic} ", rem(i, 7))
      "Sentence #{i} is about #{topic} #{words}and ends here."
    end
  end

  def embedding_serving do
    repo = {:hf, "sentence-transformers/all-MiniLM-L6-v2"}
    {:ok, info} = PyBridge.load_model(repo)
    {:ok, tok} = PyBridge.load_tokenizer(repo)

    PyBridge.Text.text_embedding(info, tok,
      output_attribute: :hidden_state,
      output_pool: :mean_pooling,
      embedding_processor: :l2_norm
    )
  end

  # `callers` processes share the texts; each sends one text per request.
  def concurrent(texts, callers, fun) do
    chunks = Enum.chunk_every(texts, max(div(length(texts), callers), 1))

    us =
      time_us(fn ->
        chunks
        |> Enum.map(fn chunk -> Task.async(fn -> Enum.each(chunk, fun) end) end)
        |> Task.await_many(:infinity)
      end)

    length(texts) / (us / 1_000_000)
  end

  # -- FastAPI + JSON ---------------------------------------------------------

  def start_fastapi(port_number) do
    port =
      Port.open({:spawn_executable, python()}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        args: [Path.join(@repo_root, "bench/fastapi_server.py"), "--port", Integer.to_string(port_number)]
      ])

    wait_http(port_number, 120)
    port
  end

  defp wait_http(_port, 0), do: raise("the FastAPI server did not start")

  defp wait_http(port_number, tries) do
    case :httpc.request(:get, {~c"http://127.0.0.1:#{port_number}/docs", []}, [], []) do
      {:ok, _} ->
        :ok

      {:error, _} ->
        Process.sleep(1000)
        wait_http(port_number, tries - 1)
    end
  end

  def fastapi_embed(port_number, text) do
    body = ~s({"texts": [) <> json_string(text) <> "]}"
    url = ~c"http://127.0.0.1:#{port_number}/embed"

    {:ok, {{_, 200, _}, _, response}} =
      :httpc.request(:post, {url, [], ~c"application/json", body}, [], body_format: :binary)

    parse_floats(response)
  end

  defp json_string(text) do
    escaped = text |> String.replace("\\", "\\\\") |> String.replace("\"", "\\\"")
    "\"" <> escaped <> "\""
  end

  # The response is {"embeddings": [[f, f, ...]]}: numbers are all we need.
  defp parse_floats(json) do
    Regex.scan(~r/-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?/, json)
    |> Enum.map(fn [n] -> String.to_float(if String.contains?(n, [".", "e", "E"]), do: fix(n), else: n <> ".0") end)
  end

  defp fix(n), do: if(String.contains?(n, "."), do: n, else: String.replace(n, ~r/[eE]/, ".0e"))

  # -- reporting --------------------------------------------------------------

  def report(rows) do
    header = "| What | PyBridge | Baseline | Ratio | Goal | Met |"
    line = "|---|---|---|---|---|---|"

    body =
      for {what, ours, base, unit, ratio, goal, met?} <- rows do
        "| #{what} | #{fmt(ours)} #{unit} | #{fmt(base)} #{unit} | #{fmt(ratio)}x | #{goal} | #{if met?, do: "yes", else: "no"} |"
      end

    chart =
      for {what, _ours, _base, _unit, ratio, _goal, _} <- rows do
        bar = String.duplicate("#", min(round(ratio * 20), 80))
        String.pad_trailing(String.slice(what, 0, 38), 38) <> " " <> bar <> " " <> fmt(ratio)
      end

    Enum.join([header, line | body], "\n") <>
      "\n\nRatio (PyBridge / baseline; 20 '#' = 1.0):\n" <> Enum.join(chart, "\n") <> "\n"
  end

  defp fmt(x) when is_float(x), do: :erlang.float_to_binary(x, decimals: 2)
  defp fmt(x), do: to_string(x)
end

Application.ensure_all_started(:inets)
Application.put_env(:py_bridge, :bridge_command, Bench.bridge())
Logger.configure(level: :warning)

quick = Bench.quick?()
IO.puts("PyBridge benchmarks#{if quick, do: " (quick smoke run)", else: ""}\n")

# 1. Small request round trip -------------------------------------------------------
echo_port = Bench.open_echo()
echo = Bench.start_echo_serving(Bench.Echo)
small = "a short request"
rounds = if quick, do: 2, else: 10
per_round = if quick, do: 50, else: 300

# Interleave the two in rounds so that drift in the machine hits both alike.
{bare_us, bridge_us} =
  Enum.reduce(1..rounds, {[], []}, fn _, {bare, bridge} ->
    b = for _ <- 1..per_round, do: Bench.time_us(fn -> Bench.bare_round_trip(echo_port, {:run, 1, [small]}) end)
    p = for _ <- 1..per_round, do: Bench.time_us(fn -> PyBridge.Serving.batched_run(echo, small) end)
    {b ++ bare, p ++ bridge}
  end)

small_bare = Bench.median(bare_us) * 1.0
small_bridge = Bench.median(bridge_us) * 1.0
IO.puts("small round trip: bare #{small_bare} us, PyBridge #{small_bridge} us (medians)")

# 2. 16 MB tensor round trip ---------------------------------------------------------
mb = 16
tensor = PyBridge.Tensor.new(:crypto.strong_rand_bytes(mb * 1024 * 1024), {:u, 8}, {mb * 1024 * 1024})
big_rounds = if quick, do: 3, else: 15

{big_bare, big_bridge} =
  Enum.reduce(1..big_rounds, {[], []}, fn _, {bare, bridge} ->
    b = Bench.time_us(fn -> Bench.bare_round_trip(echo_port, {:run, 1, [tensor]}) end)
    p = Bench.time_us(fn -> PyBridge.Serving.batched_run(echo, tensor) end)
    {[b | bare], [p | bridge]}
  end)

# Throughput in MB/s of round trips (bytes sent and received back).
big_bare_mbs = mb / (Bench.median(big_bare) / 1_000_000)
big_bridge_mbs = mb / (Bench.median(big_bridge) / 1_000_000)
IO.puts("16 MB round trip: bare #{Float.round(big_bare_mbs, 1)} MB/s, PyBridge #{Float.round(big_bridge_mbs, 1)} MB/s")

# 3. Embeddings/s with 64 concurrent callers vs a plain Python loop --------------------
batch_size = 32
texts = Bench.texts(if quick, do: 256, else: 2048)
texts_file = Path.join(System.tmp_dir!(), "pybridge_bench_texts.json")
File.write!(texts_file, "[" <> Enum.map_join(texts, ",", &inspect/1) <> "]")

{:ok, _} =
  PyBridge.Serving.start_link(
    serving: Bench.embedding_serving(),
    name: Bench.Embeddings,
    batch_size: batch_size,
    batch_timeout: 10
  )

# Warm-up, as the loop baseline warms up too.
PyBridge.Serving.batched_run(Bench.Embeddings, Enum.take(texts, batch_size))
bridge_eps = Bench.concurrent(texts, 64, &PyBridge.Serving.batched_run(Bench.Embeddings, &1))

{loop_out, 0} =
  System.cmd(Bench.python(), [
    Path.join(Bench.repo_root(), "bench/python_loop.py"),
    "--texts",
    texts_file,
    "--batch-size",
    Integer.to_string(batch_size)
  ])

loop_eps = loop_out |> String.split() |> List.last() |> String.to_float()
IO.puts("embeddings/s: PyBridge #{Float.round(bridge_eps, 1)}, Python loop #{Float.round(loop_eps, 1)}")

# 4. The same 64 callers against FastAPI + JSON ------------------------------------------
http_port = 18_000 + :rand.uniform(1000)
fastapi = Bench.start_fastapi(http_port)
Bench.fastapi_embed(http_port, "warm up")
:httpc.set_options(max_sessions: 64, max_keep_alive_length: 64)
fastapi_eps = Bench.concurrent(texts, 64, &Bench.fastapi_embed(http_port, &1))
IO.puts("embeddings/s: FastAPI + JSON #{Float.round(fastapi_eps, 1)}")
# Closing the port closes the server's stdin, which it watches; the kill is
# for a server that hangs anyway.
{:os_pid, fastapi_os_pid} = Port.info(fastapi, :os_pid)
Port.close(fastapi)
System.cmd("kill", [Integer.to_string(fastapi_os_pid)], stderr_to_stdout: true)

rows = [
  {"small request round trip (median)", small_bridge, small_bare, "us", small_bridge / small_bare, "<= 1.5x",
   small_bridge / small_bare <= 1.5},
  {"16 MB tensor round trip", big_bridge_mbs, big_bare_mbs, "MB/s", big_bridge_mbs / big_bare_mbs, ">= 0.8x",
   big_bridge_mbs / big_bare_mbs >= 0.8},
  {"embeddings/s vs Python loop", bridge_eps, loop_eps, "emb/s", bridge_eps / loop_eps, ">= 0.95x",
   bridge_eps / loop_eps >= 0.95},
  {"embeddings/s vs FastAPI + JSON", bridge_eps, fastapi_eps, "emb/s", bridge_eps / fastapi_eps, ">= 1.0x",
   bridge_eps / fastapi_eps >= 1.0}
]

table = Bench.report(rows)
IO.puts("\n" <> table)
results_dir = Path.join(Bench.repo_root(), "bench/results")
File.mkdir_p!(results_dir)
File.write!(Path.join(results_dir, "latest.md"), table)
IO.puts("Written to bench/results/latest.md")
