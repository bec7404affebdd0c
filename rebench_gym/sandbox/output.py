"""Bounded capture of command output and its conversion to observation text."""

from __future__ import annotations

import re

CUT_MARKER = "\n[... {omitted} bytes of output omitted ...]\n"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class BoundedBuffer:
    """Keeps the first and the last ``limit // 2`` bytes of a stream and counts the rest.

    Memory stays bounded whatever a command prints (a 10 GB stream costs ``limit`` bytes).
    """

    def __init__(self, limit: int) -> None:
        if limit < 64:
            raise ValueError("output limit must be at least 64 bytes")
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def write(self, data: bytes) -> None:
        """Append ``data``."""
        self.total += len(data)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]

    def trim_tail(self, nbytes: int) -> None:
        """Drop the last ``nbytes`` bytes written (used to strip the completion marker)."""
        self.total -= nbytes
        cut = min(nbytes, len(self.tail))
        if cut:
            del self.tail[len(self.tail) - cut :]
        nbytes -= cut
        if nbytes:
            del self.head[len(self.head) - nbytes :]

    @property
    def omitted(self) -> int:
        """How many bytes are not kept."""
        return max(0, self.total - len(self.head) - min(len(self.tail), self.tail_limit))

    def getvalue(self) -> tuple[bytes, int]:
        """The kept bytes (head, then tail) and how many bytes were left out between them."""
        tail = bytes(self.tail[-self.tail_limit :]) if self.tail else b""
        return bytes(self.head) + tail, self.omitted

    def tail_bytes(self, n: int) -> bytes:
        """The last ``n`` bytes written (from the tail, or the head if the tail is empty)."""
        if self.tail:
            return bytes(self.tail[-n:])
        return bytes(self.head[-n:])


def to_text(data: bytes, omitted: int = 0, cut_at: int | None = None) -> str:
    """Decode command output for an observation.

    Invalid UTF-8 becomes U+FFFD, control characters other than tab and newline are dropped,
    ``\\r\\n`` becomes ``\\n``. When bytes were omitted, an explicit marker stands where they were
    (``cut_at`` is the byte offset of the cut, by default the middle).
    """
    if omitted:
        at = len(data) // 2 if cut_at is None else cut_at
        head = _clean(data[:at].decode("utf-8", errors="replace"))
        tail = _clean(data[at:].decode("utf-8", errors="replace"))
        return head + CUT_MARKER.format(omitted=omitted) + tail
    return _clean(data.decode("utf-8", errors="replace"))


def _clean(text: str) -> str:
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def truncate_middle(text: str, limit: int) -> str:
    """Cut ``text`` to at most about ``limit`` characters, keeping both ends, with a marker."""
    if len(text) <= limit:
        return text
    half = max(0, (limit - 60) // 2)
    omitted = len(text) - 2 * half
    return text[:half] + f"\n[... {omitted} characters omitted ...]\n" + text[len(text) - half :]
