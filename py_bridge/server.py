"""The worker's request loop (``protocols/PROTOCOL.md`` §4-§8).

Two threads share the work:

* the **reader** thread reads frames from the shim. It answers ``:ping`` at
  once, records ``:cancel``, queues ``:hello``, ``:run`` and ``:shutdown`` for
  the main thread, and ends the process with ``os._exit`` the moment its input
  reaches end of file, even while a model call is running;
* the **main** thread loads the model and runs one batch at a time.

Writes from either thread (and from the log handler) go through one
:class:`~py_bridge.framing.FrameWriter`, whose lock keeps frames whole.
"""

from __future__ import annotations

import logging
import os
import platform
import queue
import threading
from dataclasses import dataclass
from typing import Any

from py_bridge import PROTOCOL_VERSION, __version__
from py_bridge.errors import (
    BridgeError,
    CancelledError,
    FrameTooLargeError,
    ProtocolError,
    ProtocolMismatchError,
    from_exception,
)
from py_bridge.etf import Atom, decode
from py_bridge.framing import FrameReader, FrameWriter
from py_bridge.loading import LoadedModel, ModelRef, model_spec, resolve

log = logging.getLogger("py_bridge.server")

EXIT_OK = 0
EXIT_PROTOCOL_MISMATCH = 3
EXIT_LOAD_FAILED = 4
EXIT_INTERNAL = 5

_LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}

A = Atom


@dataclass
class WorkerConfig:
    """Everything ``bridge serve`` was told on its command line."""

    ref: ModelRef
    task: str
    device: str = "cpu"
    dtype: str = "float32"
    architecture: str | None = None
    max_frame_bytes: int = 1 << 30


class FrameLogHandler(logging.Handler):
    """Sends log records to the shim, which hands them to Elixir's Logger."""

    def __init__(self, writer: FrameWriter) -> None:
        super().__init__()
        self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        level = _LEVELS.get(record.levelno, "info" if record.levelno < logging.WARNING else "error")
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            self._writer.send((A("log"), A(level), message, {A("logger"): record.name}))
        except Exception:  # a log record must never take the worker down
            self.handleError(record)


class Server:
    """Serves one task on one model over a pair of frame channels."""

    def __init__(self, config: WorkerConfig, read_fd: int, write_fd: int) -> None:
        self.config = config
        self.reader = FrameReader(read_fd, config.max_frame_bytes)
        self.writer = FrameWriter(write_fd)
        self._inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._cancelled: set[int] = set()
        self._cancel_lock = threading.Lock()
        self._running: int | None = None

    # -- reader thread -------------------------------------------------------

    def start_reader(self) -> None:
        threading.Thread(target=self._read_loop, name="bridge-reader", daemon=True).start()

    def _read_loop(self) -> None:
        try:
            self._read_frames()
        except BaseException:
            # A reader that died would leave the main thread waiting forever.
            log.exception("the frame reader failed; exiting")
        finally:
            os._exit(EXIT_INTERNAL)

    def _read_frames(self) -> None:
        while True:
            try:
                frame = self.reader.read()
            except FrameTooLargeError as error:
                # The reader skipped the frame's bytes, so the stream is still in step.
                self._send_error(None, error)
                continue
            except (ProtocolError, OSError):
                # The input ended mid-frame or broke: the shim is gone.
                os._exit(EXIT_OK)
            if frame is None:
                # The shim closed our input: it stopped us, or the BEAM died.
                os._exit(EXIT_OK)
            try:
                message = decode(frame)
            except ProtocolError as error:
                self._send_error(None, error)
                continue
            except Exception as exc:  # a codec bug must not stop the worker
                self._send_error(None, ProtocolError(f"could not decode a frame: {exc!r}"))
                continue
            self._dispatch(message)

    def _dispatch(self, message: Any) -> None:
        tag = message[0] if isinstance(message, tuple) and message else None
        if tag == "ping" and len(message) == 2:
            self.writer.send((A("pong"), message[1]))
        elif tag == "cancel" and len(message) == 2 and isinstance(message[1], int):
            with self._cancel_lock:
                self._cancelled.add(message[1])
        elif tag == "run" and len(message) == 4 and isinstance(message[1], int) and isinstance(message[2], list):
            self._inbox.put(message)
        elif tag in ("hello", "shutdown"):
            self._inbox.put(message)
        else:
            self._send_error(None, ProtocolError(f"unknown message: {_describe(message)}"))

    # -- main thread ----------------------------------------------------------

    def serve(self) -> int:
        """Handshake, then run batches until told to shut down."""
        self.start_reader()
        hello = self._inbox.get()
        if hello[0] != "hello" or len(hello) != 2 or not isinstance(hello[1], dict):
            self._send_error(None, ProtocolError(f"expected :hello first, got: {_describe(hello)}"))
            return EXIT_PROTOCOL_MISMATCH
        version = hello[1].get("protocol")
        if version != PROTOCOL_VERSION:
            self._send_error(
                None,
                ProtocolMismatchError(f"the shim speaks protocol {version!r}, this worker speaks {PROTOCOL_VERSION}"),
            )
            return EXIT_PROTOCOL_MISMATCH
        try:
            task = self._load(hello[1])
        except Exception as exc:
            error = from_exception(exc)
            log.error("could not load %s: %s", self.config.ref.describe(), error.message)
            self._send_error(None, error)
            return EXIT_LOAD_FAILED
        self.writer.send((A("ready"), self._info(task)))
        while True:
            message = self._inbox.get()
            if message[0] == "shutdown":
                log.info("shutting down")
                return EXIT_OK
            if message[0] == "run":
                self._run(task, message[1], message[2], message[3])
            else:
                self._send_error(None, ProtocolError(f"unexpected message after the handshake: {message[0]}"))

    def _load(self, hello: dict[str, Any]) -> Any:
        from py_bridge.tasks import task_class

        task_name = str(hello.get("task") or self.config.task)
        options = {str(k): v for k, v in (hello.get("options") or {}).items()}
        cls = task_class(task_name)
        _forward_library_logs()
        path = resolve(self.config.ref)
        spec = model_spec(path, self.config.architecture)
        log.info("loading %s for %s on %s", self.config.ref.describe(), task_name, self.config.device)
        model = LoadedModel(ref=self.config.ref, path=path, spec=spec, device=self.config.device, dtype=self.config.dtype)
        self._spec = spec
        self._task_name = task_name
        return cls(model, options)

    def _info(self, task: Any) -> dict[Any, Any]:
        versions: dict[Any, Any] = {A("bridge"): __version__, A("python"): platform.python_version()}
        for name in ("torch", "transformers"):
            module = _loaded_module(name)
            versions[A(name)] = getattr(module, "__version__", None) if module else None
        return {
            A("protocol"): PROTOCOL_VERSION,
            A("versions"): versions,
            A("device"): self.config.device,
            A("dtype"): self.config.dtype,
            A("task"): self._task_name,
            A("model"): spec_term(self._spec),
            A("os_pid"): os.getpid(),
        }

    def _run(self, task: Any, batch_id: int, items: list[Any], opts: Any) -> None:
        from py_bridge.tasks import BatchContext

        if self._take_cancelled(batch_id):
            self._reply(batch_id, [CancelledError("cancelled before it ran")] * len(items))
            return
        stream = bool(isinstance(opts, dict) and opts.get("stream"))
        ctx = BatchContext(
            stream=stream,
            emit=lambda index, value: self.writer.send((A("chunk"), batch_id, index, value)),
            is_cancelled=lambda: self._is_cancelled(batch_id),
        )
        self._running = batch_id
        try:
            results = self._run_isolated(task, items, ctx)
        finally:
            self._running = None
            self._take_cancelled(batch_id)
        self._reply(batch_id, results)

    def _run_isolated(self, task: Any, items: list[Any], ctx: Any) -> list[Any]:
        """Run the batch; if it fails as a whole, run each item alone.

        A single poisoned item (one that crashes the model code rather than
        failing validation) must not fail the other callers batched with it.
        """
        try:
            results = task.run(items, ctx)
            if len(results) != len(items):
                raise RuntimeError(f"task returned {len(results)} results for {len(items)} items")
            return results
        except Exception as exc:
            if len(items) == 1:
                return [from_exception(exc)]
            log.warning("batch of %d failed (%s); running its items one by one", len(items), exc)
        results = []
        for item in items:
            try:
                results.extend(task.run([item], ctx))
            except Exception as exc:
                results.append(from_exception(exc))
        return results

    def _reply(self, batch_id: int, results: list[Any]) -> None:
        replies = [
            (A("error"), r.to_term()) if isinstance(r, BridgeError) else (A("ok"), r)
            for r in results
        ]
        try:
            self.writer.send((A("reply"), batch_id, replies))
        except TypeError as exc:
            # A task produced a value the codec cannot carry: report it per batch.
            self._send_error(batch_id, from_exception(exc))

    def _is_cancelled(self, batch_id: int) -> bool:
        with self._cancel_lock:
            return batch_id in self._cancelled

    def _take_cancelled(self, batch_id: int) -> bool:
        with self._cancel_lock:
            if batch_id in self._cancelled:
                self._cancelled.discard(batch_id)
                return True
            return False

    def _send_error(self, batch_id: int | None, error: BridgeError) -> None:
        self.writer.send((A("error"), batch_id, error.to_term()))


def spec_term(spec: dict[str, Any]) -> dict[Any, Any]:
    """The model spec as the protocol's map, keyed by atoms.

    Names that come from model files (architecture, model type) travel as
    binaries, so a model can never make the shim create atoms by decoding.
    """
    return {A(k): v for k, v in spec.items()}


def _forward_library_logs() -> None:
    # transformers keeps its own stderr handler; route its records through ours.
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_warning()


def _loaded_module(name: str) -> Any:
    import sys

    return sys.modules.get(name)


def _describe(message: Any) -> str:
    text = repr(message)
    return text if len(text) <= 200 else text[:200] + "..."
