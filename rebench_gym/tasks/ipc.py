"""Length-prefixed messages over a pair of pipes, with deadlines, for scorer <-> runner talk.

The scorer side never trusts what it reads: it only checks sizes and contents itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import struct
import time

_F_SETPIPE_SZ = 1031
HEADER = struct.Struct("<cQ")


class ChannelTimeout(TimeoutError):
    """The other side did not answer before the deadline."""


class ChannelClosed(EOFError):
    """The other side closed its end (it exited or crashed)."""


def make_pipe(size: int = 1 << 20) -> tuple[int, int]:
    """A pipe with a large buffer where the kernel allows it."""
    r, w = os.pipe()
    for fd in (r, w):
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, _F_SETPIPE_SZ, size)
    return r, w


class Channel:
    """The scorer's end: writes to ``wfd``, reads from ``rfd``."""

    def __init__(self, rfd: int, wfd: int, max_message: int) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self.max_message = max_message
        self._buffer = bytearray(0)
        os.set_blocking(wfd, False)

    def send(self, cmd: bytes, payload: bytes | memoryview, deadline: float) -> None:
        header = HEADER.pack(cmd, len(payload))
        self._send_all(memoryview(header), deadline)
        if len(payload):
            self._send_all(memoryview(payload).cast("B"), deadline)

    def _send_all(self, data: memoryview, deadline: float) -> None:
        while data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelTimeout("timed out sending to the solution process")
            _, writable, _ = select.select([], [self.wfd], [], left)
            if not writable:
                continue
            try:
                n = os.write(self.wfd, data[: 1 << 20])
            except BlockingIOError:
                continue
            except BrokenPipeError as e:
                raise ChannelClosed("the solution process exited") from e
            data = data[n:]

    def recv_exact(self, n: int, deadline: float) -> memoryview:
        """Read exactly ``n`` bytes into a reused buffer (valid until the next receive)."""
        if len(self._buffer) < n:
            self._buffer = bytearray(n)
            self._buffer[:] = bytes(n)  # touch every page now, not inside a timed call
        view = memoryview(self._buffer)[:n]
        got = 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelTimeout("timed out waiting for the solution process")
            readable, _, _ = select.select([self.rfd], [], [], left)
            if not readable:
                continue
            chunk = os.readv(self.rfd, [view[got:]]) if got < n else 0
            if chunk == 0:
                raise ChannelClosed("the solution process exited")
            got += chunk
        return view

    def recv(self, deadline: float) -> tuple[bytes, memoryview]:
        """One message: its command byte and payload (a view valid until the next receive)."""
        cmd, length = HEADER.unpack(bytes(self.recv_exact(HEADER.size, deadline)))
        if length > self.max_message:
            raise ValueError(f"message of {length} bytes exceeds the limit of {self.max_message}")
        return cmd, self.recv_exact(length, deadline) if length else memoryview(b"")

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            with contextlib.suppress(OSError):
                os.close(fd)
