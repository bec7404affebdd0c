"""Process-tree and cgroup helpers shared by the sandbox providers.

Everything here works on Linux ``/proc``; the pids cgroup is used where the machine lets us
create one (it bounds fork loops and lists every process of a sandbox, even detached ones).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (empty if it is gone)."""
    out: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tids = list(task_dir.iterdir())
    except OSError:
        return out
    for tid in tids:
        try:
            text = (tid / "children").read_text()
        except OSError:
            continue
        out.extend(int(p) for p in text.split())
    return out


def descendants(pid: int) -> list[int]:
    """All descendants of ``pid``, parents before children."""
    seen: list[int] = []
    frontier = [pid]
    while frontier:
        nxt: list[int] = []
        for p in frontier:
            for c in children(p):
                if c not in seen:
                    seen.append(c)
                    nxt.append(c)
        frontier = nxt
    return seen


def kill_pids(pids: list[int], sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to each pid, ignoring ones that are already gone."""
    for p in pids:
        with contextlib.suppress(OSError):
            os.kill(p, sig)


def kill_tree(pid: int, *, include_root: bool = True) -> None:
    """SIGSTOP then SIGKILL a process tree so no member can fork away while we walk it."""
    for _ in range(3):
        tree = descendants(pid)
        kill_pids(tree, signal.SIGSTOP)
        tree = descendants(pid)
        kill_pids(tree, signal.SIGKILL)
        if not descendants(pid):
            break
    if include_root:
        kill_pids([pid])


def stop_scoring_process(proc: subprocess.Popen[bytes]) -> None:
    """Kill a scoring process started by a sandbox and its whole tree, reap it, and remove the
    cgroup or container the sandbox attached to it (``proc.rebench_cgroup``), if any."""
    kill_tree(proc.pid, include_root=True)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    cgroup = getattr(proc, "rebench_cgroup", None)
    if cgroup is not None:
        cgroup.remove()


def log_tail(path: Path, limit: int = 3000) -> str:
    """The last ``limit`` bytes of a log file as text ("" when it cannot be read)."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", errors="replace")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def comm(pid: int) -> str:
    """The short command name of ``pid`` ("" if gone)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def pids_with_env_marker(marker: str) -> list[int]:
    """Processes whose initial environment contains ``marker`` (a ``KEY=value`` string)."""
    needle = marker.encode()
    found: list[int] = []
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(int(entry.name))
    return found


def _sweep_stale(parent: Path, min_age_s: float = 300.0) -> None:
    """Remove empty cgroups left by drivers that were killed before they could clean up."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    now = time.time()
    for entry in entries:
        try:
            if (
                entry.is_dir()
                and now - entry.stat().st_mtime > min_age_s
                and not (entry / "cgroup.procs").read_text().strip()
            ):
                entry.rmdir()
        except OSError:
            continue


class PidsCgroup:
    """A pids cgroup (v1 or v2) that bounds and tracks every process of one sandbox.

    Use :meth:`create`, which returns ``None`` when the machine does not let us make one; the
    sandboxes then fall back to process-tree tracking.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, max_pids: int) -> PidsCgroup | None:
        """Make a fresh cgroup limited to ``max_pids`` tasks, or return None if impossible."""
        for root in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
            if not (root / "cgroup.procs").exists():
                continue
            if root == Path("/sys/fs/cgroup"):
                controllers = root / "cgroup.controllers"
                if not controllers.exists() or "pids" not in controllers.read_text().split():
                    continue
            _sweep_stale(root / "rebench_gym")
            path = root / "rebench_gym" / uuid.uuid4().hex[:12]
            try:
                path.mkdir(parents=True)
                (path / "pids.max").write_text(str(max_pids))
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            return cls(path)
        return None

    def join_current_process(self) -> None:
        """Move the calling process into the cgroup (used in ``preexec_fn``)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def pids(self) -> list[int]:
        """Every process now in the cgroup."""
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def kill_all(self, *, timeout: float = 5.0, keep: frozenset[int] = frozenset()) -> None:
        """Freeze-free kill loop: SIGKILL every member (except ``keep``) until none is left."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            members = [p for p in self.pids() if p not in keep]
            if not members:
                return
            kill_pids(members, signal.SIGSTOP)
            kill_pids([p for p in self.pids() if p not in keep], signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        """Kill what is left and delete the cgroup directory."""
        self.kill_all()
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def threads(pid: int) -> list[int]:
    """The thread ids of process ``pid`` (empty if it is gone)."""
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def spawned_pids(proc_pid: int, cgroup: PidsCgroup | None) -> list[int]:
    """Every process of a spawned sandbox: its cgroup's members, else its process tree."""
    if cgroup is not None:
        return cgroup.pids()
    return [proc_pid, *descendants(proc_pid)]


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "X"
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3]


def freeze(list_pids: Callable[[], list[int]], *, timeout: float = 2.0) -> list[int]:
    """SIGSTOP every process ``list_pids()`` returns, until the set is stable and all stopped.

    Returns the stopped pids (give them to :func:`thaw`). Threads stop with their process, so
    nothing in the set can write memory until thawed.
    """
    stopped: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        current = set(list_pids())
        new = current - stopped
        kill_pids(sorted(new), signal.SIGSTOP)
        stopped |= new
        if not new:
            break
        if time.monotonic() > deadline:
            break
    while time.monotonic() < deadline:
        if all(_state(p) in "TtXZ" for p in stopped):
            break
        time.sleep(0.0002)
    return sorted(stopped)


def thaw(pids: list[int]) -> None:
    """Resume processes stopped by :func:`freeze`."""
    kill_pids(pids, signal.SIGCONT)
