"""Turning action results into observation text: terminal output and the workspace tree."""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat
from collections import deque
from collections.abc import Callable
from pathlib import Path

from rebench_gym.sandbox.base import ExecResult
from rebench_gym.sandbox.output import truncate_middle

SKIP_DIRS = frozenset({"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ipynb_checkpoints"})


def format_exec(result: ExecResult, limit: int) -> str:
    """Terminal text for a shell command: output, then a status line."""
    text = truncate_middle(result.output, limit)
    if result.timed_out:
        status = f"[timed out after {result.duration_s:.0f} s: the command's processes were killed]"
    elif result.exit_code is None:
        status = "[exit status unknown]"
    else:
        status = f"[exit code {result.exit_code}]"
    if result.omitted_bytes:
        status += f" [{result.output_bytes} bytes of output, {result.omitted_bytes} omitted]"
    if result.killed_by:
        status += f" [killed: {result.killed_by}]"
    if result.note:
        status += f" [note: {result.note}]"
    if text and not text.endswith("\n"):
        text += "\n"
    return text + status


def workspace_tree(
    root: Path, *, max_entries: int = 200, on_dir: Callable[[str], None] | None = None
) -> str:
    """A sorted listing of the workspace (``path  size``), directories marked with ``/``.

    Breadth-first (the top levels first) and bounded: it stops reading once ``max_entries`` are
    listed, so its cost depends on what it shows, not on how many files the workspace holds (a
    virtualenv or an unpacked dataset costs nothing per step). A last line says when entries
    were left out. ``on_dir`` is called with each directory's host path before it is read.
    """
    lines: list[str] = []
    # (directory on the host, its path relative to root with a trailing slash); plain strings:
    # pathlib would cost more than the system calls here
    queue: deque[tuple[str, str]] = deque([(str(root), "")])
    cut = False
    while queue and not cut:
        directory, rel = queue.popleft()
        entries: list[os.DirEntry[str]] = []
        if on_dir is not None:
            on_dir(directory)
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    if entry.name in SKIP_DIRS:
                        continue
                    if len(lines) + len(entries) >= max_entries:
                        cut = True
                        break
                    entries.append(entry)
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            path = rel + entry.name
            if stat.S_ISDIR(info.st_mode):
                lines.append(path + "/")
                queue.append((entry.path, path + "/"))
            else:
                lines.append(f"{path}  {_human(info.st_size)}")
    lines.sort()
    if cut or queue:
        lines.append(
            f"[... listing stopped at {max_entries} entries; more are not shown (use ls or find) "
            "...]"
        )
    return "\n".join(lines)


class WorkspaceListing:
    """The ``files`` observation of one workspace, read again only when something changed.

    Every directory the listing read is watched with inotify (the watch is added before the
    directory is read, so no change can fall between the two); while no event arrived the
    cached text is returned, so a step that changes nothing costs one non-blocking read however
    many files are shown. Any event, a full event queue, or a machine without inotify means the
    listing is read again. Changes in directories the listing did not reach (it stopped at
    ``max_entries``) cannot change it.
    """

    def __init__(self, root: Path, *, max_entries: int = 200) -> None:
        self.root = root
        self.max_entries = max_entries
        self._text: str | None = None
        self._fd = -1

    def text(self) -> str:
        """The listing (cached while nothing in a listed directory changed)."""
        if self._text is not None and self._fd >= 0 and not self._changed():
            return self._text
        self._close_fd()
        self._fd = _inotify_init()
        on_dir = self._watch if self._fd >= 0 else None
        self._text = workspace_tree(self.root, max_entries=self.max_entries, on_dir=on_dir)
        return self._text

    def invalidate(self) -> None:
        """Forget the cached listing (the next :meth:`text` reads the workspace)."""
        self._text = None

    def close(self) -> None:
        self._close_fd()
        self._text = None

    def _watch(self, directory: str) -> None:
        if _LIBC is None or _LIBC.inotify_add_watch(self._fd, os.fsencode(directory), _MASK) < 0:
            self._close_fd()  # a directory that cannot be watched: no caching this time

    def _changed(self) -> bool:
        try:
            return bool(os.read(self._fd, 65536))
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _close_fd(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = -1


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1  # noqa: B018 - present on Linux only
    except (OSError, AttributeError):  # pragma: no cover - non-Linux
        return None
    return libc


_LIBC = _load_libc()
# IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
# | IN_DELETE_SELF | IN_MOVE_SELF: whatever can change a name, a kind or a size in the listing
_MASK = 0x002 | 0x004 | 0x008 | 0x040 | 0x080 | 0x100 | 0x200 | 0x400 | 0x800


def _inotify_init() -> int:
    """A fresh non-blocking, close-on-exec inotify descriptor (-1 where there is none)."""
    if _LIBC is None:
        return -1
    return int(_LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def number_lines(text: str, start: int | None, end: int | None) -> str:
    """Lines ``start``..``end`` (1-based, inclusive) of ``text``, each with its number."""
    lines = text.splitlines()
    lo = max(1, start or 1)
    hi = min(len(lines), end or len(lines))
    width = len(str(hi)) if hi else 1
    return "\n".join(f"{i:>{width}}\t{lines[i - 1]}" for i in range(lo, hi + 1))
