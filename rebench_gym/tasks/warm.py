"""Helpers for a scorer's warm parent: a sandboxed process kept across an episode's score calls.

Importing torch (and its tracer) costs a score call more than the work it measures. A task can
instead keep one sandboxed parent per episode (in the :class:`~rebench_gym.tasks.base.EpisodeStore`
of its :class:`~rebench_gym.tasks.base.ScoreContext`) that imported what the solution process
needs and forks a *fresh child* for every solution run; the parent never imports the solution.
The sandbox's binds are fixed when the parent starts, so its solution directory is a stable
one that :func:`refill` fills with each call's snapshot; everything a child started is killed
after the run (:func:`rebench_gym.procs.kill_spawned_except`). Users: the RestrictedMLM
capture (``tasks/restricted_mlm``) and the OptimizeKernel runner (``tasks/optimize_kernel``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any, TypeVar

from rebench_gym import procs
from rebench_gym.tasks.base import ScoreContext

T = TypeVar("T")


def refill(dest: Path, source: Path) -> None:
    """Make ``dest`` hold exactly ``source``'s tree: hard links to the snapshot's files where
    the filesystem allows (the sandbox sees them read-only), copies otherwise."""
    empty(dest)
    shutil.copytree(source, dest, symlinks=True, dirs_exist_ok=True, copy_function=_link_or_copy)


def empty(directory: Path) -> None:
    """Remove everything in ``directory`` (symlinks themselves, never their targets)."""
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _link_or_copy(src: str, dest: str) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def resume(proc: subprocess.Popen[bytes]) -> None:
    """Continue a kept parent's processes: the env stops every process of the sandbox (the
    agent's, and so this one's) while a score call runs."""
    cgroup = getattr(proc, "rebench_cgroup", None)
    procs.kill_pids(procs.spawned_pids(proc.pid, cgroup), signal.SIGCONT)


def kept(ctx: ScoreContext, name: str) -> Any | None:
    """The parent kept under ``name`` for this episode if it is still running (a dead one is
    discarded); None without a store."""
    if ctx.episode is None:
        return None
    item = ctx.episode.get(name)
    if item is not None and item.proc.poll() is not None:
        ctx.episode.discard(name)
        return None
    return item


def keep(ctx: ScoreContext, name: str, item: T) -> T:
    """Keep ``item`` for the episode (closed at its end); without a store the caller closes it."""
    if ctx.episode is not None:
        ctx.episode.put(name, item)
    return item


def scratch_parent(ctx: ScoreContext) -> Path:
    """Where a parent's files go: the episode's directory, else this call's scratch."""
    return ctx.episode.root if ctx.episode is not None else ctx.work_dir
