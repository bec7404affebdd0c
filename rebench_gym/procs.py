"""Process helpers: process trees and cgroups for the sandbox providers, and trusted workers.

Everything here works on Linux ``/proc``; a sandbox's cgroup is used where the machine lets us
create one: it lists every process of the sandbox, even detached ones, and bounds process count
(fork loops), memory and CPU time (:class:`Cgroup`).
"""

from __future__ import annotations

import atexit
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
from dataclasses import dataclass
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


def kill_spawned_except(
    proc: subprocess.Popen[bytes], keep: frozenset[int], *, timeout: float = 5.0
) -> bool:
    """Kill every process of a sandbox spawn (:func:`spawned_pids`: its cgroup's members, else
    its process tree) except ``keep``, until none is left; False if some survived ``timeout``.

    A scorer that forks fresh solution processes from one trusted parent in a spawn uses it to
    end one solution process and all it started (detached ones too) while keeping the parent
    and the sandbox's own processes (``keep``, taken before the first fork)."""
    cgroup = getattr(proc, "rebench_cgroup", None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        members = [p for p in spawned_pids(proc.pid, cgroup) if p not in keep]
        if not members:
            return True
        kill_pids(members, signal.SIGSTOP)
        kill_pids([p for p in spawned_pids(proc.pid, cgroup) if p not in keep], signal.SIGKILL)
        time.sleep(0.002)
    return False


#: ``REBENCH_SCORING=baseline`` makes scorers take their original path (one fresh interpreter
#: per solution process) instead of the faster one; ``rebench bench --scoring`` measures both
SCORING_PATH_ENV = "REBENCH_SCORING"


def fast_scoring() -> bool:
    """Whether scorers may use their fast path (see :data:`SCORING_PATH_ENV`)."""
    return os.environ.get(SCORING_PATH_ENV, "fast") != "baseline"


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


#: cgroup v1 hierarchies used, by controller (each controller is its own mount on v1)
_V1_ROOT = Path("/sys/fs/cgroup")
_V2_ROOT = Path("/sys/fs/cgroup")
_CFS_PERIOD_US = 100_000


@dataclass(frozen=True)
class CgroupLimits:
    """What a :class:`Cgroup` bounds: always the process count; memory (bytes, swap included),
    CPU time (``cpus`` cores' worth of quota) and a CPU set where given."""

    max_pids: int
    memory_bytes: int | None = None
    cpus: float | None = None
    cpuset: tuple[int, ...] | None = None


class Cgroup:
    """A cgroup (v1 or v2) that bounds and tracks every process of one sandbox or scored run.

    Use :meth:`create`, which returns ``None`` when the machine does not let us make even a pids
    cgroup; the sandboxes then fall back to process-tree tracking. :attr:`applied` says which
    limits it enforces and how, :attr:`missing` which it could not and why.

    On cgroup v1 each controller is its own hierarchy, so one sandbox's cgroup is one directory
    per controller (:attr:`paths`); on v2 it is a single directory.
    """

    def __init__(self, paths: dict[str, Path]) -> None:
        #: directory per controller (``pids``, ``memory``, ``cpu``, ``cpuset``); v2: all the same
        self.paths = paths
        #: the directory whose ``cgroup.procs`` lists the members
        self.path = paths["pids"]
        self.applied: dict[str, str] = {}
        self.missing: dict[str, str] = {}
        self._memory_limit: int | None = None
        self._oom_kills = 0

    @classmethod
    def create(cls, limits: CgroupLimits) -> Cgroup | None:
        """Make a fresh cgroup with ``limits``, or None if even the pids controller is out of
        reach."""
        name = uuid.uuid4().hex[:12]
        if (_V2_ROOT / "cgroup.controllers").exists():
            return cls._create_v2(name, limits)
        return cls._create_v1(name, limits)

    @classmethod
    def _create_v1(cls, name: str, limits: CgroupLimits) -> Cgroup | None:
        pids = _v1_dir("pids", name)
        if pids is None:
            return None
        group = cls({"pids": pids})
        try:
            (pids / "pids.max").write_text(str(limits.max_pids))
        except OSError:
            group.remove()
            return None
        group.applied["pids"] = f"cgroup v1 pids.max {limits.max_pids}"
        if limits.memory_bytes is not None:
            limit = str(limits.memory_bytes)
            settings = {"memory.limit_in_bytes": limit}
            if (_V1_ROOT / "memory" / "memory.memsw.limit_in_bytes").exists():
                settings["memory.memsw.limit_in_bytes"] = limit
                how = "cgroup v1 memory.limit_in_bytes, swap included"
            elif _swap_total() == 0:
                how = "cgroup v1 memory.limit_in_bytes (the machine has no swap)"
            else:
                how = "cgroup v1 memory.limit_in_bytes (swap not limited)"
            if group._apply_v1(name, "memory", "memory", settings, how):
                group._memory_limit = limits.memory_bytes
        if limits.cpus is not None:
            quota = max(1000, int(limits.cpus * _CFS_PERIOD_US))
            group._apply_v1(
                name,
                "cpu",
                "cpus",
                {"cpu.cfs_period_us": str(_CFS_PERIOD_US), "cpu.cfs_quota_us": str(quota)},
                f"cgroup v1 CPU quota of {limits.cpus:g} cores",
            )
        if limits.cpuset is not None:
            with contextlib.suppress(OSError):  # a v1 cpuset needs its memory nodes first
                mems = (_V1_ROOT / "cpuset" / "cpuset.mems").read_text().strip()
                group._apply_v1(
                    name,
                    "cpuset",
                    "cpuset",
                    {"cpuset.mems": mems, "cpuset.cpus": _cpu_list(limits.cpuset)},
                    f"cgroup v1 cpuset {_cpu_list(limits.cpuset)}",
                )
        return group

    def _apply_v1(
        self, name: str, controller: str, key: str, settings: dict[str, str], how: str
    ) -> bool:
        """Make ``name`` in the v1 hierarchy of ``controller`` and write ``settings`` there;
        records the limit ``key`` in :attr:`applied` (``how``) or :attr:`missing` (why not)."""
        path = _v1_dir(controller, name)
        if path is None:
            self.missing[key] = f"no writable cgroup v1 {controller} controller"
            return False
        self.paths[controller] = path
        for file, value in settings.items():
            try:
                (path / file).write_text(value)
            except OSError as e:
                self.missing[key] = f"cannot set {file}: {e.strerror}"
                return False
        self.applied[key] = how
        return True

    @classmethod
    def _create_v2(cls, name: str, limits: CgroupLimits) -> Cgroup | None:
        parent = _V2_ROOT / "rebench_gym"
        _sweep_stale(parent)
        wanted = ["pids", "memory", "cpu", "cpuset"]
        try:
            parent.mkdir(exist_ok=True)
            available = (parent / "cgroup.controllers").read_text().split()
            if "pids" not in available:
                return None
            enable = " ".join(f"+{c}" for c in wanted if c in available)
            with contextlib.suppress(OSError):
                (parent / "cgroup.subtree_control").write_text(enable)
            path = parent / name
            path.mkdir()
        except OSError:
            return None
        group = cls(dict.fromkeys(wanted, path))
        enabled = set((path / "cgroup.controllers").read_text().split()) if path.exists() else set()
        try:
            (path / "pids.max").write_text(str(limits.max_pids))
        except OSError:
            group.remove()
            return None
        group.applied["pids"] = f"cgroup v2 pids.max {limits.max_pids}"

        def write(controller: str, key: str, settings: dict[str, str], how: str) -> None:
            if controller not in enabled:
                group.missing[key] = f"the cgroup v2 {controller} controller is not delegated"
                return
            try:
                for file, value in settings.items():
                    if (path / file).exists() or file != "memory.swap.max":
                        (path / file).write_text(value)
            except OSError as e:
                group.missing[key] = f"cannot set {file}: {e.strerror}"
                return
            group.applied[key] = how

        if limits.memory_bytes is not None:
            write(
                "memory",
                "memory",
                {"memory.max": str(limits.memory_bytes), "memory.swap.max": "0"},
                "cgroup v2 memory.max, no swap",
            )
            if "memory" in group.applied:
                group._memory_limit = limits.memory_bytes
        if limits.cpus is not None:
            quota = max(1000, int(limits.cpus * _CFS_PERIOD_US))
            write(
                "cpu",
                "cpus",
                {"cpu.max": f"{quota} {_CFS_PERIOD_US}"},
                f"cgroup v2 cpu.max of {limits.cpus:g} cores",
            )
        if limits.cpuset is not None:
            write(
                "cpuset",
                "cpuset",
                {"cpuset.cpus": ",".join(map(str, limits.cpuset))},
                f"cgroup v2 cpuset {_cpu_list(limits.cpuset)}",
            )
        return group

    @property
    def memory_limit(self) -> int | None:
        """The enforced memory limit in bytes (None when memory is not limited)."""
        return self._memory_limit

    def join_current_process(self) -> None:
        """Move the calling process into the cgroup (used in ``preexec_fn``)."""
        for path in dict.fromkeys(self.paths.values()):
            (path / "cgroup.procs").write_text(str(os.getpid()))

    def pids(self) -> list[int]:
        """Every process now in the cgroup."""
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def oom_kills(self) -> int:
        """How many processes the kernel has killed for exceeding the memory limit so far."""
        mem = self.paths.get("memory")
        if mem is not None and self._memory_limit is not None:
            count = read_oom_kills(mem)
            if count is not None:
                self._oom_kills = count
        return self._oom_kills

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
        """Kill what is left and delete the cgroup's directories (the OOM count is kept)."""
        self.kill_all()
        self.oom_kills()
        for path in dict.fromkeys(self.paths.values()):
            remove_cgroup_dir(path)


def read_oom_kills(memory_dir: Path) -> int | None:
    """The ``oom_kill`` count of a memory cgroup directory (v2 ``memory.events``, v1
    ``memory.oom_control``), None when it cannot be read."""
    for name in ("memory.events", "memory.oom_control"):
        with contextlib.suppress(OSError, ValueError):
            for line in (memory_dir / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    return None


def remove_cgroup_dir(path: Path) -> None:
    """Delete an (emptied) cgroup directory, retrying while the kernel still reaps members."""
    for _ in range(100):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def _v1_dir(controller: str, name: str) -> Path | None:
    """A new ``rebench_gym/NAME`` directory in the v1 hierarchy of ``controller`` (or None)."""
    root = _V1_ROOT / controller
    if not (root / "cgroup.procs").exists():
        return None
    parent = root / "rebench_gym"
    _sweep_stale(parent)
    try:
        if not parent.exists():
            parent.mkdir()
            if controller == "cpuset":  # a v1 cpuset starts empty: inherit the root's
                for file in ("cpuset.cpus", "cpuset.mems"):
                    (parent / file).write_text((root / file).read_text().strip())
        path = parent / name
        path.mkdir()
    except OSError:
        return None
    return path


def _swap_total() -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("SwapTotal:"):
                return int(line.split()[1])
    return 0


def _cpu_list(cpus: tuple[int, ...]) -> str:
    return ",".join(map(str, cpus))


def threads(pid: int) -> list[int]:
    """The thread ids of process ``pid`` (empty if it is gone)."""
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def spawned_pids(proc_pid: int, cgroup: Cgroup | None) -> list[int]:
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
    from rebench_gym.tasks import phases

    with phases.phase("worker"):
        return _run_worker(module, spec, timeout, what)


def _run_worker(
    module: str, spec: dict[str, Any], timeout: float, what: str
) -> tuple[dict[str, Any] | None, str]:
    argv = [module, json.dumps(spec)]
    ran = _FORK_SERVER.run(argv, timeout) if fast_scoring() else None
    if ran is None:  # the baseline path, or no fork server here
        try:
            proc = subprocess.run(
                [sys.executable, "-m", *argv], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            ran = (None, "", "")
        else:
            ran = (proc.returncode, proc.stdout, proc.stderr)
    returncode, stdout, stderr = ran
    if returncode is None:
        return None, f"{what} timed out after {timeout:.0f} s"
    if returncode != 0:
        reason = "ran out of memory" if returncode in (-9, 137) else "crashed"
        return None, f"{what} {reason} (exit {returncode}){_last_exception(stderr)}"
    try:
        result = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, f"{what} gave no result{_last_exception(stderr)}"
    if not isinstance(result, dict):
        return None, f"{what} gave no result{_last_exception(stderr)}"
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


# ----- the trusted workers' fork server ---------------------------------------------------------
# A worker is a fresh interpreter that first imports torch: seconds per score call for work that
# often takes less. The fork server is one interpreter per driver process that imports the
# modules every worker needs (WORKER_PRELOAD) once and then forks one fresh child per worker run;
# the child runs the worker module as ``python -m`` would (same argv, environment and working
# directory as the driver's at the call) with stdout and stderr in private files. The server
# runs only this package's code and reads only the driver's requests (it never runs agent code:
# workers read agent-made files, as before, in their own fresh process). It is non-dumpable, so
# no child (same uid) can read or write its memory through /proc. If it is gone it is restarted
# on the next run; if it cannot start, run_worker falls back to a fresh interpreter.

#: imported once by the fork server, before any fork
WORKER_PRELOAD = ("numpy", "torch")


class _ForkServer:
    """The driver's side of the fork server (one per driver process, started on first use)."""

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._replies: dict[int, Any] = {}
        self._cond = threading.Condition(self._lock)
        self._next = 0
        self._failed = False
        self._reader: threading.Thread | None = None

    def forget(self) -> None:
        """In a forked copy of the driver (a vector env's worker): the server, its reader thread
        and the lock belong to the parent, so start afresh. The inherited pipe objects are kept
        referenced, never closed here: their locks may have been held at the fork, and closing
        them at garbage collection could close descriptors reused since."""
        if self._proc is not None:
            _INHERITED.append(self._proc)
        self.__init__()  # type: ignore[misc]

    def _start(self) -> bool:
        """Start the server (lock held); False if it cannot run here."""
        import threading

        if self._proc is not None:
            if self._proc.poll() is None:
                return True
            self._stop(self._proc)  # it died: reap it, close its stdin
        if self._failed:
            return False
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "rebench_gym.procs", *WORKER_PRELOAD],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            self._failed = True
            return False
        self._proc = proc
        self._reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._reader.start()
        return True

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        """Reader thread: file each reply line under its request id; wake waiters at EOF."""
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                reply = json.loads(line)
                key = int(reply["id"])
            except (ValueError, KeyError, TypeError):
                continue
            with self._cond:
                self._replies.setdefault(key, {}).update(reply)
                self._cond.notify_all()
        proc.stdout.close()
        with self._cond:
            self._cond.notify_all()

    def _wait(self, key: int, field: str, proc: subprocess.Popen[bytes], until: float) -> Any:
        """The reply ``field`` of request ``key`` (lock held), None at ``until`` or server exit."""
        while True:
            reply = self._replies.get(key, {})
            if field in reply:
                return reply[field]
            left = until - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                return None
            self._cond.wait(min(left, 0.5))

    def run(self, argv: list[str], timeout: float) -> tuple[int | None, str, str] | None:
        """Run ``python -m *argv`` as a fork of the server: ``(exit code or None on timeout,
        stdout, stderr)``; None when the server is unavailable (the caller runs it itself)."""
        import tempfile

        deadline = time.monotonic() + timeout
        with tempfile.TemporaryDirectory(prefix="rebench-worker-") as tmp:
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            with self._cond:
                for _ in range(2):  # one restart if the server died since the last run
                    if not self._start():
                        return None
                    proc = self._proc
                    assert proc is not None and proc.stdin is not None
                    self._next += 1
                    key = self._next
                    request = {
                        "id": key,
                        "argv": argv,
                        "env": dict(os.environ),
                        "cwd": os.getcwd(),
                        "out": str(out),
                        "err": str(err),
                    }
                    try:
                        proc.stdin.write(json.dumps(request).encode() + b"\n")
                        proc.stdin.flush()
                    except OSError:
                        self._stop(proc)
                        continue
                    pid = self._wait(key, "pid", proc, time.monotonic() + 30)
                    if pid is not None:
                        break
                    self._stop(proc)
                else:
                    return None
                status = self._wait(key, "status", proc, deadline)
                if status is None:  # timed out (or the server died): end the worker's group
                    with contextlib.suppress(OSError):
                        os.killpg(int(pid), signal.SIGKILL)
                    status = self._wait(key, "status", proc, time.monotonic() + 5)
                    self._replies.pop(key, None)
                    return None, "", ""
                self._replies.pop(key, None)
            return int(status), _read_text(out), _read_text(err)

    def shutdown(self) -> None:
        """At the driver's exit: close the server's stdin (it exits at EOF) and reap it."""
        proc, reader = self._proc, self._reader
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self._stop(proc)
        self._proc = None
        if reader is not None:
            reader.join(timeout=2)  # it closes the server's stdout at EOF

    def _stop(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(OSError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()  # its stdout is the reader thread's, closed there at EOF
        self._proc = None


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return ""


#: fork servers of the parent, inherited by a forked driver (see _ForkServer.forget)
_INHERITED: list[subprocess.Popen[bytes]] = []
_FORK_SERVER = _ForkServer()
os.register_at_fork(after_in_child=_FORK_SERVER.forget)
atexit.register(_FORK_SERVER.shutdown)


def _set_dumpable(flag: bool) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(4, int(flag), 0, 0, 0)  # PR_SET_DUMPABLE


def _serve(preload: list[str]) -> None:
    """The fork server (``python -m rebench_gym.procs MODULE...``): see the section comment."""
    import importlib
    import select

    for name in preload:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    _set_dumpable(False)
    import ctypes

    dumpable = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    running: dict[int, int] = {}  # pid -> request id
    buffer = b""
    stdin = sys.stdin.buffer.fileno()
    out = sys.stdout.buffer

    def reply(data: dict[str, Any]) -> None:
        out.write(json.dumps(data).encode() + b"\n")
        out.flush()

    reply({"id": 0, "dumpable": dumpable})  # request ids start at 1

    while True:
        try:
            readable, _, _ = select.select([stdin, wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                os.read(wake_r, 4096)
        while running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            key = running.pop(pid, None)
            if key is not None:
                reply({"id": key, "status": os.waitstatus_to_exitcode(status)})
        if stdin in readable:
            chunk = os.read(stdin, 1 << 16)
            if not chunk:
                return  # the driver is gone
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _worker_child(request, [stdin, wake_r, wake_w])
                running[pid] = int(request["id"])
                reply({"id": request["id"], "pid": pid})


def _worker_child(request: dict[str, Any], close: list[int]) -> None:
    """In a fresh fork of the server: run ``python -m *argv`` with the request's output files,
    environment and working directory; never returns."""
    import runpy
    import traceback

    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()  # the driver ends a timed-out worker with everything it started
        _set_dumpable(True)
        for fd in close:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, request["out"]), (2, request["err"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            os.dup2(target, fd)
            os.close(target)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.argv = list(request["argv"])
        try:
            runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, int | None):
                print(e.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    _serve(sys.argv[1:])
