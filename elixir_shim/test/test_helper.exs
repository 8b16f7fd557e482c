# The worker under test is the repository's own, from the venv `make setup` builds.
repo_root = Path.expand("../..", __DIR__)
bridge = System.get_env("PYBRIDGE_BRIDGE_COMMAND") || Path.join(repo_root, ".venv/bin/bridge")

unless File.exists?(bridge) do
  raise "cannot find the bridge program at #{bridge}: run `make setup` first"
end

Application.put_env(:py_bridge, :bridge_command, bridge)
Logger.configure(level: :warning)
ExUnit.start(capture_log: true)
