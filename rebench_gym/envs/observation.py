"""Turning action results into observation text: terminal output and the workspace tree."""

from __future__ import annotations

import os
import stat
from collections import deque
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


def workspace_tree(root: Path, *, max_entries: int = 200) -> str:
    """A sorted listing of the workspace (``path  size``), directories marked with ``/``.

    Breadth-first (the top levels first) and bounded: it stops reading once ``max_entries`` are
    listed, so its cost depends on what it shows, not on how many files the workspace holds (a
    virtualenv or an unpacked dataset costs nothing per step). A last line says when entries
    were left out.
    """
    lines: list[str] = []
    # (directory on the host, its path relative to root with a trailing slash); plain strings:
    # pathlib would cost more than the system calls here
    queue: deque[tuple[str, str]] = deque([(str(root), "")])
    cut = False
    while queue and not cut:
        directory, rel = queue.popleft()
        entries: list[os.DirEntry[str]] = []
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
