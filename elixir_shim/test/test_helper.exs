# The worker under test is the repository's own, from the venv `make setup` builds.
repo_root = Path.expand("../..", __DIR__)
bridge = System.get_env("PYBRIDGE_BRIDGE_COMMAND") || Path.join(repo_root, ".venv/bin/bridge")

unless File.exists?(bridge) do
  raise "cannot find the bridge program at #{bridge}: run `make setup` first"
end

Application.put_env(:py_bridge, :bridge_command, bridge)
Logger.configure(level: :warning)

# The distribution tests need this VM to be a node. epmd listens on loopback only.
distributed? =
  Node.alive?() or
    (match?(
       {_, 0},
       System.cmd("epmd", ["-daemon", "-address", "127.0.0.1"], stderr_to_stdout: true)
     ) and
       match?({:ok, _}, Node.start(:"py_bridge_test@127.0.0.1", :longnames)))

unless distributed? do
  IO.puts("note: distributed Erlang is unavailable here; skipping the :distribution tests")
end

ExUnit.start(capture_log: true, exclude: if(distributed?, do: [], else: [:distribution]))
