import Config

# Where the Python worker lives. `make demo` and `make test` set
# PYBRIDGE_BRIDGE_COMMAND to the repository's venv; an application installed
# elsewhere would point at its own `bridge`, or leave it on the PATH.
config :py_bridge,
  bridge_command:
    System.get_env("PYBRIDGE_BRIDGE_COMMAND") || Path.expand("../../.venv/bin/bridge", __DIR__)

# The implementation of the app's serving, named in one place. PyBridge runs
# the model in a Python worker today. When `mix py_bridge.native_check --hf
# sentence-transformers/all-MiniLM-L6-v2` reports the model as native (it is:
# BertModel), add {:bumblebee, ...} and {:exla, ...} to deps and swap the line:
#
#     config :mix_example, :implementation, {Bumblebee, Bumblebee.Text, Nx.Serving}
#
config :mix_example, :implementation, {PyBridge, PyBridge.Text, PyBridge.Serving}

config :logger, level: :info
import_config "#{config_env()}.exs"
