"""Process helpers: process trees and cgroups for the sandbox providers, and trusted workers.

Everything here works on Linux ``/proc``; the pids cgroup is used where the machine lets us
create one (it bounds fork loops and lists every process of a sandbox, even detached ones).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


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


# ----- trusted workers -------------------------------------------------------------------------
# Scorers that must not execute the agent's code in their own process (checkpoint evaluation,
# graph execution, sampling) hand the work to a fresh interpreter running one of the package's
# worker modules (``python -m ...``) on a JSON spec. The worker prints one JSON line last: a
# result, ``{"error": ...}`` or ``{"violation": ...}``. Every way it can fail (timeout, out of
# memory, crash, no result) becomes a message for an invalid score, never an exception.
#
# Workers run on hidden data (held-out tokens, held-out instructions), so what they print to
# stderr is never passed on: a crash is reported by its exit status and the type name of the last
# exception. A worker's own ``error`` and ``violation`` texts reach the agent as they are, so each
# worker must keep text derived from hidden data out of them.


def run_worker(
    module: str, spec: dict[str, Any], timeout: float, what: str = "evaluation"
) -> tuple[dict[str, Any] | None, str]:
    """``(result, "")`` or ``(None, message)``; ``what`` names the work in messages."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", module, json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None, f"{what} timed out after {timeout:.0f} s"
    if proc.returncode != 0:
        reason = "ran out of memory" if proc.returncode in (-9, 137) else "crashed"
        return None, f"{what} {reason} (exit {proc.returncode}){_last_exception(proc.stderr)}"
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, f"{what} gave no result{_last_exception(proc.stderr)}"
    if not isinstance(result, dict):
        return None, f"{what} gave no result{_last_exception(proc.stderr)}"
    if "violation" in result:
        return None, f"rule violation: {result['violation']}"
    if "error" in result:
        return None, str(result["error"])
    return result, ""


#: a traceback's last line: an exception class name (dotted, ending like one), then ":" or EOL
_EXCEPTION_LINE = re.compile(
    r"^((?:[A-Za-z_]\w{0,40}\.){0,4}[A-Za-z_]\w{0,40}(?:Error|Exception|Exit|Interrupt|Fault))"
    r"(?::|$)"
)


def _last_exception(stderr: str) -> str:
    """``": ValueError"`` from a traceback's last line, or "": never the exception's text."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    match = _EXCEPTION_LINE.match(lines[-1]) if lines else None
    return f": {match.group(1)}" if match else ""
