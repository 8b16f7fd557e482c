"""``{packet, 4}`` frames over real pipes: whole, in step, bounded."""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from py_bridge.errors import FrameTooLargeError, ProtocolError
from py_bridge.etf import Atom, decode, encode
from py_bridge.framing import _IOV_MAX, HEADER, OVERSIZED_HEAD_BYTES, FrameReader, FrameWriter, OversizedFrameError


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    for fd in (read_fd, write_fd):
        try:
            os.close(fd)
        except OSError:
            pass


def write_in_thread(fd: int, data: bytes, close: bool = True) -> threading.Thread:
    """Feed a pipe from a thread, since a frame may exceed the pipe's buffer."""

    def feed() -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if close:
            os.close(fd)

    thread = threading.Thread(target=feed)
    thread.start()
    return thread


def test_frames_come_back_whole_and_in_order(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    bodies = [b"", b"x", os.urandom(70_000), b"last"]
    feeder = write_in_thread(write_fd, b"".join(HEADER.pack(len(b)) + b for b in bodies))
    reader = FrameReader(read_fd)
    assert [bytes(reader.read()) for _ in bodies] == bodies  # type: ignore[arg-type]
    assert reader.read() is None
    feeder.join()


def test_end_of_file_inside_a_header_or_a_body_is_a_protocol_error(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    os.write(write_fd, HEADER.pack(10) + b"12345")
    os.close(write_fd)
    with pytest.raises(ProtocolError, match="5 of 10"):
        FrameReader(read_fd).read()

    read_fd2, write_fd2 = os.pipe()
    os.write(write_fd2, b"\x00\x00")
    os.close(write_fd2)
    with pytest.raises(ProtocolError, match="2 of 4"):
        FrameReader(read_fd2).read()
    os.close(read_fd2)


def test_an_oversized_frame_is_skipped_and_its_head_kept(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    big = encode((Atom("run"), 77, [b"y" * 300_000], {}))
    feeder = write_in_thread(write_fd, HEADER.pack(len(big)) + big + HEADER.pack(2) + b"ok")
    reader = FrameReader(read_fd, max_frame_bytes=1024)
    with pytest.raises(OversizedFrameError) as info:
        reader.read()
    assert isinstance(info.value, FrameTooLargeError) and info.value.type == "frame_too_large"
    assert info.value.length == len(big)
    assert info.value.head == big[:OVERSIZED_HEAD_BYTES]
    assert f"{len(big)} bytes" in info.value.message and "1024" in info.value.message
    # The stream is still in step: the next frame reads whole.
    assert bytes(reader.read()) == b"ok"  # type: ignore[arg-type]
    feeder.join()


def test_end_of_file_inside_an_oversized_frame_is_a_protocol_error(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    os.write(write_fd, HEADER.pack(5000) + b"z" * 100)
    os.close(write_fd)
    with pytest.raises(ProtocolError, match="oversized"):
        FrameReader(read_fd, max_frame_bytes=1024).read()


def test_the_writer_sends_more_parts_than_one_writev_takes(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    parts = [bytes([i % 256]) * 3 for i in range(_IOV_MAX * 2 + 5)]
    writer = FrameWriter(write_fd)
    received: list[bytes] = []
    reader_thread = threading.Thread(target=lambda: received.append(bytes(FrameReader(read_fd).read())))  # type: ignore[arg-type]
    reader_thread.start()
    writer.write_parts(parts)
    reader_thread.join()
    assert received == [b"".join(parts)]


def test_concurrent_writers_never_interleave_frames(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    writer = FrameWriter(write_fd)
    payloads = {n: bytes([n]) * (100_000 + n) for n in range(8)}

    def send(n: int) -> None:
        for _ in range(5):
            writer.send((Atom("chunk"), n, 0, payloads[n]))

    threads = [threading.Thread(target=send, args=(n,)) for n in payloads]
    for t in threads:
        t.start()
    reader = FrameReader(read_fd)
    for _ in range(5 * len(payloads)):
        _, n, _, data = decode(reader.read())  # type: ignore[arg-type]
        assert bytes(data) == payloads[n]
    for t in threads:
        t.join()


def test_a_term_the_codec_refuses_leaves_the_stream_untouched(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    writer = FrameWriter(write_fd)
    with pytest.raises(TypeError):
        writer.send((Atom("reply"), 1, [object()]))
    writer.send(Atom("next"))
    os.close(write_fd)
    reader = FrameReader(read_fd)
    assert decode(reader.read()) == "next"  # type: ignore[arg-type]
    assert reader.read() is None


def test_writing_to_a_closed_pipe_raises_broken_pipe(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    os.close(read_fd)
    with pytest.raises(BrokenPipeError):
        FrameWriter(write_fd).send(b"nobody listens")


@settings(max_examples=200, deadline=None)
@given(
    stream=st.binary(max_size=3000),
    limit=st.integers(min_value=0, max_value=2000),
)
def test_fuzz_any_byte_stream_reads_as_frames_then_ends_cleanly(stream: bytes, limit: int) -> None:
    """Whatever arrives, the reader yields frames, oversize errors, and then stops."""
    read_fd, write_fd = os.pipe()
    try:
        feeder = write_in_thread(write_fd, stream)
        reader = FrameReader(read_fd, max_frame_bytes=limit)
        consumed = 0
        while True:
            try:
                body = reader.read()
            except OversizedFrameError as error:
                consumed += 4 + error.length
                continue
            except ProtocolError:
                # Only a stream that ends inside a frame may end this way.
                (declared,) = struct.unpack(">I", (stream[consumed : consumed + 4] + b"\0\0\0\0")[:4])
                assert len(stream) - consumed < 4 or len(stream) - consumed - 4 < declared
                break
            if body is None:
                assert consumed == len(stream)
                break
            assert len(body) <= limit
            assert bytes(body) == stream[consumed + 4 : consumed + 4 + len(body)]
            consumed += 4 + len(body)
        feeder.join()
    finally:
        os.close(read_fd)
