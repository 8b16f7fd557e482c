import Config

# Where the Python worker lives. `make demo` and `make test` set
# PYBRIDGE_BRIDGE_COMMAND to the repository's venv; an application installed
# elsewhere would point at its own `bridge`, or leave it on the PATH.
config :py_bridge,
  bridge_command:
    System.get_env("PYBRIDGE_BRIDGE_COMMAND") || Path.expand("../../.venv/bin/bridge", __DIR__)

config :logger, level: :info
import_config "#{config_env()}.exs"
