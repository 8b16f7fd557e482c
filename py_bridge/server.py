"""The worker's request loop (``protocols/PROTOCOL.md`` §4-§8).

Two threads share the work:

* the **reader** thread reads frames from the shim. It answers ``:ping`` at
  once, records ``:cancel``, queues ``:hello``, ``:run`` and ``:shutdown`` for
  the main thread, and ends the process the moment its input reaches end of
  file, even while a model call is running;
* the **main** thread loads the model and runs one batch at a time.

Writes from either thread (and from the log handler) go through one
:class:`~py_bridge.framing.FrameWriter`, whose lock keeps frames whole.

Nothing the shim sends can stop the loop: a frame that does not decode, is
too large or is not a known message is answered with an error (naming the
batch when the frame was recognisably a ``:run``) and the next frame is read.
Only end of file, ``:shutdown`` or a protocol-version mismatch end it.
"""

from __future__ import annotations

import logging
import os
import platform
import queue
import re
import struct
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import py_bridge
from py_bridge import __version__, etf
from py_bridge.errors import (
    BridgeError,
    CancelledError,
    FrameTooLargeError,
    InternalError,
    ModelLoadError,
    ProtocolError,
    ProtocolMismatchError,
    from_exception,
)
from py_bridge.etf import Atom
from py_bridge.framing import FrameReader, FrameWriter, OversizedFrameError
from py_bridge.loading import LoadedModel, ModelRef, model_spec, resolve
from py_bridge.tasks.base import BatchContext

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

_ANSI_ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# What the reader queues for the main thread when its input ends. In the
# worker process the reader also ends the process; in-process (tests, other
# hosts) this lets serve() return.
_INPUT_CLOSED = ("input_closed",)


@dataclass
class WorkerConfig:
    """Everything ``bridge serve`` was told on its command line."""

    ref: ModelRef
    task: str
    device: str = "cpu"
    dtype: str = "float32"
    architecture: str | None = None
    max_frame_bytes: int = 1 << 30
    max_depth: int = 512


class FrameLogHandler(logging.Handler):
    """Sends log records to the shim, which hands them to Elixir's Logger."""

    def __init__(self, writer: FrameWriter) -> None:
        super().__init__()
        self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        level = _LEVELS.get(record.levelno, "info" if record.levelno < logging.WARNING else "error")
        try:
            # Libraries colour their console output; Logger gets plain text.
            message = _ANSI_ESCAPES.sub("", record.getMessage())
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            self._writer.send((A("log"), A(level), message, {A("logger"): record.name}))
        except Exception:  # a log record must never take the worker down
            self.handleError(record)


class Server:
    """Serves one task on one model over a pair of frame channels.

    ``exit_process`` ends the process; it is :func:`os._exit` in a worker and
    something gentler when a test drives the server over pipes in-process.
    """

    def __init__(
        self,
        config: WorkerConfig,
        read_fd: int,
        write_fd: int,
        *,
        exit_process: Callable[[int], Any] = os._exit,
    ) -> None:
        self.config = config
        self.reader = FrameReader(read_fd, config.max_frame_bytes)
        self.writer = FrameWriter(write_fd)
        self._exit = exit_process
        # SimpleQueue's put/get are C calls with no Condition: the hand-off
        # to the main thread is a visible share of a small request's time.
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Ids of batches received and not yet answered; a cancel for any other
        # id is stale (the reply crossed it on the wire) and is not kept.
        self._pending: set[int] = set()
        self._cancelled: set[int] = set()
        self._shutting_down = threading.Event()
        self._spec: dict[str, Any] = {}
        self._task_name = config.task

    # -- output ----------------------------------------------------------------

    def send(self, term: Any) -> None:
        """Write one frame; a closed output means the shim is gone, so exit."""
        try:
            self.writer.send(term)
        except (BrokenPipeError, ConnectionResetError):
            self._exit(EXIT_OK)
            raise
        except OSError:
            self._exit(EXIT_INTERNAL)
            raise

    def _send_error(self, batch_id: int | None, error: BridgeError) -> None:
        self.send((A("error"), batch_id, error.to_term()))

    # -- reader thread -------------------------------------------------------

    def start_reader(self) -> threading.Thread:
        thread = threading.Thread(target=self._read_loop, name="bridge-reader", daemon=True)
        thread.start()
        return thread

    def _read_loop(self) -> None:
        code = EXIT_OK
        try:
            self._read_frames()
        except (ProtocolError, OSError):
            # The input ended mid-frame or broke: the shim is gone.
            code = EXIT_OK
        except BaseException:
            # A reader that died would leave the main thread waiting forever.
            log.exception("the frame reader failed; exiting")
            code = EXIT_INTERNAL
        self._inbox.put(_INPUT_CLOSED)
        self._exit(code)

    def _read_frames(self) -> None:
        while True:
            try:
                frame = self.reader.read()
            except OversizedFrameError as error:
                # The reader skipped the frame's bytes, so the stream is still in step.
                self._send_error(peek_run_id(error.head), error)
                continue
            if frame is None:
                # The shim closed our input: it stopped us, or the BEAM died.
                return
            try:
                message = etf.decode(
                    frame, max_depth=self.config.max_depth, max_decompressed=self.config.max_frame_bytes
                )
            except ProtocolError as error:
                self._send_error(peek_run_id(frame), error)
                continue
            except Exception as exc:  # a codec bug must not stop the worker
                codec_error = ProtocolError(f"could not decode a frame: {exc!r}", python_type=type(exc).__name__)
                self._send_error(peek_run_id(frame), codec_error)
                continue
            self._dispatch(message)

    def _dispatch(self, message: Any) -> None:
        tag = message[0] if isinstance(message, tuple) and message else None
        if tag == "ping" and len(message) == 2:
            self.send((A("pong"), message[1]))
        elif tag == "cancel" and len(message) == 2 and _is_id(message[1]):
            with self._lock:
                if message[1] in self._pending:
                    self._cancelled.add(message[1])
        elif tag == "run" and len(message) == 4 and _is_id(message[1]):
            if not isinstance(message[2], list):
                error = ProtocolError(f"expected the items of :run to be a list, got: {_describe(message[2])}")
                self._send_error(message[1], error)
                return
            with self._lock:
                self._pending.add(message[1])
            self._inbox.put(message)
        elif tag == "hello" and len(message) == 2:
            self._inbox.put(message)
        elif tag == "shutdown" and len(message) == 1:
            self._shutting_down.set()
            self._inbox.put(message)
        else:
            batch_id = message[1] if tag == "run" and len(message) > 1 and _is_id(message[1]) else None
            self._send_error(batch_id, ProtocolError(f"unknown message: {_describe(message)}"))

    # -- main thread ----------------------------------------------------------

    def serve(self) -> int:
        """Handshake, then run batches until told to shut down; returns the exit status."""
        self.start_reader()
        task = None
        while task is None:
            message = self._inbox.get()
            if message is _INPUT_CLOSED or message[0] == "shutdown":
                return EXIT_OK
            if message[0] == "run":
                self._forget(message[1])
                self._send_error(message[1], ProtocolError("a :run arrived before :hello"))
                continue
            outcome = self._handshake(message[1])
            if isinstance(outcome, int):
                return outcome
            task = outcome
        while True:
            message = self._inbox.get()
            if message is _INPUT_CLOSED:
                return EXIT_OK
            if message[0] == "shutdown":
                log.info("shutting down")
                return EXIT_OK
            if message[0] == "run":
                self._run(task, message[1], message[2], message[3])
            else:
                self._send_error(None, ProtocolError(f"unexpected :{message[0]} after the handshake"))

    def _handshake(self, hello: Any) -> Any:
        """Check the version and load the model: the task, or an exit status."""
        if not isinstance(hello, dict):
            self._send_error(None, ProtocolError(f"expected :hello to carry a map, got: {_describe(hello)}"))
            return EXIT_PROTOCOL_MISMATCH
        version = hello.get("protocol")
        if version != py_bridge.PROTOCOL_VERSION:
            self._send_error(
                None,
                ProtocolMismatchError(
                    f"the shim speaks protocol {version!r}, this worker speaks {py_bridge.PROTOCOL_VERSION}"
                ),
            )
            return EXIT_PROTOCOL_MISMATCH
        try:
            task = self._load(hello)
        except Exception as exc:
            error = load_error(exc)
            log.error("could not load %s: %s", self.config.ref.describe(), error.message)
            self._send_error(None, error)
            return EXIT_LOAD_FAILED
        self.send((A("ready"), self._info()))
        return task

    def _load(self, hello: dict[str, Any]) -> Any:
        from py_bridge.tasks import task_class

        task_name = _text(hello.get("task")) or self.config.task
        options = hello.get("options") or {}
        if not isinstance(options, dict):
            raise ProtocolError(f"expected the :hello options to be a map, got: {_describe(options)}")
        options = {str(k): v for k, v in options.items()}
        cls = task_class(task_name)
        _forward_library_logs()
        path = resolve(self.config.ref)
        spec = model_spec(path, self.config.architecture)
        log.info("loading %s for %s on %s", self.config.ref.describe(), task_name, self.config.device)
        model = LoadedModel(
            ref=self.config.ref, path=path, spec=spec, device=self.config.device, dtype=self.config.dtype
        )
        self._spec = spec
        self._task_name = task_name
        return cls(model, options)

    def _info(self) -> dict[Any, Any]:
        versions: dict[Any, Any] = {A("bridge"): __version__, A("python"): platform.python_version()}
        for name in ("torch", "transformers"):
            module = sys.modules.get(name)
            versions[A(name)] = getattr(module, "__version__", None) if module else None
        return {
            A("protocol"): py_bridge.PROTOCOL_VERSION,
            A("versions"): versions,
            A("device"): self.config.device,
            A("dtype"): self.config.dtype,
            A("task"): A(self._task_name),
            A("model"): spec_term(self._spec),
            A("os_pid"): os.getpid(),
        }

    def _run(self, task: Any, batch_id: int, items: list[Any], opts: Any) -> None:
        try:
            if self._shutting_down.is_set():
                self._reply(batch_id, [CancelledError("the worker is shutting down")] * len(items))
            elif self._is_cancelled(batch_id):
                self._reply(batch_id, [CancelledError("cancelled before it ran")] * len(items))
            else:
                stream = bool(isinstance(opts, dict) and opts.get("stream"))
                self._reply(batch_id, self._run_isolated(task, batch_id, items, stream))
        except Exception as exc:
            # Only a bug of the worker itself gets here (tasks' errors are caught
            # per item); the batch still gets its answer.
            log.exception("batch %d failed inside the worker", batch_id)
            self._send_error(batch_id, InternalError(f"{type(exc).__name__}: {exc}", python_type=type(exc).__name__))
        finally:
            self._forget(batch_id)

    def _run_isolated(self, task: Any, batch_id: int, items: list[Any], stream: bool) -> list[Any]:
        """Run the batch; if it fails as a whole, run each item alone.

        A single poisoned item (one that crashes the model code rather than
        failing validation) must not fail the other callers batched with it.
        An item that already streamed chunks is not run again, so its caller
        never sees a chunk twice; it gets the batch's error.
        """
        streamed: set[int] = set()

        def emit(index: int, value: Any) -> None:
            streamed.add(index)
            self.send((A("chunk"), batch_id, index, value))

        def context(index: int | None) -> BatchContext:
            return BatchContext(
                stream=stream,
                emit=emit if index is None else (lambda _i, value: emit(index, value)),
                is_cancelled=lambda: self._is_cancelled(batch_id),
            )

        try:
            whole = task.run(items, context(None))
            if len(whole) != len(items):
                raise InternalError(f"the task returned {len(whole)} results for {len(items)} items")
            return list(whole)
        except Exception as exc:
            if len(items) == 1:
                return [from_exception(exc)]
            batch_error = from_exception(exc)
            log.warning("batch of %d failed (%s); running its items one by one", len(items), exc)
        results: list[Any] = []
        for index, item in enumerate(items):
            if index in streamed:
                results.append(batch_error)
                continue
            try:
                (result,) = task.run([item], context(index))
                results.append(result)
            except Exception as exc:
                results.append(from_exception(exc))
        return results

    def _reply(self, batch_id: int, results: list[Any]) -> None:
        replies = [_reply_item(r) for r in results]
        try:
            parts = etf.encode_parts((A("reply"), batch_id, replies))
        except Exception:
            # One result the codec cannot carry fails alone, not its neighbours.
            parts = etf.encode_parts((A("reply"), batch_id, [_encodable(r) for r in replies]))
        try:
            self.writer.write_parts(parts)
        except FrameTooLargeError as error:
            self._send_error(batch_id, error)
        except (BrokenPipeError, ConnectionResetError):
            self._exit(EXIT_OK)
            raise

    def _is_cancelled(self, batch_id: int) -> bool:
        with self._lock:
            return batch_id in self._cancelled

    def _forget(self, batch_id: int) -> None:
        with self._lock:
            self._pending.discard(batch_id)
            self._cancelled.discard(batch_id)


def load_error(exc: BaseException) -> BridgeError:
    """The error a failed model load reports: unexpected exceptions are load failures."""
    error = from_exception(exc)
    if type(error) is InternalError:
        return ModelLoadError(error.message, python_type=error.python_type)
    return error


def spec_term(spec: dict[str, Any]) -> dict[Any, Any]:
    """The model spec as the protocol's map, keyed by atoms.

    Names that come from model files (architecture, model type) travel as
    binaries, so a model can never make the shim create atoms by decoding.
    """
    return {A(k): v for k, v in spec.items()}


_RUN = (b"run",)
_ATOM_TAGS = {etf.SMALL_ATOM_UTF8_EXT: 1, etf.SMALL_ATOM_EXT: 1, etf.ATOM_UTF8_EXT: 2, etf.ATOM_EXT: 2}


def peek_run_id(frame: bytes | bytearray | memoryview) -> int | None:
    """The batch id of a frame that starts like ``{:run, id, ...}``, else None.

    Used for frames that cannot be decoded whole (too large, too deep, bad
    bytes inside the items), so the shim can fail that batch at once instead
    of waiting for a reply that will never come.
    """
    data = bytes(memoryview(frame)[:64])
    try:
        if data[0] != etf.VERSION or data[1] != etf.SMALL_TUPLE_EXT or data[2] != 4:
            return None
        width = _ATOM_TAGS.get(data[3])
        if width is None:
            return None
        length = int.from_bytes(data[4 : 4 + width], "big")
        pos = 4 + width
        if data[pos : pos + length] not in _RUN:
            return None
        pos += length
        tag = data[pos]
        if tag == etf.SMALL_INTEGER_EXT:
            return data[pos + 1]
        if tag == etf.INTEGER_EXT:
            (value,) = struct.unpack(">i", data[pos + 1 : pos + 5])
            return value if value >= 0 else None
        if tag == etf.SMALL_BIG_EXT and data[pos + 2] == 0:
            count = data[pos + 1]
            digits = data[pos + 3 : pos + 3 + count]
            return int.from_bytes(digits, "little") if len(digits) == count else None
    except (IndexError, struct.error):
        return None
    return None


def _reply_item(result: Any) -> tuple[Any, Any]:
    if isinstance(result, BridgeError):
        return (A("error"), result.to_term())
    return (A("ok"), result)


def _encodable(reply: tuple[Any, Any]) -> tuple[Any, Any]:
    try:
        etf.encode(reply)
        return reply
    except Exception as exc:
        error = InternalError(f"the task produced a result that cannot be sent: {exc}", python_type=type(exc).__name__)
        return (A("error"), error.to_term())


def _is_id(value: Any) -> bool:
    return type(value) is int and value >= 0


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


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


def _describe(message: Any) -> str:
    text = repr(message)
    return text if len(text) <= 200 else text[:200] + "..."
