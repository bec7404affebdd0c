"""The ``bwrap`` sandbox: Linux namespaces through bubblewrap.

Inside, the agent sees a read-only system (``/usr``, ``/etc``), the Python installation that runs
rebench_gym (so torch, numpy and triton work), a private ``/tmp``, and its workspace at
``/home/agent``, the only writable place that persists. It runs as uid 1000, in its own PID, IPC,
UTS and network namespaces (no network, only a loopback device), with ``--die-with-parent`` so
nothing outlives the driving process. The installed ``rebench_gym`` package (every scorer and
reference solution) and the asset cache are not mounted, or are masked by an empty tmpfs where
they lie under a mounted directory. A pids cgroup bounds the number of processes where the
machine allows one to be created.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import rebench_gym
from rebench_gym.errors import SandboxUnavailableError
from rebench_gym.sandbox import procs
from rebench_gym.sandbox.base import Bind
from rebench_gym.sandbox.local import HostShellSandbox, base_env, set_parent_death_signal

WORKSPACE_INSIDE = "/home/agent"
_SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


def bwrap_path() -> str:
    """The bubblewrap executable, or raise with an install hint."""
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailableError(
            "sandbox='bwrap' needs bubblewrap: install it with `apt-get install bubblewrap` "
            "(or choose sandbox='local' for development)"
        )
    return path


def _python_roots() -> list[Path]:
    roots: list[Path] = []
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        rp = Path(p).resolve()
        if rp not in roots and not any(r in rp.parents for r in roots):
            roots = [r for r in roots if rp not in r.parents] + [rp]
    exe = Path(sys.executable).resolve()
    if not any(r == exe.parent or r in exe.parents for r in roots):
        roots.append(exe.parent)
    return [r for r in roots if not str(r).startswith("/usr/")]


def hidden_paths(extra: Sequence[Path] = ()) -> list[Path]:
    """Paths that must never be visible inside: the package itself and the given extras."""
    return [Path(rebench_gym.__file__).resolve().parent, *[Path(p).resolve() for p in extra]]


def system_args(hidden: Sequence[Path]) -> list[str]:
    """bwrap arguments for the read-only system, Python, /proc, /dev and /tmp."""
    args = ["--ro-bind", "/usr", "/usr"]
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    if os.path.isdir("/etc"):
        args += ["--ro-bind", "/etc", "/etc"]
    mounted = [Path("/usr"), Path("/etc")]
    for root in _python_roots():
        args += ["--ro-bind", str(root), str(root)]
        mounted.append(root)
    for h in hidden:
        if any(m == h or m in h.parents for m in mounted) and h.exists():
            args += ["--tmpfs", str(h)] if h.is_dir() else ["--ro-bind", "/dev/null", str(h)]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/var/tmp"]
    return args


def namespace_args() -> list[str]:
    """Isolation flags: every namespace, uid 1000, die with the parent."""
    return [
        "--unshare-all",
        "--unshare-user",
        "--uid",
        "1000",
        "--gid",
        "1000",
        "--hostname",
        "rebench",
        "--die-with-parent",
        "--new-session",
    ]


def _find_bash(outer_pid: int) -> int | None:
    for pid in procs.descendants(outer_pid):
        if procs.comm(pid) == "bash":
            return pid
    return None


class BwrapSandbox(HostShellSandbox):
    """Workspace bind-mounted at ``/home/agent`` inside bubblewrap namespaces."""

    name = "bwrap"
    isolates = True

    def __init__(
        self,
        workspace: Path,
        *,
        max_output_bytes: int = 64_000,
        max_pids: int = 4096,
        hidden: Sequence[Path] = (),
    ) -> None:
        self._bwrap = bwrap_path()
        self.hidden = hidden_paths(hidden)
        super().__init__(workspace, max_output_bytes=max_output_bytes, max_pids=max_pids)

    def _shell_command(self) -> tuple[list[str], dict[str, str], str | None]:
        argv = [self._bwrap, *namespace_args(), *system_args(self.hidden)]
        argv += ["--bind", str(self.workspace), WORKSPACE_INSIDE, "--chdir", WORKSPACE_INSIDE]
        argv += ["--clearenv"]
        for k, v in base_env(WORKSPACE_INSIDE, self.marker).items():
            argv += ["--setenv", k, v]
        argv += ["bash", "--noprofile", "--norc"]
        return argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, None

    _find_bash = staticmethod(_find_bash)

    @property
    def workspace_inside(self) -> str:
        return WORKSPACE_INSIDE

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
        cgroup = procs.PidsCgroup.create(max_pids)
        full_env = base_env(cwd, self.marker)
        full_env.update(env)
        cmd = [self._bwrap, *namespace_args(), *system_args(self.hidden)]
        for b in binds:
            cmd += ["--bind" if b.writable else "--ro-bind", str(b.host), b.inside]
        cmd += ["--chdir", cwd, "--clearenv"]
        for k, v in full_env.items():
            cmd += ["--setenv", k, v]
        cmd += list(argv)

        def preexec() -> None:
            set_parent_death_signal()
            if cgroup is not None:
                with contextlib.suppress(OSError):
                    cgroup.join_current_process()

        proc = subprocess.Popen(
            cmd,
            pass_fds=tuple(pass_fds),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not None else None,
            preexec_fn=preexec,
            start_new_session=True,
        )
        proc.rebench_cgroup = cgroup  # type: ignore[attr-defined]
        return proc
