"""The body of one remote env: what each Ray actor of :class:`RayVectorEnv` runs.

:class:`EnvWorker` owns one env (made with ``gym.make`` inside the actor process) and a
:class:`SandboxReaper`: a small detached helper process that learns the env's sandbox (its
process marker, cgroup, docker session and workspace directory) and cleans all of it up as soon
as the actor process dies, however it dies (``ray.kill``, a crash, the node's OOM killer).
Without it, a command the agent started in the ``local`` sandbox would outlive a killed actor,
and so could docker containers: Ray kills a dead worker's child processes, the docker
sandbox's own reaper among them.

``python -m rebench_gym.vector.worker`` is the reaper's entry point: it reads ``marker KEY=value``,
``cgroup PATH``, ``docker SESSION`` and ``dir PATH`` lines on stdin until end of file (the actor
died or closed it), then kills those processes, removes those containers and directories.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym


class SandboxReaper:
    """A helper process that kills a sandbox's processes once its parent is gone.

    The reaper detaches (double fork, own session): Ray kills a dead worker's direct children,
    so a plain child would die with the actor before it could clean up.
    """

    def __init__(self) -> None:
        import rebench_gym

        root = str(Path(rebench_gym.__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        self._told: set[str] = set()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rebench_gym.vector.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.proc.wait()  # the launcher exits once the detached reaper runs
        self.proc.stdout.close()
        try:
            self.pid = int(line)
        except ValueError:
            raise RuntimeError(f"the sandbox reaper did not start: {line!r}") from None

    def watch(self, kind: str, value: str) -> None:
        """Tell the reaper one more thing to clean up: a sandbox ``marker``, a ``cgroup``, a
        ``docker`` session id (its containers) or a ``dir`` (the env's workspace root)."""
        line = f"{kind} {value}"
        if line in self._told or self.proc.stdin is None:
            return
        self._told.add(line)
        with contextlib.suppress(OSError):
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()

    def close(self, timeout: float = 10.0) -> None:
        """Close the pipe (the reaper sweeps once more and exits) and wait until it is gone."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        deadline = time.monotonic() + timeout
        while running(self.pid) and time.monotonic() < deadline:
            time.sleep(0.02)


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (an exited process nobody has reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


class EnvWorker:
    """One env inside a Ray actor (``ray.remote(EnvWorker)``; used by :class:`RayVectorEnv`).

    Args:
        env_id: a registered id.
        make_kwargs: ``gym.make`` keyword arguments.
        pin_gpus: pass the GPUs Ray assigned to this actor to the docker sandbox as device ids.
        wrappers: callables applied to the env in order (e.g. budget wrappers).
    """

    def __init__(
        self,
        env_id: str,
        make_kwargs: dict[str, Any],
        pin_gpus: bool = True,
        wrappers: Sequence[Callable[[gym.Env[Any, Any]], gym.Env[Any, Any]]] = (),
    ) -> None:
        import rebench_gym  # noqa: F401 - registers the ids in this process

        kwargs = dict(make_kwargs)
        self.gpu_ids: list[str] = []
        if pin_gpus:
            import ray

            from rebench_gym.vector.devices import with_gpus

            self.gpu_ids = [str(g) for g in ray.get_gpu_ids()]
            kwargs = with_gpus(kwargs, self.gpu_ids)
        self.reaper = SandboxReaper()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="sandbox='local' gives the agent")
            env = gym.make(env_id, **kwargs)
        for wrapper in wrappers:
            env = wrapper(env)
        self.env = env

    def ready(self) -> dict[str, Any]:
        """Where this worker runs: pid, node address and GPU ids (also a liveness check)."""
        import ray

        return {
            "pid": os.getpid(),
            "node": ray.util.get_node_ip_address(),
            "gpu_ids": self.gpu_ids,
            "reaper_pid": self.reaper.pid,
        }

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """``env.reset``; the reaper then learns the sandbox it started."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="sandbox='local' gives the agent")
            obs, info = self.env.reset(seed=seed, options=options)
        self._watch_sandbox()
        return obs, info

    def step(self, action: str) -> tuple[dict[str, str], float, bool, bool, dict[str, Any]]:
        """``env.step``, with the wall time of the step in ``info["worker_step_s"]``."""
        start = time.monotonic()
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["worker_step_s"] = round(time.monotonic() - start, 4)
        return obs, float(reward), bool(terminated), bool(truncated), info

    def workspace_root(self) -> str | None:
        """The host directory that holds the env's workspace (``None`` before reset)."""
        root = getattr(self.env.unwrapped, "_root", None)
        return None if root is None else str(root)

    def sandbox_marker(self) -> str | None:
        """The ``KEY=value`` environment marker of the env's sandbox processes (if any)."""
        sandbox = getattr(self.env.unwrapped, "_sandbox", None)
        return getattr(sandbox, "marker", None)

    def close(self) -> bool:
        """Close the env (kills its sandbox) and the reaper."""
        try:
            self.env.close()
        finally:
            self.reaper.close()
        return True

    def _watch_sandbox(self) -> None:
        base = self.env.unwrapped
        sandbox = getattr(base, "_sandbox", None)
        marker = getattr(sandbox, "marker", None)
        if marker:
            self.reaper.watch("marker", marker)
        cgroup = getattr(sandbox, "cgroup", None)
        if cgroup is not None:
            for path in dict.fromkeys(cgroup.paths.values()):
                self.reaper.watch("cgroup", str(path))
        if getattr(sandbox, "name", "") == "docker":
            from rebench_gym.sandbox import docker_session_id

            self.reaper.watch("docker", docker_session_id())
        root = getattr(base, "_root", None)
        if root is not None:
            self.reaper.watch("dir", str(root))


def _reap(watched: dict[str, list[str]]) -> None:
    """Kill every process of the watched sandboxes (several sweeps: forks may race the first),
    remove their docker containers and their workspace directories."""
    from rebench_gym import procs
    from rebench_gym.sandbox.leftovers import remove_tree

    for _ in range(3):
        for path in watched["cgroup"]:
            procs.Cgroup({"pids": Path(path)}).kill_all(timeout=2.0)
        for marker in watched["marker"]:
            procs.kill_pids(procs.pids_with_env_marker(marker))
        time.sleep(0.05)
    for path in watched["cgroup"]:
        with contextlib.suppress(OSError):
            Path(path).rmdir()
    for session in watched["docker"]:
        with contextlib.suppress(Exception):
            from rebench_gym.sandbox import remove_docker_containers

            remove_docker_containers(session)
    for path in watched["dir"]:
        remove_tree(Path(path))


def main() -> None:
    """The reaper: detach, report the pid, collect markers and cgroups from stdin; at end of
    file, kill them all."""
    child = os.fork()
    if child:  # the launcher: tell the actor who the reaper is, then go
        print(child, flush=True)
        os._exit(0)
    os.setsid()
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    watched: dict[str, list[str]] = {"marker": [], "cgroup": [], "docker": [], "dir": []}
    for raw in sys.stdin.buffer:
        kind, _, value = raw.decode(errors="replace").strip().partition(" ")
        if kind in watched and value and (kind != "marker" or "=" in value):
            watched[kind].append(value)
    _reap(watched)


if __name__ == "__main__":
    main()
