"""A real ``bridge serve`` whose task follows a script, for fault-injection tests.

The worker is the repository's own (``py_bridge.cli`` and ``py_bridge.server``,
unchanged); only the task is replaced, by one whose items say what to do, and
torch is never imported, so it starts in a fraction of a second.

Usage (the shim appends ``serve --task ... --model ...`` after these flags)::

    scripted.py [--on-load ACTION] [--trace FILE] [--starts FILE]
                [--protocol N] [--ignore-sigterm] serve ...

Load actions: ``raise:MESSAGE``, ``exit:STATUS``, ``segfault``, ``sleep:MS``,
``wait:FILE`` (until the file exists), ``hang``, ``print`` (writes to fd 1 three ways), ``garbage`` (a frame that is
not a term before ``:ready``) and ``once`` (loads the first time, raises on
every later start; starts are counted in ``--starts FILE``).

Items (anything else is echoed back):

* ``{:sleep, ms, value}`` - sleep, then answer ``value``
* ``{:hang}`` - never return; ``{:hang_gil, seconds}`` - block in C holding the GIL
* ``{:raise, message}`` - this item fails with ``:bad_input``
* ``{:poison, value}`` - the whole batch raises while this item is in it
* ``{:exit, status}``, ``{:segfault}``, ``{:kill}`` - the worker dies
* ``{:print, value}`` - write to fd 1 three ways, then answer ``value``
* ``{:stream, n, ms}`` - stream chunks 0..n-1 every ``ms``, stopping when cancelled
* ``{:stream_exit, n}`` - stream n chunks, then the worker dies
* ``{:garbage, value}`` - write frames that are not safe terms, then answer
* ``{:odd, value}`` - write well-formed messages the shim must ignore, then answer
* ``{:bomb, bytes, value}`` - write a compressed frame that expands to ``bytes``, then answer
* ``{:unencodable}`` - answer a value the codec cannot carry
* ``{:spew, lines}`` - write that many numbered lines to stderr, then answer ``lines``

``--trace FILE`` gets one line per event (``load``, ``run <item>``,
``cancelled <item>``), so a test can tell what reached the model.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
import zlib
from typing import Any

ARGS: dict[str, str] = {}
SERVER: list[Any] = []


def trace(event: str) -> None:
    path = ARGS.get("--trace")
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(event + "\n")


def make_noise(when: str) -> None:
    """Write to fd 1 the ways libraries do: print, a raw write, and C stdio."""
    print(f"print() while {when}")
    os.write(1, f"os.write(1) while {when}\n".encode())
    libc = ctypes.CDLL(None)
    libc.puts(f"libc puts() while {when}".encode())
    libc.fflush(None)


def load_action(action: str) -> None:
    name, _, arg = action.partition(":")
    if name == "raise":
        raise RuntimeError(arg or "the fake model refuses to load")
    if name == "exit":
        sys.stderr.write("fake worker: exiting while loading\n")
        sys.stderr.flush()
        os._exit(int(arg))
    if name == "segfault":
        ctypes.string_at(0)
    if name == "sleep":
        time.sleep(int(arg) / 1000)
    if name == "wait":
        while not os.path.exists(arg):
            time.sleep(0.02)
    if name == "hang":
        while True:
            time.sleep(60)
    if name == "print":
        make_noise("loading")
    if name == "garbage":
        SERVER[0].writer.write_parts([b"\x00\x01 this is not a term"])
    if name == "once":
        path = ARGS["--starts"]
        with open(path, "a+", encoding="utf-8") as file:
            file.seek(0)
            starts = len(file.read().splitlines())
            file.write("start\n")
        if starts >= 1:
            raise RuntimeError(f"the fake model refuses to load again (start {starts + 1})")


def main() -> None:
    argv = sys.argv[1:]
    while argv and argv[0] != "serve":
        flag = argv.pop(0)
        ARGS[flag] = "1" if flag == "--ignore-sigterm" else argv.pop(0)

    import py_bridge
    import py_bridge.cli
    import py_bridge.server
    import py_bridge.tasks
    from py_bridge import etf
    from py_bridge.errors import BadInputError, CancelledError
    from py_bridge.etf import Atom
    from py_bridge.tasks.base import BatchContext, Task

    class Scripted(Task):
        name = "scripted"

        def __init__(self, model: Any, options: dict[str, Any]) -> None:
            super().__init__(model, options)
            trace("load")
            if "--on-load" in ARGS:
                load_action(ARGS["--on-load"])

        def run(self, items: list[Any], ctx: BatchContext) -> list[Any]:
            if len(items) > 1 and any(_tag(item) == "poison" for item in items):
                raise RuntimeError("a poisoned item broke the whole batch")
            return [self._one(index, item, ctx) for index, item in enumerate(items)]

        def _one(self, index: int, item: Any, ctx: BatchContext) -> Any:
            trace(f"run {item!r}")
            tag = _tag(item)
            if tag == "sleep":
                time.sleep(item[1] / 1000)
                return item[2]
            if tag == "hang":
                while True:
                    time.sleep(60)
            if tag == "hang_gil":
                # PyDLL keeps the GIL for the call, so no Python thread runs meanwhile.
                ctypes.PyDLL(None).sleep(int(item[1]))
            if tag == "raise":
                return BadInputError(bytes(item[1]).decode())
            if tag == "poison":
                raise RuntimeError("a poisoned item")
            if tag == "exit":
                sys.stderr.write(f"fake worker: exiting with status {item[1]} mid-batch\n")
                sys.stderr.flush()
                os._exit(item[1])
            if tag == "segfault":
                sys.stderr.write("fake worker: about to read address 0\n")
                sys.stderr.flush()
                ctypes.string_at(0)
            if tag == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if tag == "print":
                make_noise("running a batch")
                return item[1]
            if tag == "stream":
                return self._stream(index, item, ctx)
            if tag == "stream_exit":
                for i in range(item[1]):
                    ctx.emit(index, i)
                time.sleep(0.05)
                os._exit(1)
            if tag == "garbage":
                writer = SERVER[0].writer
                writer.write_parts([b"\x00\x01 this is not a term"])
                # An atom the VM has never seen: binary_to_term(_, [:safe]) refuses it.
                atom = f"py_bridge_fake_atom_{os.getpid()}_{time.time_ns()}".encode()
                writer.write_parts([b"\x83\x68\x02\x77\x05reply\x77" + bytes([len(atom)]) + atom])
                return item[1]
            if tag == "bomb":
                body = etf.encode((Atom("reply"), b"\x00" * item[1]))[1:]
                SERVER[0].writer.write_parts([b"\x83P" + len(body).to_bytes(4, "big") + zlib.compress(body, 9)])
                return item[2]
            if tag == "odd":
                server = SERVER[0]
                server.send((Atom("chunk"), 10**9, 0, b"a chunk for no batch"))
                server.send((Atom("reply"), 10**9, []))
                server.send((Atom("error"), 10**9, {Atom("type"): Atom("internal")}))
                server.send((Atom("log"), Atom("error"), 42, None))
                server.send((Atom("ready"), {}))
                server.send((Atom("ok"), 1, 2, 3))
                return item[1]
            if tag == "spew":
                for i in range(item[1]):
                    sys.stderr.write(f"stderr line {i} " + "." * 100 + "\n")
                sys.stderr.flush()
                return item[1]
            if tag == "unencodable":
                return object()
            return item

        def _stream(self, index: int, item: Any, ctx: BatchContext) -> Any:
            _, count, interval = item
            for i in range(count):
                if ctx.is_cancelled():
                    trace(f"cancelled {item!r}")
                    return CancelledError("the caller went away")
                ctx.emit(index, i)
                time.sleep(interval / 1000)
            return count

    original_init = py_bridge.server.Server.__init__

    def keep_server(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        SERVER.append(self)

    py_bridge.server.Server.__init__ = keep_server  # type: ignore[method-assign]
    py_bridge.tasks.task_class = lambda name: Scripted  # type: ignore[assignment]
    # Both would import torch or transformers, which this worker never needs.
    py_bridge.server._forward_library_logs = lambda: None  # type: ignore[assignment]
    py_bridge.cli._pick_device = lambda device: "cpu"  # type: ignore[assignment]
    if "--protocol" in ARGS:
        py_bridge.PROTOCOL_VERSION = int(ARGS["--protocol"])
    if "--ignore-sigterm" in ARGS:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    py_bridge.cli.main(argv, prog_name="bridge")


def _tag(item: Any) -> str | None:
    return str(item[0]) if isinstance(item, tuple) and item and isinstance(item[0], str) else None


if __name__ == "__main__":
    main()
