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
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from rebench_gym import procs
from rebench_gym.sandbox.base import Bind, lend_binds
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


def own_pids(proc: subprocess.Popen[bytes]) -> frozenset[int]:
    """Every process of a parent's sandbox spawn (its cgroup's members, else its tree); taken
    before the first fork, what :func:`rebench_gym.procs.kill_spawned_except` must keep."""
    return frozenset(procs.spawned_pids(proc.pid, getattr(proc, "rebench_cgroup", None)))


def prepare_call(
    ctx: ScoreContext,
    proc: subprocess.Popen[bytes],
    solution: Path,
    binds: Sequence[Bind],
    log: Path,
) -> None:
    """Ready a kept parent for this score call: continue its processes (the env stops every
    process of the sandbox, the agent's and so this one's, while a score call runs), fill its
    solution directory with the call's snapshot, lend its binds to the sandbox's user, and
    empty its log (so the call's messages quote only this call's output)."""
    procs.kill_pids(sorted(own_pids(proc)), signal.SIGCONT)
    refill(solution, ctx.solution)
    lend_binds(binds, getattr(ctx.sandbox, "owner", None))
    os.truncate(log, 0)


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
