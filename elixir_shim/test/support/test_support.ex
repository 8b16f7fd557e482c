defmodule PyBridge.TestSupport do
  @moduledoc false
  # Helpers for tests that need real models and independent reference values.

  @repo_root Path.expand("../../..", __DIR__)

  def repo_root, do: @repo_root

  def python do
    System.get_env("PYBRIDGE_PYTHON") || Path.join(@repo_root, ".venv/bin/python")
  end

  @doc "Builds (or finds in the cache) a tiny random-weight model; returns its directory."
  def tiny_model(name) do
    {out, 0} =
      System.cmd(python(), [Path.join(@repo_root, "tests/tiny_models.py"), name], env: env())

    out |> String.split("\n", trim: true) |> List.last()
  end

  @doc """
  Reference values computed by transformers / sentence-transformers directly
  (tests/reference.py), decoded from the ETF term the script writes.
  """
  def reference(args) do
    {out, 0} =
      System.cmd(python(), [Path.join(@repo_root, "tests/reference.py") | args], env: env())

    :erlang.binary_to_term(out)
  end

  @doc "A fake worker program from test/support/workers, run by the venv's Python."
  def fake_worker(name) do
    [python(), Path.join([@repo_root, "elixir_shim/test/support/workers", name <> ".py"])]
  end

  @doc """
  A serving run by test/support/workers/scripted.py: the real `bridge serve`
  with a task that does what each item says (see the script's docstring).
  `flags` go before `serve`, e.g. `["--on-load", "raise:boom"]`. With
  `stream: true` the serving streams, as generation servings do.
  """
  def scripted_serving(flags \\ [], opts \\ []) do
    dir = Path.join(System.tmp_dir!(), "py_bridge_fake_model")
    config = Path.join(dir, "config.json")

    # Written once, by rename, so a worker of a concurrent test never reads half a file.
    unless File.exists?(config) do
      File.mkdir_p!(dir)
      partial = "#{config}.#{System.unique_integer([:positive])}"
      File.write!(partial, ~s({"model_type": "fake", "architectures": ["FakeModel"]}))
      File.rename!(partial, config)
    end

    model = %PyBridge.Model{
      repository: {:local, dir},
      device: "cpu",
      bridge_command: fake_worker("scripted") ++ flags
    }

    serving = PyBridge.Serving.new(model, :scripted, %{})

    if opts[:stream],
      do: %{serving | streaming: %{done: false, chunk: &[&1], final: & &1}},
      else: serving
  end

  @doc """
  What a generating serving (Whisper, image-to-text) needs from one
  repository, with the generation config configured by `config`.
  """
  def load_generating(repo, config) do
    {:ok, model_info} = PyBridge.load_model(repo)
    {:ok, featurizer} = PyBridge.load_featurizer(repo)
    {:ok, tokenizer} = PyBridge.load_tokenizer(repo)
    {:ok, generation_config} = PyBridge.load_generation_config(repo)

    %{
      model_info: model_info,
      featurizer: featurizer,
      tokenizer: tokenizer,
      generation_config: PyBridge.configure(generation_config, config)
    }
  end

  @doc "A fresh directory, removed when the calling test module is done."
  def scratch_dir(label) do
    dir = Path.join(System.tmp_dir!(), "pybridge-#{label}-#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    ExUnit.Callbacks.on_exit(fn -> File.rm_rf!(dir) end)
    dir
  end

  def os_alive?(os_pid) do
    match?({_, 0}, System.cmd("kill", ["-0", Integer.to_string(os_pid)], stderr_to_stdout: true))
  end

  def wait_until(fun, timeout \\ 5_000) do
    deadline = System.monotonic_time(:millisecond) + timeout
    do_wait(fun, deadline)
  end

  defp do_wait(fun, deadline) do
    cond do
      fun.() ->
        true

      System.monotonic_time(:millisecond) > deadline ->
        false

      true ->
        Process.sleep(50)
        do_wait(fun, deadline)
    end
  end

  def cosine(a, b) do
    dot = Enum.zip(a, b) |> Enum.map(fn {x, y} -> x * y end) |> Enum.sum()
    dot / (norm(a) * norm(b))
  end

  defp norm(v), do: :math.sqrt(Enum.reduce(v, 0.0, &(&1 * &1 + &2)))

  defp env do
    [{"HF_HUB_OFFLINE", "1"}, {"TRANSFORMERS_OFFLINE", "1"}]
  end
end
