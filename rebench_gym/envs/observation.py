"""Turning action results into observation text: terminal output and the workspace tree."""

from __future__ import annotations

import os
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
    """A sorted listing of the workspace (``path  size``), directories marked with ``/``."""
    lines: list[str] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        rel = Path(dirpath).relative_to(root)
        for d in dirnames:
            total += 1
            if len(lines) < max_entries:
                lines.append(f"{(rel / d).as_posix()}/")
        for f in sorted(filenames):
            total += 1
            if len(lines) < max_entries:
                path = Path(dirpath) / f
                try:
                    size = path.lstat().st_size
                except OSError:
                    size = 0
                lines.append(f"{(rel / f).as_posix()}  {_human(size)}")
    lines.sort()
    if total > max_entries:
        lines.append(f"[... {total - max_entries} more entries not shown ...]")
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
