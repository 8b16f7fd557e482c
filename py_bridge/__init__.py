"""PyBridge's Python worker: host one transformers model behind an Erlang port.

The worker is started by the Elixir shim as ``bridge serve --model X --task T``
and speaks the protocol in ``protocols/PROTOCOL.md``. Its parts:

* :mod:`py_bridge.etf` - the External Term Format codec;
* :mod:`py_bridge.framing` - ``{packet, 4}`` frames on private descriptors;
* :mod:`py_bridge.server` - the request loop;
* :mod:`py_bridge.tasks` - one module per serving task;
* :mod:`py_bridge.loading` - finding and safely loading model files;
* :mod:`py_bridge.errors` - the exception hierarchy mapped to protocol errors.
"""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
