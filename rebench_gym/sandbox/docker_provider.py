"""The ``docker`` sandbox: one container per episode from the task's image, driven by docker-py.

* The episode's container runs ``sleep infinity`` under Docker's init (both root, with every
  capability dropped, so the agent cannot kill them); everything of the agent's runs as the
  non-root uid 1000. No network (``network_mode="none"`` unless ``network=True``), the task's
  CPU, memory (swap included) and pids limits, a read-only root filesystem with tmpfs scratch
  directories sized within the memory limit, and the task's GPUs by UUID through device
  requests. Only the workspace is bind-mounted (at ``/home/agent``; a filesystem of the task's
  ``disk_gb`` where the driver can make one); the rebench_gym package, scorers, reference
  solutions and the asset cache are never copied or mounted into it.
* The agent's shell is the same :class:`~rebench_gym.sandbox.shell.PersistentShell` as for the
  other providers, started as one long-lived ``docker exec -i CONTAINER bash``. Each command runs
  with ``REBENCH_CMD=<nonce>`` in its environment, so a timeout kills exactly the processes it
  started (and their descendants) with a small helper run by a second ``docker exec``; the shell
  keeps its cwd and variables.
* ``reset`` reuses the container: every process of the agent's uid is killed from the host
  through the container's cgroup (SIGSTOP/SIGKILL; the freezer if a fork loop keeps up; a
  ``docker exec`` of ``kill -9 -1`` when the engine runs elsewhere), the env restores the
  workspace, and a new shell starts. A new container is made only when the old one is gone.
* ``spawn`` (scorers) runs a fresh scoring container from the same image (network none, no
  capabilities, only the given binds, read-only unless writable). Pipes cannot cross into a
  container, so it accepts no ``pass_fds`` (:attr:`passes_fds` is False): scorers use named
  FIFOs in a bind-mounted directory instead. The agent's container never sees the scoring
  container, its binds or its FIFOs.
* Every container carries the labels ``rebench_gym=1``, ``rebench_gym.session`` (the driving
  process) and ``rebench_gym.episode``. They are removed on :meth:`close`, on garbage
  collection, at interpreter exit and after Ctrl-C (atexit); if the driving process is killed
  outright (SIGKILL), a small reaper process started with the first container notices that its
  parent is gone and removes the session's containers. ``rebench sandbox cleanup`` removes any
  leftover.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rebench_gym import procs
from rebench_gym.errors import SandboxError, SandboxUnavailableError, UsageError
from rebench_gym.sandbox.base import Bind, ExecResult, Sandbox, lend_binds
from rebench_gym.sandbox.docker_images import LABEL, docker_client
from rebench_gym.sandbox.local import set_parent_death_signal
from rebench_gym.sandbox.resources import (
    GIB,
    RESOURCE_OPTIONS,
    TMP_SHARE_OF_MEMORY,
    Resources,
    capped_cpus,
    score_cpuset,
)
from rebench_gym.sandbox.shell import PersistentShell

WORKSPACE_INSIDE = "/home/agent"
AGENT_UID = 1000
CMD_TAG = "REBENCH_CMD"
#: one id per driving process; its reaper removes the containers labelled with it
SESSION_ID = uuid.uuid4().hex[:16]
#: the images' Python (Dockerfile.<scale>-base)
_VENV_BIN = "/opt/venv/bin"
_PATH = f"{_VENV_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Runs inside the container as the agent's uid: kill the processes of one command (those with
# REBENCH_CMD=NONCE in their environment) and their descendants, each frozen (SIGSTOP) first so
# nothing can fork away. argv: "tag" NONCE.
_KILL_HELPER = r"""
import os, signal, sys, time
mode, arg = sys.argv[1], sys.argv[2]
keep = {1, os.getpid()}
def table():
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    stat = fh.read()
                out[int(name)] = int(stat[stat.rfind(b")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    return out
def tagged(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return (b"REBENCH_CMD=" + arg.encode()) in fh.read().split(b"\0")
    except OSError:
        return False
def targets():
    procs = table()
    found = {p for p in procs if p not in keep and tagged(p)}
    while True:
        more = {p for p, pp in procs.items() if pp in found and p not in found and p not in keep}
        if not more:
            return found
        found |= more
killed = set()
for _ in range(20):
    pids = targets() - killed
    if not pids:
        break
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for p in sorted(pids):
            try:
                os.kill(p, sig)
            except OSError:
                pass
    killed |= pids
    time.sleep(0.01)
"""

# Started once per driving process: waits for EOF on stdin (the driver died or exited), then
# removes the containers of the session.
_REAPER = r"""
import os, signal, sys
for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
    signal.signal(s, signal.SIG_IGN)
while sys.stdin.buffer.read(1 << 16):
    pass
import docker
client = docker.from_env()
for c in client.containers.list(all=True, filters={"label": f"rebench_gym.session={sys.argv[1]}"}):
    try:
        c.remove(force=True)
    except Exception:
        pass
"""
_reaper_lock = threading.Lock()
_reaper: subprocess.Popen[bytes] | None = None


def _ensure_reaper() -> None:
    """Start this process's reaper (once) so a SIGKILLed driver leaves no container behind."""
    global _reaper
    with _reaper_lock:
        if _reaper is not None and _reaper.poll() is None:
            return
        _reaper = subprocess.Popen(
            [sys.executable, "-c", _REAPER, SESSION_ID],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )


def cleanup_containers(*, session: str | None = None, all_sessions: bool = False) -> list[str]:
    """Remove leftover rebench_gym containers; returns their names.

    By default a container is a leftover when the process that made it (label
    ``rebench_gym.pid``, on this machine) is gone; ``all_sessions`` removes every container
    labelled ``rebench_gym=1``, also those of running rollouts; ``session`` only one session's.

    Raises:
        SandboxUnavailableError: no Docker engine.
    """
    client = docker_client()
    label = f"{LABEL}.session={session}" if session else f"{LABEL}=1"
    removed: list[str] = []
    for c in client.containers.list(all=True, filters={"label": label}):
        owner = str(c.labels.get(f"{LABEL}.pid", ""))
        if not (all_sessions or session) and owner.isdigit() and procs.pid_alive(int(owner)):
            continue
        with contextlib.suppress(Exception):
            c.remove(force=True)
            removed.append(str(c.name))
    return removed


def _docker_cli() -> str:
    path = shutil.which("docker")
    if path is None:
        raise SandboxUnavailableError(
            "sandbox='docker' needs the docker command-line client on PATH (apt-get install "
            "docker.io) for its persistent shell"
        )
    return path


def device_requests(uuids: Sequence[str]) -> list[Any]:
    """docker-py device requests pinning exactly the GPUs ``uuids`` (none for an empty list)."""
    from docker.types import DeviceRequest

    if not uuids:
        return []
    return [DeviceRequest(driver="nvidia", device_ids=list(uuids), capabilities=[["gpu"]])]


def _gpus_cli(uuids: Sequence[str]) -> list[str]:
    return ["--gpus", f'"device={",".join(uuids)}"'] if uuids else []


class _DockerShell(PersistentShell):
    """PersistentShell over ``docker exec -i``; timeouts kill through a second exec."""

    def __init__(self, sandbox: DockerSandbox, argv: list[str], limit: int) -> None:
        super().__init__(
            argv,
            env=dict(os.environ),
            cwd=None,
            limit=limit,
            preexec=set_parent_death_signal,
        )
        self.sandbox = sandbox

    def _script(self, command: str, nonce: str) -> str:
        script = super()._script(command, nonce)
        return f"{CMD_TAG}={nonce} {script}"

    def _snapshot(self) -> set[int]:
        return set()

    def _kill_command(self, before: set[int], nonce: str) -> None:
        self.sandbox._kill("tag", nonce)

    def stop(self) -> None:
        """Kill every process of the agent's uid in the container, then the exec client."""
        if self.proc is not None:
            self.sandbox._kill("all", "-")
        super().stop()


class DockerSandbox(Sandbox):
    """One container per episode; see the module docstring.

    Args:
        workspace: host directory bind-mounted at ``/home/agent``.
        image: the task image (see :func:`~rebench_gym.sandbox.docker_images.build_image`).
        max_output_bytes: output kept per command.
        max_pids: pids limit of the container.
        resources: CPU, memory (swap and the tmpfs scratch directories included), disk (the
            workspace's filesystem) and GPU limits (pinned by UUID); None: none.
        network: give the container a network (default: none at all).
    """

    name = "docker"
    isolates = True
    passes_fds = False
    own_system = True

    def __init__(
        self,
        workspace: Path,
        *,
        image: str,
        max_output_bytes: int = 64_000,
        max_pids: int = 4096,
        resources: Resources | None = None,
        network: bool = False,
    ) -> None:
        self._cli = _docker_cli()
        self.client = docker_client()
        import docker.errors

        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            raise SandboxUnavailableError(
                f"Docker image {image!r} is not built; build it with `rebench image build ID "
                "--scale SCALE`"
            ) from None
        super().__init__(workspace, max_output_bytes=max_output_bytes, resources=resources)
        self.image = image
        self.max_pids = max_pids
        self.cpus: float | None = None
        self.memory: int | None = None
        self.gpu_uuids: list[str] = []
        # RAM-backed scratch directories (inside the memory limit); the root filesystem is
        # read-only, so nothing outside the workspace can fill the host's disk
        self.tmpfs = {"/tmp": 2 * GIB, "/var/tmp": GIB // 4, "/dev/shm": GIB}
        enf = self.enforcement
        enf.enforced["pids"] = f"Docker --pids-limit {max_pids}"
        if resources is not None:
            self.cpus = capped_cpus(resources.cpus, enf)
            self.memory = resources.memory_bytes
            host = _host_memory()
            if host is not None and self.memory > host:
                enf.unenforced["memory_available"] = (
                    f"{resources.memory_gb:g} GiB declared, the machine has {host / GIB:.1f} GiB"
                )
                self.memory = host
            for path, share in TMP_SHARE_OF_MEMORY.items():
                self.tmpfs[path] = min(self.tmpfs[path], int(self.memory * share))
            enf.enforced["memory"] = "Docker --memory, swap included (--memory-swap)"
            enf.enforced["cpus"] = f"Docker --cpus {self.cpus:g}"
            gpus = enf.pin_gpus("Docker device request by UUID")
            self.gpu_uuids = [g.uuid for g in gpus]
        enf.enforced["tmp"] = "read-only root filesystem; tmpfs " + ", ".join(
            f"{path} {size / GIB:.3g} GiB" for path, size in self.tmpfs.items()
        )
        self.network = network
        self.episode_id = uuid.uuid4().hex[:12]
        self.uid = AGENT_UID if os.geteuid() == 0 else os.getuid()
        self.gid = AGENT_UID if os.geteuid() == 0 else os.getgid()
        self.owner = (self.uid, self.gid) if os.geteuid() == 0 else None
        self.container: Any = None
        self._workspace_ino: int | None = None
        self._procs_file: Path | None = None
        self._memory_dir: Path | None = None
        self.shell: _DockerShell | None = None

    def _tmpfs_options(self) -> dict[str, str]:
        """``/tmp`` and ``/var/tmp`` as Docker tmpfs mounts (``/dev/shm`` is ``shm_size``);
        ``exec`` as on the other providers (Docker's default is ``noexec``: compilers and test
        binaries run from ``/tmp``)."""
        return {
            path: f"rw,exec,nosuid,nodev,size={size},mode=1777"
            for path, size in self.tmpfs.items()
            if path != "/dev/shm"
        }

    # ----- container -----------------------------------------------------------------------
    @property
    def python_bin(self) -> str:
        return _VENV_BIN

    @property
    def workspace_inside(self) -> str:
        return WORKSPACE_INSIDE

    def labels(self) -> dict[str, str]:
        """The labels of this sandbox's containers."""
        return {
            LABEL: "1",
            f"{LABEL}.session": SESSION_ID,
            f"{LABEL}.episode": self.episode_id,
            f"{LABEL}.pid": str(os.getpid()),
        }

    def _container_running(self) -> bool:
        if self.container is None:
            return False
        try:
            self.container.reload()
        except Exception:
            return False
        return bool(self.container.status == "running")

    def _create_container(self) -> None:
        self._remove_container()
        _ensure_reaper()
        kwargs: dict[str, Any] = {}
        if self.cpus:
            kwargs["nano_cpus"] = int(self.cpus * 1e9)
        if self.memory:
            kwargs["mem_limit"] = int(self.memory)
            kwargs["memswap_limit"] = int(self.memory)
        requests = device_requests(self.gpu_uuids)
        if requests:
            kwargs["device_requests"] = requests

        try:
            self.container = self.client.containers.run(
                self.image,
                ["sleep", "infinity"],
                name=f"rebench-{self.episode_id}",
                detach=True,
                init=True,
                user="0:0",  # init and the keeper only, with no capabilities: unkillable by
                # the agent's uid, spared by its `kill -9 -1`
                labels=self.labels(),
                network_mode="bridge" if self.network else "none",
                hostname="rebench",
                pids_limit=self.max_pids,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                volumes={str(self.workspace): {"bind": WORKSPACE_INSIDE, "mode": "rw"}},
                read_only=True,
                tmpfs=self._tmpfs_options(),
                shm_size=self.tmpfs["/dev/shm"],
                working_dir=WORKSPACE_INSIDE,
                environment={"HOME": WORKSPACE_INSIDE},
                **kwargs,
            )
        except Exception as e:
            self._remove_container()
            raise SandboxError(f"could not start a container from {self.image}: {e}") from None
        self._workspace_ino = self.workspace.stat().st_ino

    def _remove_container(self) -> None:
        container, self.container = self.container, None
        self._procs_file = None
        self._memory_dir = None
        if container is not None:
            with contextlib.suppress(Exception):
                container.remove(force=True)

    def _kill(self, mode: str, arg: str) -> None:
        """Kill in the container as the agent's uid: ``tag NONCE`` (one command) or ``all``.

        ``all`` is ``kill -9 -1``: every process of the agent's uid in the container's pid
        namespace, atomically (no fork can slip through), sparing the root-owned init.
        """
        if self.container is None:
            return
        if mode == "all" and self._kill_all_from_host():
            return
        argv = ["bash", "-c", "kill -9 -1"] if mode == "all" else ["python3", "-c", _KILL_HELPER]
        with contextlib.suppress(Exception):
            self.container.exec_run([*argv, mode, arg], user=f"{self.uid}:{self.gid}")

    def _kill_all_from_host(self) -> bool:
        """Kill the agent's processes by host pid, from the container's cgroup (no exec).

        Works when the engine runs on this machine and this process may signal them (root, or
        the same uid); returns False otherwise. Root-owned init and keeper are spared. Nothing
        inside the container can interfere (unlike a kill sent through the agent's own shell).
        """
        if self._procs_file is None:
            self._procs_file = cgroup_procs_file(self.client, self.container.id)
            if self._procs_file is None:
                return False
        if os.geteuid() != 0 and os.getuid() != self.uid:
            return False

        def agent_pids() -> list[int]:
            out = []
            for pid in _read_pids(self._procs_file) if self._procs_file else []:
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{pid}").st_uid == self.uid:
                        out.append(pid)
            return out

        # SIGSTOP then SIGKILL until none is left; if a fork loop keeps winning, freeze the
        # container (cgroup freezer, `docker pause`) so nothing can fork while pids are listed.
        for attempt in range(25):
            pids = agent_pids()
            if not pids:
                return True
            freeze = attempt >= 20
            if freeze:
                with contextlib.suppress(Exception):
                    self.container.pause()
            try:
                procs.kill_pids(pids, signal.SIGSTOP)
                procs.kill_pids(agent_pids(), signal.SIGKILL)
            finally:
                if freeze:
                    with contextlib.suppress(Exception):
                        self.container.unpause()
            time.sleep(0.002)
        return not agent_pids()

    # ----- Sandbox protocol ----------------------------------------------------------------
    def start(self) -> None:
        if self.closed:
            raise SandboxError("the sandbox is closed")
        same_dir = self._workspace_ino == self.workspace.stat().st_ino
        if not (same_dir and self._container_running()):
            if self.shell is not None:
                self.shell.stop()
            self._create_container()  # nothing of the agent's runs before the shell starts
            self._chown_pending = True
            self.shell = None
        self._give_workspace_to_owner()
        if self.shell is None:
            env = {
                "HOME": WORKSPACE_INSIDE,
                "PATH": _PATH,
                "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8",
                "TERM": "dumb",
                "PAGER": "cat",
                "GIT_PAGER": "cat",
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
                "OMP_NUM_THREADS": str(max(1, int(self.cpus or os.cpu_count() or 1))),
            }
            argv = [self._cli, "exec", "-i", "-u", f"{self.uid}:{self.gid}"]
            argv += ["-w", WORKSPACE_INSIDE]
            for k, v in env.items():
                argv += ["-e", f"{k}={v}"]
            argv += [self.container.id, "bash", "--noprofile", "--norc"]
            self.shell = _DockerShell(self, argv, self.max_output_bytes)
        try:
            self.shell.start()
        except RuntimeError as e:
            raise SandboxError(f"the shell in container {self.container.name} failed: {e}") from e

    def _oom_kills(self) -> int | None:
        """OOM kills in the agent's container so far, from its memory cgroup (None: unknown)."""
        if self.container is None or not self.memory:
            return None
        if self._memory_dir is None:
            self._memory_dir = container_cgroup_dir(self.client, self.container.id, "memory")
        return procs.read_oom_kills(self._memory_dir) if self._memory_dir else None

    def exec(self, command: str, timeout: float) -> ExecResult:
        # No engine round trip here: if the container dies, the exec'd shell ends with it.
        if self.shell is None or not self.shell.alive():
            self.start()
        assert self.shell is not None
        before = self._oom_kills()
        result = self.shell.run(command, timeout, self.disk_watchdog())
        after = self._oom_kills()
        if before is not None and after is not None and after > before:
            return replace(result, killed_by=self.oom_message(self.memory))
        return result

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Freeze the agent's container (cgroup freezer) while the block runs."""
        frozen = False
        if self._container_running():
            with contextlib.suppress(Exception):
                self.container.pause()
                frozen = True
        try:
            yield
        finally:
            if frozen:
                with contextlib.suppress(Exception):
                    self.container.unpause()

    def kill_all(self) -> None:
        if self.shell is not None and self.shell.proc is not None:
            self.shell.stop()  # kills every process in the container, then the exec client
        else:
            self._kill("all", "-")
        self._chown_pending = True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self.shell is not None:
                # The container goes away with everything in it: no need to kill inside first.
                PersistentShell.stop(self.shell)
        finally:
            self._remove_container()
            self._release()

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
        """Run ``argv`` in a fresh scoring container (see the module docstring).

        Raises:
            SandboxError: ``pass_fds`` was given (use FIFOs in a bind-mounted directory).
        """
        if pass_fds:
            raise SandboxError(
                "the docker sandbox cannot pass file descriptors into a container; "
                "use named FIFOs in a bind-mounted directory (see Sandbox.passes_fds)"
            )
        _ensure_reaper()
        name = f"rebench-score-{uuid.uuid4().hex[:12]}"
        labels = {**self.labels(), f"{LABEL}.role": "score"}
        # not --rm: the container is inspected (was anything killed for memory?) then removed
        cmd = [self._cli, "run", "--name", name, "--init", "--network", "none", "--read-only"]
        for path, spec in self._tmpfs_options().items():
            cmd += ["--tmpfs", f"{path}:{spec}"]
        cmd += ["--shm-size", str(self.tmpfs["/dev/shm"])]
        for k, v in labels.items():
            cmd += ["--label", f"{k}={v}"]
        # the solution runs as the agent's uid, never as root (its copies are lent to it)
        lend_binds(binds, self.owner)
        cmd += ["--user", f"{self.uid}:{self.gid}", "--cap-drop", "ALL"]
        cmd += ["--security-opt", "no-new-privileges", "--pids-limit", str(max_pids)]
        cmd += ["--hostname", "rebench-score", "-w", cwd]
        if self.resources is not None:  # a CPU set of its own (the agent is frozen meanwhile)
            cpuset = score_cpuset(self.resources.cpus)
            cmd += ["--cpuset-cpus", ",".join(map(str, cpuset))]
        if self.memory:
            cmd += ["--memory", str(int(self.memory)), "--memory-swap", str(int(self.memory))]
        cmd += _gpus_cli(self.gpu_uuids)
        full_env = {"HOME": "/tmp", "PATH": _PATH, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
        full_env.update(env)
        for k, v in full_env.items():
            cmd += ["-e", f"{k}={v}"]
        for b in binds:
            mode = "rw" if b.writable else "ro"
            cmd += [
                "--mount",
                f"type=bind,source={b.host},target={b.inside},readonly={mode == 'ro'}",
            ]
        cmd += [self.image, *argv]
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not None else None,
            preexec_fn=set_parent_death_signal,
            start_new_session=True,
        )
        container = ScoringContainer(self.client, name)
        self._spawned.append(container)
        proc.rebench_cgroup = container  # type: ignore[attr-defined]
        return proc


def container_cgroup_dir(client: Any, container: str, controller: str) -> Path | None:
    """The host's cgroup directory of ``container`` for ``controller`` (v1), or its single v2
    directory; None when the engine runs elsewhere."""
    try:
        pid = int(client.containers.get(container).attrs["State"]["Pid"])
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except Exception:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            candidate = Path("/sys/fs/cgroup") / controller / path.lstrip("/")
        elif controllers == "":
            candidate = Path("/sys/fs/cgroup") / path.lstrip("/")
        else:
            continue
        if (candidate / "cgroup.procs").exists():
            return candidate
    return None


def cgroup_procs_file(client: Any, container: str) -> Path | None:
    """The host's ``cgroup.procs`` file of ``container`` (None if the engine is elsewhere)."""
    found = container_cgroup_dir(client, container, "pids")
    return found / "cgroup.procs" if found is not None else None


def _read_pids(procs_file: Path) -> list[int]:
    try:
        return [int(p) for p in procs_file.read_text().split()]
    except OSError:
        return []


class ScoringContainer:
    """The processes of a scoring container, seen from the host (what scorers freeze and stop).

    Quacks like :class:`~rebench_gym.procs.PidsCgroup` where the scorers use it:
    :meth:`pids` lists the container's processes by host pid (from its cgroup, when the engine
    runs on this machine) and :meth:`remove` removes the container.
    """

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name
        self._procs_file: Path | None = None
        self._oom_killed = False

    def pids(self) -> list[int]:
        """Host pids of every process in the container (empty if it cannot be seen)."""
        if self._procs_file is None:
            self._procs_file = cgroup_procs_file(self.client, self.name)
        return _read_pids(self._procs_file) if self._procs_file is not None else []

    def oom_kills(self) -> int:
        """1 when the engine reported a process of the container killed for memory, else 0."""
        return int(self._oom_killed)

    def remove(self) -> None:
        """Note whether anything in it was killed for memory, then remove the container
        (killing what runs in it); idempotent."""
        with contextlib.suppress(Exception):
            container = self.client.containers.get(self.name)
            self._oom_killed = self._oom_killed or bool(container.attrs["State"]["OOMKilled"])
            container.remove(force=True)


_OPTIONS = frozenset({"image", "network", "base_image"})


def make_docker_sandbox(
    workspace: Path,
    *,
    image: str | None,
    image_variant: str,
    resources: Resources | None,
    options: dict[str, Any],
    max_output_bytes: int = 64_000,
    max_pids: int = 4096,
) -> DockerSandbox:
    """A :class:`DockerSandbox` running ``image``'s ``image_variant`` build within
    ``resources``.

    Raises:
        UsageError: an unknown option, or neither ``image`` nor ``options['image']`` given.
        SandboxUnavailableError: no engine, or the image is not built (the message says how to
            build it).
    """
    from rebench_gym.sandbox.docker_images import find_image

    unknown = set(options) - _OPTIONS
    if unknown:
        raise UsageError(
            f"unknown docker sandbox options {sorted(unknown)}; known: "
            f"{sorted(_OPTIONS | set(RESOURCE_OPTIONS))}"
        )
    tag = options.get("image")
    if tag is None:
        if image is None:
            raise UsageError("the docker sandbox needs an image name or options['image']")
        tag = find_image(image, image_variant, options.get("base_image"))
        if tag is None:
            raise SandboxUnavailableError(
                f"no Docker image is built for {image} (scale={image_variant!r}); build it "
                f"with `rebench image build {image} --scale {image_variant}`"
            )
    return DockerSandbox(
        workspace,
        image=str(tag),
        max_output_bytes=max_output_bytes,
        max_pids=max_pids,
        resources=resources,
        network=bool(options.get("network", False)),
    )


def _host_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        return None
