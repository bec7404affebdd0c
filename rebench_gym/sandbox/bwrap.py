"""The ``bwrap`` sandbox: Linux namespaces through bubblewrap.

Inside, the agent sees a read-only system (``/usr``, ``/etc``), the Python installation that runs
rebench_gym (so torch, numpy and triton work), private size-bounded ``/tmp``, ``/var/tmp`` and
``/dev/shm``, and its workspace at ``/home/agent``, the only writable place that persists. It runs
in its own PID, IPC, UTS and network namespaces (no network, only a loopback device), with
``--die-with-parent`` so nothing outlives the driving process, without capabilities, with
``no_new_privs`` and under a seccomp filter (:mod:`rebench_gym.sandbox.seccomp`) that refuses new
namespaces, mounts, ``ptrace``, keyrings, ``bpf``, ``perf_event_open`` and the like.

Who the agent is on the host:

* driver not root: bubblewrap maps the driver's uid to uid 1000 inside a user namespace in which
  no further user namespace can be made;
* driver root: bubblewrap sets the namespaces up as root, then ``setpriv`` drops to
  :data:`SANDBOX_UID` (``nobody``, 65534, or ``sandbox_options={"uid": N}``) with an empty
  capability bounding set before anything of the agent's runs; the workspace belongs to that
  uid. The agent never holds host root.

Hidden from the agent: the installed ``rebench_gym`` package (every scorer and reference solution)
and the asset cache (not mounted, or masked by an empty tmpfs where they lie under a mounted
directory), and every file under ``/etc`` that is not world-readable (``/etc/shadow``, keys).
``/proc/sys`` is read-only. Where the machine allows cgroups, one bounds the number of
processes, memory (the scratch tmpfs are sized within it) and CPU time; the workspace can be a
filesystem of the task's ``disk_gb`` (:mod:`rebench_gym.sandbox.resources`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path, PurePosixPath

import rebench_gym
from rebench_gym import procs
from rebench_gym.errors import SandboxUnavailableError, UsageError
from rebench_gym.sandbox import seccomp
from rebench_gym.sandbox.base import Bind, lend_binds
from rebench_gym.sandbox.local import HostShellSandbox, base_env
from rebench_gym.sandbox.resources import TMP_SHARE_OF_MEMORY, Resources, nvidia_device_nodes

WORKSPACE_INSIDE = "/home/agent"
#: host uid and gid of the agent's processes when the driver runs as root (``nobody``)
SANDBOX_UID = 65534
#: default sizes of the RAM-backed scratch directories, in GiB
TMP_GB = {"/tmp": 2.0, "/var/tmp": 0.25, "/dev/shm": 1.0}
OPTIONS = ("uid", "tmp_gb", "var_tmp_gb", "shm_gb")
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


@cache
def private_etc_paths() -> tuple[tuple[str, bool], ...]:
    """Files and directories under ``/etc`` that others may not read, as ``(path, is_dir)``.

    They are masked inside the sandbox (an empty file or directory), so a root driver's secrets
    (``/etc/shadow``, ``/etc/gshadow``, ``/etc/docker/key.json``, ``/etc/ssl/private``) stay
    invisible whatever uid the agent has.
    """
    found: list[tuple[str, bool]] = []
    for parent, dirs, files in os.walk("/etc"):
        keep = []
        for name in dirs:
            path = os.path.join(parent, name)
            with contextlib.suppress(OSError):
                mode = os.lstat(path).st_mode
                if stat.S_ISDIR(mode) and mode & 0o005 != 0o005:
                    found.append((path, True))
                    continue
            keep.append(name)
        dirs[:] = keep
        for name in files:
            path = os.path.join(parent, name)
            with contextlib.suppress(OSError):
                mode = os.lstat(path).st_mode
                if stat.S_ISREG(mode) and not mode & 0o004:
                    found.append((path, False))
    return tuple(found)


class _Dirs:
    """Creates the missing parents of mount points world-searchable (bwrap's are private)."""

    def __init__(self, mounted: Iterable[str]) -> None:
        self.mounted = set(mounted)  # what lies below these exists already
        self.made: set[str] = set()

    def parents(self, inside: str) -> list[str]:
        """``--dir`` arguments for the parents of ``inside`` not yet made or mounted."""
        args: list[str] = []
        for parent in reversed(PurePosixPath(inside).parents[:-1]):  # all but "/"
            p = str(parent)
            if p in self.made or any(p == m or p.startswith(m + "/") for m in self.mounted):
                continue
            self.made.add(p)
            args += ["--perms", "0755", "--dir", p]
        return args


def system_args(hidden: Sequence[Path], tmp_bytes: Mapping[str, int]) -> tuple[list[str], _Dirs]:
    """bwrap arguments for the read-only system, Python, /proc, /dev and the scratch tmpfs."""
    args = ["--ro-bind", "/usr", "/usr"]
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    mounted = [Path("/usr")]
    if os.path.isdir("/etc"):
        args += ["--ro-bind", "/etc", "/etc"]
        mounted.append(Path("/etc"))
        for path, is_dir in private_etc_paths():
            args += ["--tmpfs", path] if is_dir else ["--ro-bind", "/dev/null", path]
    dirs = _Dirs(["/usr", "/etc", *_SYSTEM_DIRS])
    for root in _python_roots():
        args += [*dirs.parents(str(root)), "--ro-bind", str(root), str(root)]
        mounted.append(root)
        dirs.mounted.add(str(root))
    for h in hidden:
        if any(m == h or m in h.parents for m in mounted) and h.exists():
            args += ["--tmpfs", str(h)] if h.is_dir() else ["--ro-bind", "/dev/null", str(h)]
    args += ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--dev", "/dev"]
    for path, size in tmp_bytes.items():
        args += ["--perms", "1777", "--size", str(size), "--tmpfs", path]
    dirs.mounted.update(["/proc", "/dev", *tmp_bytes])
    return args, dirs


def namespace_args(privileged: bool) -> list[str]:
    """Isolation flags: every namespace, die with the parent.

    ``privileged`` (the driver is root): no user namespace (the uid is dropped by ``setpriv``);
    else a user namespace mapping the driver to uid 1000, closed to further user namespaces.
    """
    if privileged:
        ns = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
        ns += ["--unshare-cgroup-try"]
    else:
        ns = ["--unshare-all", "--unshare-user", "--disable-userns"]
        ns += ["--uid", "1000", "--gid", "1000"]
    return [*ns, "--hostname", "rebench", "--die-with-parent", "--new-session"]


def drop_to(uid: int, gid: int) -> list[str]:
    """The command prefix that leaves root for ``uid:gid`` with no way back (util-linux setpriv)."""
    path = shutil.which("setpriv", path="/usr/bin:/bin")
    if path is None:
        raise SandboxUnavailableError(
            "sandbox='bwrap' run as root needs setpriv (Debian package util-linux) to drop root"
        )
    return [
        path,
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


def _find_bash(outer_pid: int) -> int | None:
    for pid in procs.descendants(outer_pid):
        if procs.comm(pid) == "bash":
            return pid
    return None


class BwrapSandbox(HostShellSandbox):
    """Workspace bind-mounted at ``/home/agent`` inside bubblewrap namespaces.

    Args:
        workspace: the host directory of the workspace.
        max_output_bytes: output kept per command.
        max_pids: process limit (pids cgroup).
        hidden: host paths the agent must not see.
        options: ``uid`` (host uid and gid of the agent when the driver is root; default
            :data:`SANDBOX_UID`), ``tmp_gb``, ``var_tmp_gb``, ``shm_gb`` (sizes of ``/tmp``,
            ``/var/tmp`` and ``/dev/shm``; defaults in :data:`TMP_GB`).
    """

    name = "bwrap"
    isolates = True

    def __init__(
        self,
        workspace: Path,
        *,
        max_output_bytes: int = 64_000,
        max_pids: int = 4096,
        hidden: Sequence[Path] = (),
        options: Mapping[str, object] | None = None,
        resources: Resources | None = None,
    ) -> None:
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(OPTIONS))
        if unknown:
            raise UsageError(
                f"sandbox 'bwrap' has no option {', '.join(unknown)}; it takes {', '.join(OPTIONS)}"
            )
        self._bwrap = bwrap_path()
        self.hidden = hidden_paths(hidden)
        self.privileged = os.geteuid() == 0
        uid = _int_option(opts, "uid", SANDBOX_UID)
        if self.privileged and uid == 0:
            raise UsageError("sandbox option uid=0 would give the agent host root")
        self.tmp_bytes = {
            path: int(_float_option(opts, key, TMP_GB[path]) * 2**30)
            for path, key in (
                ("/tmp", "tmp_gb"),
                ("/var/tmp", "var_tmp_gb"),
                ("/dev/shm", "shm_gb"),
            )
        }
        if resources is not None:
            # RAM-backed: their pages count against the memory limit, so they get a share of it
            # and a full /tmp is "No space left on device", not an out-of-memory kill
            for path, share in TMP_SHARE_OF_MEMORY.items():
                self.tmp_bytes[path] = min(
                    self.tmp_bytes[path], int(resources.memory_bytes * share)
                )
        self._seccomp_fd = seccomp.filter_fd()
        super().__init__(
            workspace,
            max_output_bytes=max_output_bytes,
            max_pids=max_pids,
            owner=(uid, uid) if self.privileged else None,
            resources=resources,
        )
        self.enforcement.enforced["tmp"] = "private tmpfs: " + ", ".join(
            f"{path} {size / 2**30:.3g} GiB" for path, size in self.tmp_bytes.items()
        )

    @property
    def agent_uid(self) -> int:
        """The agent's uid as its own processes see it."""
        return self.owner[0] if self.owner is not None else 1000

    def _command(
        self,
        argv: Sequence[str],
        binds: Sequence[Bind],
        cwd: str,
        env: Mapping[str, str],
        seccomp_fd: int,
    ) -> list[str]:
        """The bwrap command line that runs ``argv`` isolated, with ``binds`` and ``env``."""
        cmd = [self._bwrap, *namespace_args(self.privileged)]
        system, dirs = system_args(self.hidden, self.tmp_bytes)
        cmd += system
        for node in nvidia_device_nodes(self.gpus or []):
            cmd += ["--dev-bind", node, node]
        for b in binds:
            cmd += dirs.parents(b.inside)
            cmd += ["--bind" if b.writable else "--ro-bind", str(b.host), b.inside]
            dirs.mounted.add(b.inside)
        cmd += ["--chdir", cwd, "--clearenv"]
        for k, v in env.items():
            cmd += ["--setenv", k, v]
        cmd += ["--seccomp", str(seccomp_fd)]
        if self.owner is not None:
            cmd += drop_to(*self.owner)
        return cmd + list(argv)

    def _shell_command(self) -> tuple[list[str], dict[str, str], str | None]:
        argv = self._command(
            ["bash", "--noprofile", "--norc"],
            [Bind(self.workspace, WORKSPACE_INSIDE, writable=True)],
            WORKSPACE_INSIDE,
            base_env(WORKSPACE_INSIDE, self.marker, self.gpus),
            self._seccomp_fd,
        )
        return argv, _outer_env(), None

    def _shell_fds(self) -> tuple[int, ...]:
        return (self._seccomp_fd,)

    _find_bash = staticmethod(_find_bash)

    @property
    def workspace_inside(self) -> str:
        return WORKSPACE_INSIDE

    def _preexec(self) -> None:
        super()._preexec()
        os.lseek(self._seccomp_fd, 0, os.SEEK_SET)  # each (re)start reads the whole filter

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        with contextlib.suppress(OSError):
            os.close(self._seccomp_fd)

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
        full_env = base_env(cwd, self.marker, self.gpus)
        full_env.update(env)
        lend_binds(binds, self.owner)
        filter_fd = seccomp.filter_fd()
        cmd = self._command(argv, binds, cwd, full_env, filter_fd)
        cgroup, preexec = self.spawn_cgroup(max_pids)
        try:
            proc = subprocess.Popen(
                cmd,
                pass_fds=(*pass_fds, filter_fd),
                env=_outer_env(),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT if stdout is not None else None,
                preexec_fn=preexec,
                start_new_session=True,
            )
        finally:
            os.close(filter_fd)
        proc.rebench_cgroup = cgroup  # type: ignore[attr-defined]
        return proc


def _outer_env() -> dict[str, str]:
    """bwrap's own environment: nothing of the driver's (API keys) reaches the sandbox's pid 1."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _int_option(opts: Mapping[str, object], key: str, default: int) -> int:
    value = opts.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UsageError(f"sandbox option {key} must be a non-negative integer, not {value!r}")
    return value


def _float_option(opts: Mapping[str, object], key: str, default: float) -> float:
    value = opts.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < 1e4:
        raise UsageError(f"sandbox option {key} must be a positive number of GiB, not {value!r}")
    return float(value)
