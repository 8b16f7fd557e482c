"""Private channels for frames, so that stdout belongs to nobody.

Must run before torch, transformers or any other library that may write to
fd 1 is imported: afterwards fd 1 points at stderr, and the protocol travels
on descriptors nobody else knows about.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import os
import signal
import sys

PORT_IN_FD = 3
PORT_OUT_FD = 4
STDERR_FILE_ENV = "PYBRIDGE_STDERR_FILE"


class ChannelError(RuntimeError):
    """The worker was started without the descriptors the protocol needs."""


def open_channels(stdio: bool) -> tuple[int, int]:
    """Return (read_fd, write_fd) for frames and point fd 1 at stderr.

    With ``stdio`` the frames use fds 0/1 (duplicated first); otherwise the
    Erlang port's ``:nouse_stdio`` descriptors 3/4.
    """
    _redirect_stderr_to_file()
    # A crash in native code (a segfault in a kernel, an abort in a library)
    # then leaves the Python stack in the stderr tail the shim reports.
    faulthandler.enable(file=sys.stderr, all_threads=False)
    if stdio:
        read_fd, write_fd = os.dup(0), os.dup(1)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
    else:
        for fd in (PORT_IN_FD, PORT_OUT_FD):
            try:
                os.fstat(fd)
            except OSError as exc:
                raise ChannelError(
                    f"file descriptor {fd} is not open: bridge serve is an Erlang port program. "
                    "Start it from Elixir (PyBridge.Serving), or pass --stdio to speak the protocol on stdin/stdout."
                ) from exc
        read_fd, write_fd = PORT_IN_FD, PORT_OUT_FD
    # From here on, anything written to fd 1 (print, progress bars, C code) lands on stderr.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for fd in (read_fd, write_fd):
        os.set_inheritable(fd, False)
    return read_fd, write_fd


def _redirect_stderr_to_file() -> None:
    # The shim names a file so it can read the last lines when the worker dies,
    # even from a crash in native code that Python never sees.
    path = os.environ.get(STDERR_FILE_ENV)
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)
    os.close(fd)
    # The shim reads through a handle it opened first; with the name gone, no
    # way of ending either side (a BEAM killed mid-start too) leaves the file.
    with contextlib.suppress(OSError):
        os.unlink(path)
    sys.stderr = os.fdopen(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    # The BEAM may die by SIGKILL while a model call holds the GIL for minutes;
    # the kernel's parent-death signal ends us even then.
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def ignore_interrupts() -> None:
    """Leave Ctrl-C to the BEAM, which owns this worker's lifetime."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
