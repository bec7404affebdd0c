"""The user cache (prepared assets, calibrated anchors): location, locking, atomic writes.

Each asset set is built once, under a lock, into a temporary directory that is renamed into
place only when complete, so neither two processes building at once nor a crash half-way
leaves a broken cache behind (:func:`build_once`)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: marker file of a finished asset directory
COMPLETE = ".complete"


def cache_root(override: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory: ``override``, else ``$REBENCH_CACHE_DIR``, else the XDG cache dir."""
    if override is not None:
        root = Path(override)
    elif os.environ.get("REBENCH_CACHE_DIR"):
        root = Path(os.environ["REBENCH_CACHE_DIR"])
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(base) / "rebench_gym"
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock held while the block runs; safe across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> Any | None:
    """The JSON at ``path``, or None if missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def build_once(root: Path, key: str, builder: Callable[[Path], None]) -> Path:
    """Return ``root/key``, calling ``builder(tmp_dir)`` first if it is not built yet.

    ``builder`` fills an empty temporary directory; it becomes ``root/key`` atomically.
    Temporary directories left by crashed builders are removed.
    """
    root.mkdir(parents=True, exist_ok=True)
    final = root / key
    if (final / COMPLETE).exists():
        return final
    with file_lock(root / f".{key}.lock"):
        if (final / COMPLETE).exists():
            return final
        for stale in root.glob(f".{key}.building-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists():  # an incomplete directory from an older layout or a crash
            shutil.rmtree(final, ignore_errors=True)
        tmp = root / f".{key}.building-{os.getpid()}-{time.monotonic_ns()}"
        tmp.mkdir()
        try:
            builder(tmp)
            (tmp / COMPLETE).write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)
            raise
    return final
