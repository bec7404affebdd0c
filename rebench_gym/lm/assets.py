"""The asset cache: each asset set is built once, under a lock, into a temporary directory that is
renamed into place only when complete, so neither two processes building at once nor a crash
half-way leaves a broken cache behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from rebench_gym.cache import file_lock

COMPLETE = ".complete"


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
