"""The ``local`` sandbox: a temporary directory and a plain bash. No isolation.

For development only: the agent's processes run as the driving user and can read anything it can,
hidden assets included. The env warns when it is used. Processes are tracked with a pids cgroup
where possible, else by an environment marker and the process tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from rebench_gym import procs
from rebench_gym.sandbox.base import Bind, ExecResult, Sandbox
from rebench_gym.sandbox.resources import (
    Gpu,
    Resources,
    capped_cpus,
    score_cpuset,
)
from rebench_gym.sandbox.shell import PersistentShell

_PR_SET_PDEATHSIG = 1


def set_parent_death_signal() -> None:
    """Ask the kernel to SIGKILL this (child) process when its parent dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # pragma: no cover - non-glibc platforms
        pass


def python_bin_dir() -> str:
    """The ``bin`` directory of the interpreter running rebench_gym (first on the agent's PATH)."""
    return str(Path(sys.executable).parent)


def base_env(home: str, marker: str, gpus: Sequence[Gpu] | None = None) -> dict[str, str]:
    """The environment every sandboxed process starts with.

    ``gpus``: the devices the sandbox was given (``CUDA_VISIBLE_DEVICES`` lists their UUIDs; an
    empty list hides every GPU); None passes the driver's own device variables through.
    """
    key, _, value = marker.partition("=")
    if gpus is None:
        devices = {
            name: os.environ[name]
            for name in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")
            if name in os.environ
        }
    else:
        devices = {"CUDA_VISIBLE_DEVICES": ",".join(g.uuid for g in gpus)}
    return devices | {
        "HOME": home,
        "PATH": f"{python_bin_dir()}:/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "PAGER": "cat",
        "GIT_PAGER": "cat",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": str(os.cpu_count() or 1),
        key: value,
    }


class HostShellSandbox(Sandbox):
    """Shared machinery of the providers whose shell runs on this host (local, bwrap).

    Every process carries an environment marker and, where the machine allows, sits in a
    cgroup that bounds fork loops, memory and CPU time (:class:`~rebench_gym.procs.Cgroup`);
    :meth:`kill_all` kills by both and by process tree. Subclasses give the shell's argv,
    environment and cwd.
    """

    def __init__(
        self,
        workspace: Path,
        *,
        max_output_bytes: int = 64_000,
        max_pids: int = 4096,
        owner: tuple[int, int] | None = None,
        resources: Resources | None = None,
    ) -> None:
        super().__init__(workspace, max_output_bytes=max_output_bytes, resources=resources)
        self.owner = owner
        self.max_pids = max_pids
        self.marker = f"REBENCH_SANDBOX={uuid.uuid4().hex}"
        self.gpus: list[Gpu] | None = None
        limits = procs.CgroupLimits(max_pids)
        if resources is not None:
            cpus = capped_cpus(resources.cpus, self.enforcement)
            limits = procs.CgroupLimits(max_pids, resources.memory_bytes, cpus)
            self.gpus = self.enforcement.pin_gpus("pinned by UUID (CUDA_VISIBLE_DEVICES)")
        self.cgroup = procs.Cgroup.create(limits)
        self._record_cgroup(self.cgroup, ("pids", "memory", "cpus") if resources else ("pids",))
        argv, env, cwd = self._shell_command()
        self.shell = PersistentShell(
            argv,
            env=env,
            cwd=cwd,
            limit=max_output_bytes,
            preexec=self._preexec,
            find_bash=self._find_bash,
            pass_fds=self._shell_fds(),
        )

    def _shell_command(self) -> tuple[list[str], dict[str, str], str | None]:
        """The shell's argv, environment and host working directory."""
        raise NotImplementedError

    def _shell_fds(self) -> tuple[int, ...]:
        """File descriptors the shell's process inherits."""
        return ()

    _find_bash: Callable[[int], int | None] | None = None

    def _record_cgroup(self, cgroup: procs.Cgroup | None, wanted: Sequence[str]) -> None:
        """Note in :attr:`enforcement` what ``cgroup`` enforces of ``wanted``."""
        for key in wanted:
            if cgroup is None:
                self.enforcement.unenforced[key] = (
                    "no writable cgroup here (the driver is not root, or cgroups are not "
                    "delegated to it)"
                )
            elif key in cgroup.applied:
                self.enforcement.enforced[key] = cgroup.applied[key]
            else:
                self.enforcement.unenforced[key] = cgroup.missing.get(key, "not available")

    def spawn_cgroup(self, max_pids: int) -> tuple[procs.Cgroup | None, Callable[[], None]]:
        """A cgroup for a scored run (:meth:`spawn`) and the ``preexec_fn`` that joins it.

        The run gets the sandbox's memory limit and a CPU set of its ``cpus`` cores (the
        agent's processes are stopped while it runs); its OOM kills are counted by
        :meth:`spawn_oom_kills`.
        """
        limits = procs.CgroupLimits(max_pids)
        if self.resources is not None:
            limits = procs.CgroupLimits(
                max_pids,
                memory_bytes=self.resources.memory_bytes,
                cpuset=score_cpuset(self.resources.cpus),
            )
        cgroup = procs.Cgroup.create(limits)
        if cgroup is not None:
            self._spawned.append(cgroup)

        def preexec() -> None:
            set_parent_death_signal()
            if cgroup is not None:
                with contextlib.suppress(OSError):
                    cgroup.join_current_process()

        return cgroup, preexec

    def _preexec(self) -> None:
        set_parent_death_signal()
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                self.cgroup.join_current_process()

    def start(self) -> None:
        self._give_workspace_to_owner()
        self.shell.start()

    def exec(self, command: str, timeout: float) -> ExecResult:
        if not self.shell.alive():
            self.shell.start()
        before = self.cgroup.oom_kills() if self.cgroup is not None else 0
        result = self.shell.run(command, timeout, self.disk_watchdog())
        if self.cgroup is not None and self.cgroup.oom_kills() > before:
            return replace(result, killed_by=self.oom_message(self.cgroup.memory_limit))
        return result

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        def agent_pids() -> list[int]:
            found = set(procs.pids_with_env_marker(self.marker))
            if self.cgroup is not None:
                found.update(self.cgroup.pids())
            return sorted(found)

        stopped = procs.freeze(agent_pids)
        try:
            yield
        finally:
            procs.thaw(stopped)

    def kill_all(self) -> None:
        self.shell.stop()
        if self.cgroup is not None:
            self.cgroup.kill_all()
        procs.kill_pids(procs.pids_with_env_marker(self.marker))
        self._chown_pending = True

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        if self.cgroup is not None:
            self.cgroup.remove()


class LocalSandbox(HostShellSandbox):
    """Workspace in a host directory, bash run directly on the host."""

    name = "local"
    isolates = False

    def __init__(
        self,
        workspace: Path,
        *,
        max_output_bytes: int = 64_000,
        max_pids: int = 4096,
        resources: Resources | None = None,
    ) -> None:
        super().__init__(
            workspace, max_output_bytes=max_output_bytes, max_pids=max_pids, resources=resources
        )
        if resources is not None:
            self.enforcement.unenforced["tmp"] = "sandbox 'local' shares the host's /tmp"

    def _shell_command(self) -> tuple[list[str], dict[str, str], str | None]:
        env = base_env(str(self.workspace), self.marker, self.gpus)
        return ["bash", "--noprofile", "--norc"], env, str(self.workspace)

    @property
    def workspace_inside(self) -> str:
        return str(self.workspace)

    def spawn(
        self,
        argv: Sequence[str],
        *,
        binds: Sequence[Bind],
        cwd: str,
        env: Mapping[str, str],
        pass_fds: Sequence[int] = (),
        stdout: int | None = None,
        max_pids: int = 256,
    ) -> subprocess.Popen[bytes]:
        # No isolation: "inside" paths are translated back to the host paths behind them.
        def host(text: str) -> str:
            for bind in binds:
                if text == bind.inside or text.startswith(bind.inside.rstrip("/") + "/"):
                    return str(bind.host) + text[len(bind.inside.rstrip("/")) :]
            return text

        full_env = base_env(host(cwd), self.marker, self.gpus)
        full_env.update({k: host(v) for k, v in env.items()})
        cgroup, preexec = self.spawn_cgroup(max_pids)
        proc = subprocess.Popen(
            [host(a) for a in argv],
            cwd=host(cwd),
            env=full_env,
            pass_fds=tuple(pass_fds),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not None else None,
            preexec_fn=preexec,
            start_new_session=True,
        )
        proc.rebench_cgroup = cgroup  # type: ignore[attr-defined]
        return proc
