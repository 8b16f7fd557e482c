"""The worker's request loop, driven as the shim drives it.

Most tests run the real ``bridge serve --stdio`` in a subprocess, with the
scripted task of ``elixir_shim/test/support/workers/scripted.py`` (the same
fake the Elixir fault-injection tests use): it never imports torch, so a
worker starts in a fraction of a second, and its items say what the "model"
does (sleep, fail, crash, stream, write to stdout). The fuzz tests drive
:class:`py_bridge.server.Server` in-process over ``os.pipe()`` pairs, where
hypothesis can afford hundreds of examples.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import py_bridge.tasks
from py_bridge import PROTOCOL_VERSION, server
from py_bridge.errors import ERROR_CLASSES
from py_bridge.etf import Atom, decode, encode
from py_bridge.framing import HEADER
from py_bridge.loading import ModelRef
from py_bridge.server import EXIT_LOAD_FAILED, EXIT_OK, EXIT_PROTOCOL_MISMATCH, Server, WorkerConfig, peek_run_id
from py_bridge.tasks.base import BatchContext, Task

REPO = Path(__file__).resolve().parents[2]
SCRIPTED = REPO / "elixir_shim" / "test" / "support" / "workers" / "scripted.py"
A = Atom
WAIT = 20.0  # seconds; generous for a loaded machine, never reached when things work


def frame(term: Any) -> bytes:
    body = encode(term)
    return HEADER.pack(len(body)) + body


def raw_frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def hello(version: int = PROTOCOL_VERSION, options: dict[Any, Any] | None = None) -> bytes:
    return frame((A("hello"), {A("protocol"): version, A("task"): A("scripted"), A("options"): options or {}}))


def run(batch_id: int, items: list[Any], stream: bool = False) -> bytes:
    return frame((A("run"), batch_id, items, {A("stream"): stream}))


def error_type(message: Any) -> str:
    return str(message[2][A("type")])


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def fake_model(directory: Path) -> Path:
    """A directory that passes for a model: the scripted task never reads weights."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"model_type": "fake", "architectures": ["FakeModel"]}))
    return directory


class Worker:
    """``bridge serve --stdio`` with the scripted task, and its frames as a queue."""

    def __init__(self, tmp_path: Path, *flags: str, serve_args: tuple[str, ...] = ()) -> None:
        self.trace = tmp_path / "trace.log"
        self.stderr_path = tmp_path / "stderr.log"
        model = fake_model(tmp_path / "model")
        command = [sys.executable, str(SCRIPTED), "--trace", str(self.trace), *flags]
        command += ["serve", "--stdio", "--model", str(model), "--task", "scripted", *serve_args]
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        self.frames: queue.Queue[Any] = queue.Queue()
        self.raw: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            header = out.read(4)
            if len(header) < 4:
                self.frames.put(EOFError(header))
                return
            (length,) = HEADER.unpack(header)
            body = out.read(length)
            self.raw.append(body)
            try:
                self.frames.put(decode(body))
            except Exception as exc:  # a corrupted stream is what some tests look for
                self.frames.put(exc)

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def recv(self, timeout: float = WAIT) -> Any:
        """The next frame that is not a log record."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.frames.get(timeout=max(deadline - time.monotonic(), 0.01))
            if isinstance(message, Exception):
                raise AssertionError(f"the worker's output broke: {message!r}")
            if message[0] != "log":
                return message

    def handshake(self, options: dict[Any, Any] | None = None) -> Any:
        self.send(hello(options=options))
        ready = self.recv()
        assert ready[0] == "ready", ready
        return ready[1]

    def ping(self, ref: int = 7) -> None:
        self.send(frame((A("ping"), ref)))
        assert self.recv() == (A("pong"), ref)

    def close_input(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def wait(self, timeout: float = WAIT) -> int:
        return self.proc.wait(timeout=timeout)

    def trace_lines(self) -> list[str]:
        return self.trace.read_text().splitlines() if self.trace.exists() else []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(*flags: str, serve_args: tuple[str, ...] = ()) -> Worker:
        w = Worker(tmp_path / f"w{len(started)}", *flags, serve_args=serve_args)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


# -- handshake ----------------------------------------------------------------------------


def test_handshake_answers_ready_with_the_workers_facts(worker: Callable[..., Worker]) -> None:
    w = worker()
    info = w.handshake()
    assert info["protocol"] == PROTOCOL_VERSION
    assert info["os_pid"] == w.proc.pid
    assert info["task"] == "scripted" and isinstance(info["task"], Atom)
    assert info["model"]["hf_architecture"] == b"FakeModel"
    assert set(info["versions"]) >= {"bridge", "python", "torch", "transformers"}


def test_a_protocol_version_mismatch_is_reported_and_exits_with_status_3(worker: Callable[..., Worker]) -> None:
    w = worker()
    w.send(hello(version=PROTOCOL_VERSION + 1))
    message = w.recv()
    assert message[0] == "error" and message[1] is None
    assert error_type(message) == "protocol_mismatch"
    text = bytes(message[2][A("message")]).decode()
    assert str(PROTOCOL_VERSION) in text and str(PROTOCOL_VERSION + 1) in text
    assert w.wait() == EXIT_PROTOCOL_MISMATCH == 3


def test_a_failed_load_reports_the_python_exception_and_exits_with_status_4(worker: Callable[..., Worker]) -> None:
    w = worker("--on-load", "raise:the weights are shaped wrong")
    w.send(hello())
    message = w.recv()
    assert message[0] == "error" and message[1] is None
    assert error_type(message) == "model_load_failed"
    assert bytes(message[2][A("message")]) == b"RuntimeError: the weights are shaped wrong"
    assert message[2][A("python_type")] == b"RuntimeError"
    assert w.wait() == EXIT_LOAD_FAILED == 4


def test_a_run_before_hello_fails_that_batch_and_the_handshake_still_works(worker: Callable[..., Worker]) -> None:
    w = worker()
    w.send(run(1, [b"early"]))
    message = w.recv()
    assert message[:2] == (A("error"), 1) and error_type(message) == "protocol_error"
    w.handshake()
    w.send(run(2, [b"later"]))
    assert w.recv() == (A("reply"), 2, [(A("ok"), b"later")])


# -- batches ------------------------------------------------------------------------------


def test_each_item_gets_its_own_result_and_a_bad_one_fails_alone(worker: Callable[..., Worker]) -> None:
    w = worker()
    w.handshake()
    w.send(run(5, [b"first", (A("raise"), b"not like this"), b"third"]))
    tag, batch_id, results = w.recv()
    assert (tag, batch_id) == ("reply", 5)
    assert results[0] == (A("ok"), b"first")
    assert results[1][0] == "error" and results[1][1][A("type")] == "bad_input"
    assert results[1][1][A("message")] == b"not like this"
    assert results[2] == (A("ok"), b"third")


def test_a_batch_that_fails_as_a_whole_is_rerun_item_by_item(worker: Callable[..., Worker]) -> None:
    w = worker()
    w.handshake()
    w.send(run(6, [b"a", (A("poison"), b"p"), b"c"]))
    _, _, results = w.recv()
    assert results[0] == (A("ok"), b"a")
    assert results[1][0] == "error" and results[1][1][A("type")] == "internal"
    assert b"a poisoned item" in results[1][1][A("message")]
    assert results[2] == (A("ok"), b"c")
    # The batch raised before any item ran; then each item ran alone.
    assert w.trace_lines() == ["load", "run b'a'", "run (Atom('poison'), b'p')", "run b'c'"]


def test_a_result_the_codec_cannot_carry_fails_alone(worker: Callable[..., Worker]) -> None:
    w = worker()
    w.handshake()
    w.send(run(7, [b"fine", (A("unencodable"),)]))
    _, _, results = w.recv()
    assert results[0] == (A("ok"), b"fine")
    assert results[1][0] == "error" and results[1][1][A("type")] == "internal"
    assert b"cannot be sent" in results[1][1][A("message")]


def test_a_ping_is_answered_while_a_batch_runs(worker: Callable[..., Worker]) -> None:
    w = worker()
    w.handshake()
    w.send(run(8, [(A("sleep"), 1500, b"slow")]))
    w.send(frame((A("ping"), 99)))
    # The pong overtakes the reply: the reader thread answers it at once.
    assert w.recv() == (A("pong"), 99)
    assert w.recv() == (A("reply"), 8, [(A("ok"), b"slow")])


def test_cancelling_a_queued_batch_answers_it_cancelled_without_running_it(worker: Callable[..., Worker]) -> None:
    w = worker()
    w.handshake()
    w.send(run(10, [(A("sleep"), 800, b"busy")]))
    w.send(run(11, [b"never runs", b"nor this"]))
    w.send(frame((A("cancel"), 11)))
    assert w.recv() == (A("reply"), 10, [(A("ok"), b"busy")])
    _, batch_id, results = w.recv()
    assert batch_id == 11
    assert [r[1][A("type")] for r in results] == ["cancelled", "cancelled"]
    assert not any("never runs" in line for line in w.trace_lines())


def test_cancelling_a_stream_stops_it_in_the_task(worker: Callable[..., Worker]) -> None:
    w = worker()
    w.handshake()
    w.send(run(12, [(A("stream"), 10_000, 5)], stream=True))
    chunks = [w.recv() for _ in range(3)]
    assert chunks == [(A("chunk"), 12, 0, i) for i in range(3)]
    w.send(frame((A("cancel"), 12)))
    while (message := w.recv())[0] == "chunk":
        assert message[1] == 12
    assert message[:2] == (A("reply"), 12)
    assert message[2][0][1][A("type")] == "cancelled"
    assert any(line.startswith("cancelled") for line in w.trace_lines())


def test_a_cancel_for_a_finished_batch_is_forgotten(worker: Callable[..., Worker]) -> None:
    w = worker()
    w.handshake()
    w.send(run(13, [b"x"]))
    assert w.recv()[:2] == (A("reply"), 13)
    w.send(frame((A("cancel"), 13)))
    w.ping()
    # Ids are never reused by the shim, but a kept stale cancel would be a leak;
    # reusing the id here shows it was not kept.
    w.send(run(13, [b"again"]))
    assert w.recv() == (A("reply"), 13, [(A("ok"), b"again")])


# -- lifetime -----------------------------------------------------------------------------


def test_shutdown_finishes_the_running_batch_cancels_queued_ones_and_exits_0(worker: Callable[..., Worker]) -> None:
    w = worker()
    w.handshake()
    w.send(run(20, [(A("sleep"), 600, b"running")]))
    wait_for(lambda: any("running" in line for line in w.trace_lines()))
    w.send(run(21, [b"queued"]))
    w.send(frame((A("shutdown"),)))
    assert w.recv() == (A("reply"), 20, [(A("ok"), b"running")])
    _, batch_id, results = w.recv()
    assert batch_id == 21 and results[0][1][A("type")] == "cancelled"
    assert w.wait() == EXIT_OK


def test_end_of_input_ends_the_worker_even_during_a_model_call(worker: Callable[..., Worker]) -> None:
    w = worker()
    w.handshake()
    w.send(run(30, [(A("hang"),)]))
    w.ping()
    w.close_input()
    assert w.wait() == EXIT_OK


def test_end_of_input_before_the_handshake_ends_the_worker(worker: Callable[..., Worker]) -> None:
    w = worker()
    w.close_input()
    assert w.wait() == EXIT_OK


# -- hostile and malformed frames ------------------------------------------------------------


def test_an_unknown_message_is_answered_with_protocol_error_and_serving_goes_on(worker: Callable[..., Worker]) -> None:
    w = worker()
    w.handshake()
    for term in [(A("launch"), 1), A("run"), [], (A("cancel"), b"x"), (A("hello"), {})]:
        w.send(frame(term))
        message = w.recv()
        assert message[0] == "error" and error_type(message) == "protocol_error", term
    w.send(run(1, [b"still here"]))
    assert w.recv() == (A("reply"), 1, [(A("ok"), b"still here")])


def test_a_run_whose_items_are_not_a_list_fails_that_batch(worker: Callable[..., Worker]) -> None:
    w = worker()
    w.handshake()
    w.send(frame((A("run"), 3, b"not a list", {})))
    message = w.recv()
    assert message[:2] == (A("error"), 3) and error_type(message) == "protocol_error"


def test_an_oversized_frame_fails_its_batch_and_the_stream_stays_in_step(worker: Callable[..., Worker]) -> None:
    w = worker(serve_args=("--max-frame-bytes", "1024"))
    w.handshake()
    w.send(run(40, [b"x" * 5000]))
    message = w.recv()
    assert message[:2] == (A("error"), 40) and error_type(message) == "frame_too_large"
    assert b"5" in message[2][A("message")] and b"1024" in message[2][A("message")]
    w.send(run(41, [b"small"]))
    assert w.recv() == (A("reply"), 41, [(A("ok"), b"small")])


def test_bytes_that_are_not_a_term_are_a_protocol_error(worker: Callable[..., Worker]) -> None:
    w = worker()
    w.handshake()
    for body in [b"", b"\x00garbage", b"\x83", b"\x83\x68\x04\x77\x03run\x61\x09\x6c"]:
        w.send(raw_frame(body))
        message = w.recv()
        assert message[0] == "error" and error_type(message) == "protocol_error", body
    # The last one was recognisably batch 9, so that batch is named.
    assert message[1] == 9
    w.ping()


def test_nesting_past_the_depth_limit_is_refused(worker: Callable[..., Worker]) -> None:
    w = worker()
    w.handshake()
    # Written by hand: this process's own encoder refuses such depth too.
    one_element_list = b"l\x00\x00\x00\x01"
    items = one_element_list * 601 + b"m\x00\x00\x00\x04core" + b"j" * 601
    w.send(raw_frame(b"\x83h\x04w\x03runa\x32" + items + b"t\x00\x00\x00\x00"))
    message = w.recv()
    assert message[:2] == (A("error"), 50) and error_type(message) == "protocol_error"
    assert b"max_depth" in message[2][A("message")]
    w.ping()


def test_a_compressed_term_that_expands_past_the_limit_is_refused(worker: Callable[..., Worker]) -> None:
    w = worker(serve_args=("--max-frame-bytes", "65536"))
    w.handshake()
    inner = encode((A("run"), 60, [b"\x00" * 1_000_000], {}))[1:]
    bomb = b"\x83P" + len(inner).to_bytes(4, "big") + zlib.compress(inner, 9)
    assert len(bomb) < 65536
    w.send(raw_frame(bomb))
    message = w.recv()
    assert message[0] == "error" and error_type(message) == "protocol_error"
    assert b"over the limit" in message[2][A("message")]
    w.ping()


def test_peek_run_id_reads_the_id_of_every_integer_encoding() -> None:
    for batch_id in [0, 9, 255, 256, 2**31 - 1, 2**31, 2**64]:
        assert peek_run_id(encode((A("run"), batch_id, [], {}))) == batch_id
    assert peek_run_id(encode((A("cancel"), 4))) is None
    assert peek_run_id(encode((A("run"), -1, [], {}))) is None
    assert peek_run_id(b"\x83") is None
    assert peek_run_id(b"") is None


# -- stdout belongs to nobody ------------------------------------------------------------------


def test_writes_to_stdout_during_load_and_batches_never_reach_the_frames(worker: Callable[..., Worker]) -> None:
    w = worker("--on-load", "print")
    w.handshake()
    w.send(run(70, [(A("print"), b"after noise"), b"plain"]))
    assert w.recv() == (A("reply"), 70, [(A("ok"), b"after noise"), (A("ok"), b"plain")])
    w.close_input()
    assert w.wait() == EXIT_OK
    # Every byte on the frame channel was a frame; the noise went to stderr.
    assert all(body[:1] == b"\x83" for body in w.raw)
    noise = w.stderr_path.read_text()
    for line in [
        "print() while loading",
        "os.write(1) while loading",
        "libc puts() while loading",
        "print() while running a batch",
        "os.write(1) while running a batch",
        "libc puts() while running a batch",
    ]:
        assert line in noise


def test_a_native_crash_leaves_a_python_traceback_on_stderr(worker: Callable[..., Worker]) -> None:
    w = worker()
    w.handshake()
    w.send(run(80, [(A("segfault"),)]))
    assert w.wait() == -signal.SIGSEGV
    stderr = w.stderr_path.read_text()
    assert "about to read address 0" in stderr
    assert "Segmentation fault" in stderr and "scripted.py" in stderr


# -- errors: one table, one class per type -------------------------------------------------------


def errors_table() -> list[dict[str, str]]:
    rows = []
    for line in (REPO / "protocols" / "errors.md").read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"[a-z_]+", cells[0]) and cells[0] != "type":
            rows.append({"type": cells[0], "retryable": cells[1], "class": cells[2]})
    return rows


def test_every_error_type_in_the_table_has_exactly_one_python_class() -> None:
    rows = errors_table()
    assert len(rows) >= 14
    assert {r["type"] for r in rows} == set(ERROR_CLASSES)
    for row in rows:
        cls = ERROR_CLASSES[row["type"]]
        assert cls.__name__ == row["class"], row
        assert cls.retryable is (row["retryable"] == "true"), row
    assert len({cls for cls in ERROR_CLASSES.values()}) == len(ERROR_CLASSES)


# -- fuzz: the loop survives whatever arrives -------------------------------------------------------


class Echo(Task):
    """Answers each item with itself."""

    name = "echo"

    def run(self, items: list[Any], ctx: BatchContext) -> list[Any]:
        return list(items)


class InProcess:
    """A Server on pipes in this process, with its output read by a thread."""

    def __init__(self, model: Path, max_frame_bytes: int = 1 << 20) -> None:
        self.to_server_r, self.to_server_w = os.pipe()
        self.from_server_r, self.from_server_w = os.pipe()
        self.exits: list[int] = []
        config = WorkerConfig(ref=ModelRef(model=str(model)), task="echo", max_frame_bytes=max_frame_bytes)
        self.server = Server(config, self.to_server_r, self.from_server_w, exit_process=self._exit)
        self.frames: queue.Queue[Any] = queue.Queue()
        self.served: list[int] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.main = threading.Thread(target=lambda: self.served.append(self.server.serve()), daemon=True)
        self.main.start()

    def _exit(self, code: int) -> None:
        # The process lives on; the reader thread just returns after this.
        self.exits.append(code)

    def _read(self) -> None:
        with os.fdopen(self.from_server_r, "rb") as out:
            while len(header := out.read(4)) == 4:
                self.frames.put(decode(out.read(HEADER.unpack(header)[0])))
        self.frames.put(None)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.to_server_w, view) :]

    def until_pong(self, ref: int) -> list[Any]:
        """Every frame up to the pong for ``ref``."""
        seen = []
        while True:
            message = self.frames.get(timeout=WAIT)
            assert message is not None, "the server's output ended"
            if message == (A("pong"), ref):
                return seen
            seen.append(message)

    def close(self) -> None:
        os.close(self.to_server_w)
        self.main.join(WAIT)
        os.close(self.from_server_w)
        os.close(self.to_server_r)


@pytest.fixture(scope="module")
def echo_tasks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    patch = pytest.MonkeyPatch()
    patch.setattr(py_bridge.tasks, "task_class", lambda name: Echo)
    patch.setattr(server, "_forward_library_logs", lambda: None)
    yield fake_model(tmp_path_factory.mktemp("model"))
    patch.undo()


@pytest.fixture(scope="module")
def live_server(echo_tasks: Path) -> Iterator[InProcess]:
    s = InProcess(echo_tasks)
    s.write(hello())
    assert s.frames.get(timeout=WAIT)[0] == "ready"
    yield s
    s.close()


VALID_FRAMES = [
    encode((A("run"), 1, [b"text", 1.5, [1, 2], {A("k"): (b"v", None)}], {A("stream"): False})),
    encode((A("cancel"), 1)),
    encode((A("ping"), 3)),
    encode((A("run"), 2**40, [{A("__struct__"): A("Elixir.PyBridge.Tensor"), A("data"): b"\x00" * 8}], {})),
]


@st.composite
def hostile_bodies(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, valid frames with bytes flipped, cut or spliced, and random terms."""
    kind = draw(st.sampled_from(["bytes", "mutated", "cut", "term"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    base = bytearray(draw(st.sampled_from(VALID_FRAMES)))
    if kind == "cut":
        return bytes(base[: draw(st.integers(0, len(base)))])
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 4))):
            base[draw(st.integers(0, len(base) - 1))] = draw(st.integers(0, 255))
        return bytes(base)
    leaves = st.one_of(st.integers(), st.binary(max_size=20), st.sampled_from([A("run"), A("ok"), A("x"), None]))
    term = draw(
        st.recursive(leaves, lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=4), max_leaves=20)
    )
    return encode(term)


def _is_shutdown(body: bytes) -> bool:
    try:
        term = decode(body)
    except Exception:
        return False
    return isinstance(term, tuple) and len(term) == 1 and term[0] == "shutdown"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bodies=st.lists(hostile_bodies(), min_size=1, max_size=5))
def test_fuzz_malformed_frames_never_stop_or_hang_the_loop(live_server: InProcess, bodies: list[bytes]) -> None:
    assume(not any(_is_shutdown(b) for b in bodies))
    ref = int.from_bytes(os.urandom(4), "big")
    live_server.write(b"".join(raw_frame(b) for b in bodies) + frame((A("ping"), ref)))
    for message in live_server.until_pong(ref):
        assert message[0] in ("reply", "error", "pong", "chunk", "log"), message
        if message[0] == "error":
            assert str(message[2][A("type")]) in ("protocol_error", "frame_too_large", "internal"), message
    assert live_server.main.is_alive() and not live_server.exits


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=st.binary(max_size=2000))
def test_fuzz_any_byte_stream_then_end_of_file_ends_the_worker_cleanly(echo_tasks: Path, stream: bytes) -> None:
    s = InProcess(echo_tasks, max_frame_bytes=1024)
    s.write(stream)
    s.close()
    assert not s.main.is_alive(), "serve() did not return after end of file"
    # 0 is a clean end; 5 (EXIT_INTERNAL) would mean the reader itself broke.
    assert s.exits == [EXIT_OK] and s.served == [EXIT_OK]


# -- protocols/bad_inputs.md: the rows this side checks ------------------------------------------


def bad_input_rows() -> list[dict[str, str]]:
    rows = []
    for line in (REPO / "protocols" / "bad_inputs.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"[a-z0-9-]+", cells[0]):
            rows.append(dict(zip(("id", "side", "input", "outcome", "contains"), cells, strict=True)))
    return [r for r in rows if r["side"] == "python"]


def _deep_run(batch_id: int, depth: int) -> bytes:
    # Written by hand: this process's own encoder refuses such depth too.
    items = b"l\x00\x00\x00\x01" * depth + b"m\x00\x00\x00\x04core" + b"j" * depth
    return raw_frame(b"\x83h\x04w\x03runa" + bytes([batch_id]) + items + b"t\x00\x00\x00\x00")


def _bomb() -> bytes:
    inner = encode((A("run"), 60, [b"\x00" * 1_000_000], {}))[1:]
    return raw_frame(b"\x83P" + len(inner).to_bytes(4, "big") + zlib.compress(inner, 9))


# Frames sent to a worker started with --max-frame-bytes 4096, after the handshake.
FRAME_CASES: dict[str, bytes] = {
    "frame-not-a-term": raw_frame(b"\x00garbage"),
    "frame-empty": raw_frame(b""),
    "frame-truncated": raw_frame(b"\x83h\x04w\x03run"),
    "frame-trailing-bytes": raw_frame(encode((A("ping"), 1)) + b"\x00"),
    "frame-oversized": run(40, [b"x" * 10_000]),
    "frame-too-deep": _deep_run(50, 600),
    "frame-compressed-bomb": _bomb(),
    "unknown-message": frame((A("launch"), 1)),
    "run-items-not-a-list": frame((A("run"), 1, b"text", {})),
}


def _raises_text_not_utf8() -> None:
    from py_bridge.tasks.base import as_text

    as_text(b"\xff\xfe")


def _raises_tensor_wire_shape() -> None:
    from py_bridge.tensor import Tensor

    term = {
        A("__struct__"): A("Elixir.PyBridge.Tensor"),
        A("type"): (A("f"), 32),
        A("shape"): (3,),
        A("data"): b"\0" * 8,
    }
    Tensor.from_term(term)


def _raises_tensor_wire_type() -> None:
    from py_bridge.tensor import Tensor

    term = {A("__struct__"): A("Elixir.PyBridge.Tensor"), A("type"): (A("q"), 7), A("shape"): (1,), A("data"): b"\0"}
    Tensor.from_term(term)


def _audio(kind: str, bits: int, shape: tuple[int, ...], data: bytes) -> None:
    from py_bridge.tasks._media import decode_audio

    term = {
        A("__struct__"): A("Elixir.PyBridge.Tensor"),
        A("type"): (A(kind), bits),
        A("shape"): shape,
        A("data"): data,
    }
    decode_audio(term, 16_000)


RAISE_CASES: dict[str, Callable[[], None]] = {
    "text-not-utf8": _raises_text_not_utf8,
    "tensor-wire-shape": _raises_tensor_wire_shape,
    "tensor-wire-type": _raises_tensor_wire_type,
    "audio-nan": lambda: _audio("f", 32, (2,), struct.pack("<ff", float("nan"), 0.0)),
    "audio-wrong-shape": lambda: _audio("f", 32, (1, 2), struct.pack("<ff", 0.0, 0.0)),
    "audio-wrong-type": lambda: _audio("s", 16, (2,), b"\0\0\0\0"),
}

HANDSHAKE_CASES = {"run-before-hello", "version-mismatch"}


def test_every_python_row_of_the_bad_inputs_table_has_a_case_and_every_case_a_row() -> None:
    assert {r["id"] for r in bad_input_rows()} == set(FRAME_CASES) | set(RAISE_CASES) | HANDSHAKE_CASES


@pytest.mark.parametrize("row", bad_input_rows(), ids=lambda r: r["id"])
def test_bad_input_gets_the_outcome_the_table_gives_it(row: dict[str, str], worker: Callable[..., Worker]) -> None:
    kind, _, expected_type = row["outcome"].partition(" :")
    if row["id"] in RAISE_CASES:
        assert kind == "raise"
        with pytest.raises(ERROR_CLASSES[expected_type]) as info:
            RAISE_CASES[row["id"]]()
        assert row["contains"] in info.value.message
        return
    assert kind == "error"
    w = worker(serve_args=("--max-frame-bytes", "4096"))
    if row["id"] == "version-mismatch":
        w.send(hello(version=2))
    elif row["id"] == "run-before-hello":
        w.send(run(1, [b"x"]))
    else:
        w.handshake()
        w.send(FRAME_CASES[row["id"]])
    message = w.recv()
    assert message[0] == "error" and error_type(message) == expected_type, message
    assert row["contains"] in bytes(message[2][A("message")]).decode()
    if row["id"] == "version-mismatch":
        assert w.wait() == EXIT_PROTOCOL_MISMATCH
        return
    # The worker reads on: the next request is answered.
    if row["id"] == "run-before-hello":
        w.handshake()
    w.send(run(99, [b"still serving"]))
    assert w.recv() == (A("reply"), 99, [(A("ok"), b"still serving")])
