"""RayVectorEnv: Gymnasium's vector API with every sub-env in its own Ray actor.

Each env runs in an actor placed by Ray's scheduler on a node with the resources the task needs
at its scale (``num_gpus``/``num_cpus`` from ``task.yaml``; override with ``actor_options``), so
a batch can span machines. Calls are non-blocking: :meth:`~RayVectorEnv.step_async` only sends,
:meth:`~RayVectorEnv.step_wait` collects; :meth:`~RayVectorEnv.send` and
:meth:`~RayVectorEnv.recv` step any subset of envs and return whichever finished first, so one
long command never holds the others back.

An actor that dies (killed, crashed, its node lost) or an env that raises is reported as data,
never as a hung batch: that env's step returns ``truncated=True`` (the episode was cut short by
the infrastructure, not ended by the task), reward 0, ``info["error"]`` with the reason,
``info["env_failed"] = True`` and an observation saying so. Autoreset is Gymnasium's
``NEXT_STEP``: the env's next step (or :meth:`reset`) starts a fresh actor and resets it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

from rebench_gym.errors import HardwareError, ReBenchError, SandboxError, UsageError
from rebench_gym.vector.ray_cluster import connect, ray_module

MAX_ERROR_CHARS = 4000


@dataclass(frozen=True)
class WorkerInfo:
    """Where one env's actor runs."""

    pid: int
    node: str
    gpu_ids: tuple[str, ...]
    reaper_pid: int


@dataclass
class _Call:
    kind: str  # "step" or "reset"
    ref: Any


class RayVectorEnv(gym.vector.VectorEnv[Any, Any, Any]):
    """``num_envs`` copies of ``env_id``, each in its own Ray actor.

    Args:
        env_id: a registered id, e.g. ``"RE-Bench/OptimizeKernel-v0"``.
        num_envs: how many envs (actors).
        address: the Ray cluster to join: a head node's ``"HOST:PORT"`` (``ray start --head``),
            ``"auto"`` (``RAY_ADDRESS`` or the cluster ``ray start`` runs on this machine) or
            ``"ray://HOST:PORT"``. ``None``: use the running Ray session, or start a local one on
            ``127.0.0.1``. A session this env joined or started is left again by :meth:`close`
            (an existing cluster keeps running); see
            :func:`~rebench_gym.vector.ray_cluster.connect`.
        node_ip_address: the address this process registers as a Ray node (default:
            ``127.0.0.1`` for a local session or a head on loopback, else Ray's choice).
        actor_options: Ray actor options merged over the defaults from the task's resources at
            its scale (``num_cpus``, ``num_gpus``); e.g. ``{"num_cpus": 0.5}`` to pack mini envs
            on a small machine, ``{"resources": {...}}`` or ``{"scheduling_strategy": ...}``.
        pin_gpus: give a docker sandbox exactly the GPUs Ray assigned to the actor.
        wrappers: callables applied to each env inside its actor (e.g. budget wrappers).
        start_timeout_s: how long actors may take to be placed and start.
        close_timeout_s: how long :meth:`close` waits for an env to close cleanly before it kills
            the actor (the actor's reaper then kills the sandbox's processes).
        **make_kwargs: ``gym.make`` keyword arguments for every env (``scale``, ``sandbox``, ...).

    Raises:
        HardwareError: the cluster cannot hold the actors, or they were not placed in time.
        RayClusterError: the cluster cannot be reached, or one of its nodes cannot import
            rebench_gym (a :class:`~rebench_gym.errors.UsageError`).
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP}  # noqa: RUF012

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        *,
        address: str | None = None,
        node_ip_address: str | None = None,
        actor_options: dict[str, Any] | None = None,
        pin_gpus: bool = True,
        wrappers: Sequence[Callable[[gym.Env[Any, Any]], gym.Env[Any, Any]]] = (),
        start_timeout_s: float = 600.0,
        close_timeout_s: float = 30.0,
        **make_kwargs: Any,
    ) -> None:
        from rebench_gym.envs.registration import task_name
        from rebench_gym.vector.devices import task_resources

        if num_envs < 1:
            raise UsageError(f"num_envs must be >= 1, not {num_envs}")
        task_name(env_id)  # a usage error for unknown ids
        self.closed = False
        self.env_id = env_id
        self.num_envs = num_envs
        self.make_kwargs = dict(make_kwargs)
        self.wrappers = list(wrappers)
        self.pin_gpus = pin_gpus
        self.start_timeout_s = float(start_timeout_s)
        self.close_timeout_s = float(close_timeout_s)
        scale = str(self.make_kwargs.get("scale", "full"))
        resources = task_resources(env_id, scale)
        options: dict[str, Any] = {
            "num_cpus": resources.cpus,
            "num_gpus": float(resources.gpus),
        }
        options.update(actor_options or {})
        self.actor_options = options

        with contextlib.closing(gym.make(env_id, **self.make_kwargs)) as probe:
            self.single_observation_space = probe.observation_space
            self.single_action_space = probe.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

        self._actors: list[Any] = [None] * num_envs
        self.workers: list[WorkerInfo | None] = [None] * num_envs
        self._calls: dict[int, _Call] = {}
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self._failed = np.zeros(num_envs, dtype=bool)
        self._last_files = [""] * num_envs
        self.restarts = 0
        self._retired: list[WorkerInfo] = []
        self._owns_ray = False
        # joins (and checks) the cluster unless this process is connected already; the envs'
        # progress messages (asset preparation, calibration) reach this terminal
        self._owns_ray = connect(
            address, node_ip_address=node_ip_address, sandbox=self.make_kwargs.get("sandbox")
        )
        try:
            self._check_capacity()
            for i in range(num_envs):
                self._actors[i] = self._spawn()
            self._await_ready(range(num_envs))
        except BaseException:
            self.close()
            raise

    # ----- actors ------------------------------------------------------------------------------
    def _check_capacity(self) -> None:
        """Fail fast when the cluster can never hold ``num_envs`` actors of this size."""
        ray = ray_module()
        total = ray.cluster_resources()
        for key, name in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
            need = float(self.actor_options.get(key) or 0) * self.num_envs
            have = float(total.get(name, 0.0))
            if need > have + 1e-9:
                raise HardwareError(
                    f"{self.num_envs} envs of {self.env_id} need {need:g} {name}s in all "
                    f"({self.actor_options.get(key)} each, from the task's resources at "
                    f"scale={self.make_kwargs.get('scale', 'full')!r}); the Ray cluster has "
                    f"{have:g}. Add nodes, use fewer envs, or ask for less per env with "
                    f"actor_options={{{key!r}: ...}} (rebench run: --ray-cpus-per-env)"
                )

    def _spawn(self) -> Any:
        ray = ray_module()
        from rebench_gym.vector.worker import EnvWorker

        remote = ray.remote(EnvWorker).options(max_restarts=0, **self.actor_options)
        return remote.remote(self.env_id, self.make_kwargs, self.pin_gpus, self.wrappers)

    def _await_ready(self, indices: Sequence[int] | range) -> None:
        ray = ray_module()
        indices = list(indices)
        refs = [self._actors[i].ready.remote() for i in indices]
        try:
            infos = ray.get(refs, timeout=self.start_timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise HardwareError(
                f"the env actors were not placed and started within {self.start_timeout_s:g} s "
                f"(each asks for {self.actor_options}; cluster resources now "
                f"{ray.available_resources()}). Free resources or ask for less per env"
            ) from None
        except ray.exceptions.RayTaskError as e:
            raise _cause(e) from None
        for i, info in zip(indices, infos, strict=True):
            self.workers[i] = WorkerInfo(
                info["pid"], info["node"], tuple(info["gpu_ids"]), info["reaper_pid"]
            )

    def _restart(self, i: int) -> None:
        """Replace env ``i``'s actor with a fresh one (the old one is killed if still alive)."""
        ray = ray_module()
        old = self._actors[i]
        retired = self.workers[i]
        if retired is not None:
            self._retired.append(retired)
        if old is not None:
            with contextlib.suppress(Exception):
                ray.kill(old, no_restart=True)
        self._actors[i] = self._spawn()
        self._await_ready([i])
        self._failed[i] = False
        self.restarts += 1

    # ----- the vector API ----------------------------------------------------------------------
    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Reset every env (restarting failed actors first); Gymnasium's seeding rules."""
        ray = ray_module()
        self._check_open()
        if self._calls:
            raise UsageError("a step is still in flight; call step_wait()/recv() before reset()")
        if seed is None or isinstance(seed, int):
            seeds: list[int | None] = [
                None if seed is None else seed + i for i in range(self.num_envs)
            ]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise UsageError(f"expected {self.num_envs} seeds, got {len(seeds)}")
        for i in range(self.num_envs):
            if self._failed[i]:
                self._restart(i)
        refs = [a.reset.remote(s, options) for a, s in zip(self._actors, seeds, strict=True)]
        results: list[Any] = []
        for i, ref in enumerate(refs):
            try:
                results.append(ray.get(ref))
            except ray.exceptions.RayTaskError as e:
                raise _cause(e) from None
            except ray.exceptions.RayError:  # the actor died: one fresh try
                self._restart(i)
                try:
                    results.append(ray.get(self._actors[i].reset.remote(seeds[i], options)))
                except ray.exceptions.RayError as e:
                    raise SandboxError(f"env {i}'s Ray actor failed twice at reset: {e}") from e
        self._autoreset[:] = False
        infos: dict[str, Any] = {}
        for i, (obs, info) in enumerate(results):
            self._last_files[i] = obs.get("files", "")
            infos = self._add_info(infos, info, i)
        obs_batch = [obs for obs, _ in results]
        return self._batch(obs_batch), infos

    def step_async(self, actions: Sequence[str]) -> None:
        """Send one action to every env and return at once."""
        self.send(actions)

    def step_wait(
        self, timeout: float | None = None
    ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Collect the results of :meth:`step_async` for every env.

        Raises:
            TimeoutError: not all envs finished within ``timeout`` s (the calls stay in flight;
                call ``step_wait`` again).
        """
        if len(self._calls) != self.num_envs:
            raise UsageError("step_wait() needs a step_async() for every env first")
        ids, results = self._collect(self.num_envs, timeout)
        order = np.argsort(ids)
        obs_list, rewards, terms, truncs = [], [], [], []
        infos: dict[str, Any] = {}
        for k in order:
            obs, reward, term, trunc, info = results[k]
            obs_list.append(obs)
            rewards.append(reward)
            terms.append(term)
            truncs.append(trunc)
            infos = self._add_info(infos, info, int(ids[k]))
        return (
            self._batch(obs_list),
            np.array(rewards, dtype=np.float64),
            np.array(terms, dtype=np.bool_),
            np.array(truncs, dtype=np.bool_),
            infos,
        )

    def step(
        self, actions: Sequence[str]
    ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env in parallel and wait for all of them."""
        self.step_async(actions)
        return self.step_wait()

    def send(self, actions: Sequence[str], env_ids: Sequence[int] | None = None) -> None:
        """Start one step on each env of ``env_ids`` (default: all) without waiting.

        An env whose episode ended (or whose actor failed) is reset instead and its action
        ignored (Gymnasium's ``NEXT_STEP`` autoreset).
        """
        self._check_open()
        ids = list(range(self.num_envs)) if env_ids is None else [int(i) for i in env_ids]
        if len(actions) != len(ids):
            raise UsageError(f"got {len(actions)} actions for {len(ids)} envs")
        for i in ids:
            if not 0 <= i < self.num_envs:
                raise UsageError(f"env id {i} is out of range (num_envs={self.num_envs})")
            if i in self._calls:
                raise UsageError(f"env {i} is still busy with its last call; recv() it first")
        for i, action in zip(ids, actions, strict=True):
            if self._autoreset[i]:
                if self._failed[i]:
                    self._restart(i)
                self._calls[i] = _Call("reset", self._actors[i].reset.remote(None, None))
            else:
                self._calls[i] = _Call("step", self._actors[i].step.remote(action))

    def recv(
        self, min_envs: int = 1, timeout: float | None = None
    ) -> tuple[np.ndarray, list[tuple[dict[str, str], float, bool, bool, dict[str, Any]]]]:
        """Wait until at least ``min_envs`` of the envs in flight finish; return those.

        Returns:
            The env ids that finished and, for each, its ``(obs, reward, terminated, truncated,
            info)``.

        Raises:
            TimeoutError: fewer than ``min_envs`` finished within ``timeout`` s.
        """
        if not self._calls:
            raise UsageError("no env is in flight; send() first")
        return self._collect(max(1, min(min_envs, len(self._calls))), timeout)

    @property
    def busy(self) -> list[int]:
        """Env ids with a call in flight."""
        return sorted(self._calls)

    def _collect(
        self, min_envs: int, timeout: float | None
    ) -> tuple[np.ndarray, list[tuple[dict[str, str], float, bool, bool, dict[str, Any]]]]:
        ray = ray_module()
        by_ref = {id(c.ref): i for i, c in self._calls.items()}
        refs = [c.ref for c in self._calls.values()]
        ready, _ = ray.wait(refs, num_returns=min_envs, timeout=timeout)
        if len(ready) < min_envs:
            raise TimeoutError(f"{len(ready)} of {min_envs} envs finished within {timeout} s")
        ready_ids = sorted(by_ref[id(r)] for r in ready)
        results = [self._result(i) for i in ready_ids]
        return np.array(ready_ids, dtype=np.int64), results

    def _result(self, i: int) -> tuple[dict[str, str], float, bool, bool, dict[str, Any]]:
        ray = ray_module()
        call = self._calls.pop(i)
        try:
            value = ray.get(call.ref)
        except ray.exceptions.RayTaskError as e:
            cause = _cause(e)
            if call.kind == "reset" and isinstance(cause, ReBenchError):
                raise cause from None  # a set-up fault (hardware, assets): retrying cannot help
            return self._failure(i, f"the env raised {type(cause).__name__}: {cause}")
        except ray.exceptions.RayError as e:
            return self._failure(i, f"the env's Ray actor died ({type(e).__name__}): {e}")
        if call.kind == "reset":
            obs, info = value
            self._autoreset[i] = False
            self._last_files[i] = obs.get("files", "")
            return obs, 0.0, False, False, info
        obs, reward, terminated, truncated, info = value
        self._last_files[i] = obs.get("files", "")
        self._autoreset[i] = terminated or truncated
        return obs, reward, terminated, truncated, info

    def _failure(
        self, i: int, message: str
    ) -> tuple[dict[str, str], float, bool, bool, dict[str, Any]]:
        message = message[:MAX_ERROR_CHARS]
        self._failed[i] = True
        self._autoreset[i] = True
        obs = {
            "terminal": f"[env error] {message}\n[the episode was cut short; the env restarts "
            "on the next step or reset]",
            "files": self._last_files[i],
        }
        return obs, 0.0, False, True, {"error": message, "env_failed": True}

    def _batch(self, obs_list: list[dict[str, str]]) -> Any:
        out: Any = create_empty_array(self.single_observation_space, n=len(obs_list))
        return concatenate(self.single_observation_space, obs_list, out)

    def _check_open(self) -> None:
        if self.closed:
            raise UsageError("the vector env is closed")

    # ----- closing -----------------------------------------------------------------------------
    def close_extras(self, **kwargs: Any) -> None:
        """Close every env, kill every actor, and wait until their local processes are gone."""
        ray = ray_module()
        if not ray.is_initialized():
            return
        actors = [a for a in getattr(self, "_actors", []) if a is not None]
        busy = {id(self._actors[i]) for i in getattr(self, "_calls", {})}
        refs = []
        for a in actors:
            if id(a) in busy:
                continue  # a long command in flight: killed below, its reaper cleans up
            with contextlib.suppress(Exception):
                refs.append(a.close.remote())
        if refs:
            with contextlib.suppress(Exception):
                ray.wait(refs, num_returns=len(refs), timeout=self.close_timeout_s)
        for a in actors:
            with contextlib.suppress(Exception):
                ray.kill(a, no_restart=True)
        self._calls = {}
        here = ray.util.get_node_ip_address()
        everyone = [*getattr(self, "workers", []), *getattr(self, "_retired", [])]
        local = [w for w in everyone if w is not None and w.node == here]
        # the actors first; each one's reaper then sweeps its sandbox and exits
        _wait_gone([w.pid for w in local], timeout=max(self.close_timeout_s, 10.0))
        _wait_gone([w.reaper_pid for w in local], timeout=10.0)
        if self._owns_ray:
            ray.shutdown()  # leaves an existing cluster running

    def close(self, **kwargs: Any) -> None:
        """Close every env and kill its actor; idempotent."""
        if self.closed:
            return
        try:
            self.close_extras(**kwargs)
        finally:
            self.closed = True

    def __del__(self) -> None:  # pragma: no cover - depends on the garbage collector
        with contextlib.suppress(Exception):
            self.close()


def _cause(e: Exception) -> Exception:
    """The exception a remote call raised, unwrapped from Ray's ``RayTaskError``."""
    cause = getattr(e, "cause", None)
    return cause if isinstance(cause, Exception) else e


def _wait_gone(pids: list[int], timeout: float) -> None:
    """Wait until none of ``pids`` runs any more (at most ``timeout`` s)."""
    from rebench_gym.vector.worker import running

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(running(p) for p in pids):
        time.sleep(0.05)
