"""The baseline transport: a bare ``{packet, 4}`` echo on fds 3/4.

It reads each frame into one buffer and writes it back untouched: no
decoding, no encoding, no batching. The benchmarks divide PyBridge's round
trip by this one's.
"""

from __future__ import annotations

import io
import os
import struct

HEADER = struct.Struct(">I")


def main() -> None:
    reader = io.FileIO(3, "rb", closefd=False)
    while True:
        header = reader.read(4)
        if not header or len(header) < 4:
            return
        (size,) = HEADER.unpack(header)
        body = bytearray(size)
        view = memoryview(body)
        got = 0
        while got < size:
            n = reader.readinto(view[got:])
            if not n:
                return
            got += n
        os.writev(4, [header, body])


if __name__ == "__main__":
    main()
