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
       match?({:ok, _}, Node.start(:"py_bridge_test_#{System.pid()}@127.0.0.1", :longnames)))

unless distributed? do
  IO.puts("note: distributed Erlang is unavailable here; skipping the :distribution tests")
end

# Nx is no dependency (hex.pm is unreachable): the :nx suite runs against a
# local build of Nx whose ebin directories PYBRIDGE_NX_EBIN names, colon-
# separated, and then it runs alone: with Nx loaded every serving returns Nx
# tensors, which the other suites do not expect.
nx? =
  case System.get_env("PYBRIDGE_NX_EBIN") do
    nil ->
      IO.puts(
        "note: Nx is not on the code path; skipping the :nx tests. To run them, build Nx " <>
          "(see guides/migrating_to_bumblebee.md) and run " <>
          "PYBRIDGE_NX_EBIN=/path/nx/ebin:/path/complex/ebin:/path/telemetry/ebin mix test"
      )

      false

    paths ->
      Enum.each(String.split(paths, ":", trim: true), &Code.prepend_path/1)
      {:ok, _} = Application.ensure_all_started(:nx)
      true
  end

ExUnit.start(
  capture_log: true,
  exclude: if(distributed?, do: [], else: [:distribution]) ++ if(nx?, do: [:test], else: [:nx]),
  include: if(nx?, do: [:nx], else: [])
)
