"""Scratch directories that name their driver, and the removal of those whose driver is gone.

Every temporary directory rebench_gym makes on the host (an episode's workspace and score copies,
the kernel scorer's shared-memory I/O, calibration runs) is created by :func:`scratch_dir` as
``rebench-KIND-PID-XXXXXX``, PID being the driving process. A driver killed outright (SIGKILL,
SIGTERM without handlers, an interpreter that exits without ``close()``) leaves them behind;
:func:`remove_leftovers` finds those whose driver is no longer running (a PID now used by a
younger process counts as gone) and removes them. A live driver's directories are never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"^rebench-([a-z]+)-(\d+)-[A-Za-z0-9_]+$")
SHM = Path("/dev/shm")


def scratch_dir(kind: str, parent: Path | None = None) -> Path:
    """Create a private ``rebench-KIND-PID-XXXXXX`` directory (in ``parent`` or the temp dir)."""
    if not kind.isalpha() or not kind.islower():
        raise ValueError(f"scratch kind must be lowercase letters, not {kind!r}")
    return Path(tempfile.mkdtemp(prefix=f"rebench-{kind}-{os.getpid()}-", dir=parent))


def remove_tree(path: Path) -> None:
    """Remove a scratch directory, first unmounting anything mounted below it (a workspace's
    disk left by a driver that was killed)."""
    from rebench_gym.sandbox.resources import unmount_below

    unmount_below(path)
    shutil.rmtree(path, ignore_errors=True)


def shm_scratch_dir(kind: str) -> Path:
    """Like :func:`scratch_dir`, in ``/dev/shm`` where it exists (RAM-backed)."""
    return scratch_dir(kind, SHM if SHM.is_dir() else None)


@dataclass(frozen=True)
class Leftover:
    """A scratch directory and the driver that made it."""

    path: Path
    pid: int
    created: float


def _boot_time() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _driver_alive(pid: int, created: float) -> bool:
    started = process_start(pid)
    # a process that started after the directory was made cannot be its driver (PID reuse);
    # one second of slack for the clock tick resolution of the start time
    return started is not None and started <= created + 1.0


def find_leftovers(roots: list[Path] | None = None) -> list[Leftover]:
    """Scratch directories in ``roots`` (default: temp dir and /dev/shm) whose driver is gone."""
    found = []
    for root in roots if roots is not None else [Path(tempfile.gettempdir()), SHM]:
        with contextlib.suppress(OSError):
            for entry in os.scandir(root):
                match = _NAME.match(entry.name)
                if not match or not entry.is_dir(follow_symlinks=False):
                    continue
                pid = int(match.group(2))
                try:
                    created = entry.stat(follow_symlinks=False).st_ctime
                except OSError:
                    continue
                if pid == os.getpid() or _driver_alive(pid, created):
                    continue
                found.append(Leftover(Path(entry.path), pid, created))
    return found


def remove_leftovers(
    roots: list[Path] | None = None, *, older_than: float | None = None
) -> list[Path]:
    """Remove the dead drivers' scratch directories; returns what was removed.

    Args:
        roots: where to look (default: the temp dir and /dev/shm).
        older_than: only directories created before this time (seconds since the epoch).
    """
    removed = []
    for item in find_leftovers(roots):
        if older_than is not None and item.created >= older_than:
            continue
        remove_tree(item.path)
        if not item.path.exists():
            removed.append(item.path)
    return removed


def remove_leftovers_at_start() -> list[Path]:
    """What ``rebench run`` does first: remove dead drivers' directories older than itself."""
    started = process_start(os.getpid()) or time.time()
    return remove_leftovers(older_than=started)
