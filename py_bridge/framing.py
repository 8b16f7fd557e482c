"""``{packet, 4}`` frames on raw file descriptors.

A frame is a 4-byte big-endian length followed by that many bytes. Reading
goes straight into one preallocated buffer per frame (``readinto``), and
writing hands the codec's parts to ``os.writev`` so a large tensor is never
concatenated into a second copy.

A frame longer than ``max_frame_bytes`` is never buffered: its first bytes are
kept (so the server can still tell which request it was) and the rest is read
and discarded, which keeps the stream in step for the next frame.
"""

from __future__ import annotations

import io
import os
import struct
import threading
from collections.abc import Sequence
from typing import Any

from py_bridge import etf
from py_bridge.errors import FrameTooLargeError, ProtocolError

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME_BYTES = 1 << 30

#: How many leading bytes of an oversized frame are kept for the error report.
OVERSIZED_HEAD_BYTES = 64

# os.writev accepts at most IOV_MAX buffers per call.
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024


class OversizedFrameError(FrameTooLargeError):
    """A frame over ``max_frame_bytes``; ``head`` holds its first bytes."""

    def __init__(self, message: str, *, length: int, head: bytes) -> None:
        super().__init__(message)
        self.length = length
        self.head = head


class FrameReader:
    """Reads whole frames from a descriptor; ``read`` returns None at end of file."""

    def __init__(self, fd: int, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        # Buffered: a small frame's header and body then cost one read(2),
        # while a large body still goes straight into its own buffer.
        self._file = io.BufferedReader(io.FileIO(fd, "rb", closefd=False), buffer_size=1 << 16)
        self.max_frame_bytes = max_frame_bytes

    def read(self) -> memoryview | None:
        """The next frame's body, or None at a clean end of file.

        Raises :class:`OversizedFrameError` for a frame over the limit (the
        stream stays usable) and :class:`ProtocolError` when the input ends
        inside a frame (it does not).
        """
        header = self._read_exact(HEADER.size)
        if header is None:
            return None
        (length,) = HEADER.unpack(header)
        if length > self.max_frame_bytes:
            head = self._read_exact(min(length, OVERSIZED_HEAD_BYTES))
            if head is None:
                raise ProtocolError("stream ended inside an oversized frame")
            self._skip(length - len(head))
            raise OversizedFrameError(
                f"frame of {length} bytes exceeds max_frame_bytes ({self.max_frame_bytes})",
                length=length,
                head=bytes(head),
            )
        body = self._read_exact(length)
        if body is None:
            raise ProtocolError(f"stream ended before the body of a frame of {length} bytes")
        return body

    def _read_exact(self, size: int) -> memoryview | None:
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        while got < size:
            n = self._file.readinto(view[got:])
            if not n:
                if got:
                    raise ProtocolError(f"stream ended inside a frame ({got} of {size} bytes)")
                return None
            got += n
        return view

    def _skip(self, size: int) -> None:
        chunk = bytearray(min(size, 1 << 20))
        left = size
        while left:
            n = self._file.readinto(memoryview(chunk)[: min(left, len(chunk))])
            if not n:
                raise ProtocolError("stream ended inside an oversized frame")
            left -= n


class FrameWriter:
    """Writes frames atomically with respect to other threads of this process."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def send(self, term: Any) -> None:
        """Encode ``term`` and write it as one frame.

        Encoding happens before the lock is taken, so a term the codec refuses
        raises here and leaves the stream untouched.
        """
        self.write_parts(etf.encode_parts(term))

    def write_parts(self, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        size = sum(memoryview(p).nbytes for p in parts)
        if size > 0xFFFFFFFF:
            raise FrameTooLargeError(f"a frame of {size} bytes does not fit {{packet, 4}}")
        buffers: list[Any] = [HEADER.pack(size), *parts]
        with self._lock:
            self._writev_all(buffers)

    def _writev_all(self, buffers: list[Any]) -> None:
        views = [memoryview(b).cast("B") for b in buffers if memoryview(b).nbytes]
        while views:
            written = os.writev(self._fd, views[:_IOV_MAX])
            # Drop what was written; a partial write leaves a tail of one view.
            while views and written >= views[0].nbytes:
                written -= views[0].nbytes
                views.pop(0)
            if written:
                views[0] = views[0][written:]
