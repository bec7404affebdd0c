"""Local vector envs: Gymnasium's async (or sync) vector env with a spawn context and per-env GPUs.

``gym.make_vec`` works for every id as it is (pass ``vector_kwargs={"context": "spawn"}`` for a
spawn context). :func:`make_vec` is the same with two additions a plain ``gym.make_vec`` cannot
give, since it builds every env from identical arguments:

* workers start with ``multiprocessing``'s ``spawn`` context by default: a fresh interpreter per
  env, never a ``fork`` of a driver that may hold threads (Ray, torch, the docker reaper) or open
  sandboxes;
* at a scale that needs GPUs, env ``i`` gets its own slice of the visible devices
  (:func:`~rebench_gym.vector.devices.assign_gpus`); no two envs share one unless
  ``share_gpus=True``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym

from rebench_gym.errors import UsageError
from rebench_gym.vector.devices import assign_gpus, gpus_per_env, visible_gpus, with_gpus

EnvWrapper = Callable[[gym.Env[Any, Any]], gym.Env[Any, Any]]


def _make_one(
    env_id: str,
    make_kwargs: dict[str, Any],
    gpus: tuple[str, ...],
    wrappers: Sequence[EnvWrapper],
) -> gym.Env[Any, Any]:
    """Build one sub-env (runs in the worker process)."""
    import rebench_gym  # noqa: F401 - registers the ids in a spawned worker

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="sandbox='local' gives the agent")
        env = gym.make(env_id, **with_gpus(make_kwargs, gpus))
    for wrapper in wrappers:
        env = wrapper(env)
    return env


def env_fns(
    env_id: str,
    num_envs: int,
    *,
    share_gpus: bool = False,
    devices: Sequence[str] | None = None,
    wrappers: Sequence[EnvWrapper] = (),
    **make_kwargs: Any,
) -> list[Callable[[], gym.Env[Any, Any]]]:
    """One picklable constructor per env, env ``i`` pinned to its GPUs (see :func:`make_vec`)."""
    if num_envs < 1:
        raise UsageError(f"num_envs must be >= 1, not {num_envs}")
    scale = str(make_kwargs.get("scale", "full"))
    per_env = gpus_per_env(env_id, scale)
    if per_env:
        pool = visible_gpus() if devices is None else [str(d) for d in devices]
        assignment = assign_gpus(num_envs, per_env, pool, share=share_gpus)
    else:
        assignment = [() for _ in range(num_envs)]
    return [
        functools.partial(_make_one, env_id, dict(make_kwargs), gpus, tuple(wrappers))
        for gpus in assignment
    ]


def make_vec(
    env_id: str,
    num_envs: int,
    vectorization_mode: str = "async",
    *,
    context: str | None = "spawn",
    share_gpus: bool = False,
    devices: Sequence[str] | None = None,
    wrappers: Sequence[EnvWrapper] = (),
    vector_kwargs: dict[str, Any] | None = None,
    **make_kwargs: Any,
) -> gym.vector.VectorEnv[Any, Any, Any]:
    """``num_envs`` envs of ``env_id`` in Gymnasium's ``AsyncVectorEnv`` or ``SyncVectorEnv``.

    Args:
        env_id: a registered id.
        num_envs: how many envs; each has its own sandbox and workspace.
        vectorization_mode: ``"async"`` (one worker process per env) or ``"sync"``.
        context: the ``multiprocessing`` start method of the async workers (default ``spawn``).
        share_gpus: let envs share GPUs when there are fewer than they need in all.
        devices: the GPU ids to hand out (default: ``CUDA_VISIBLE_DEVICES`` or every device).
        wrappers: callables applied to each env in its worker (e.g. budget wrappers).
        vector_kwargs: more arguments for the vector env class.
        **make_kwargs: ``gym.make`` keyword arguments for every env.

    Raises:
        UsageError: an unknown mode or id.
        HardwareError: the scale needs more GPUs than there are (see ``share_gpus``).
    """
    fns = env_fns(
        env_id,
        num_envs,
        share_gpus=share_gpus,
        devices=devices,
        wrappers=wrappers,
        **make_kwargs,
    )
    kwargs = dict(vector_kwargs or {})
    if vectorization_mode == "async":
        kwargs.setdefault("context", context)
        return gym.vector.AsyncVectorEnv(fns, **kwargs)
    if vectorization_mode == "sync":
        return gym.vector.SyncVectorEnv(fns, **kwargs)
    raise UsageError(f"vectorization_mode must be 'async' or 'sync', not {vectorization_mode!r}")


def vector_entry_point(
    num_envs: int, task: str, **kwargs: Any
) -> gym.vector.VectorEnv[Any, Any, Any]:
    """The ids' Gymnasium ``vector_entry_point``: what ``gym.make_vec(id, num_envs=N)`` builds.

    Registered as ``vector_entry_point="rebench_gym.vector.local:vector_entry_point"``, it makes
    ``gym.make_vec`` without a ``vectorization_mode`` (or with ``"vector_entry_point"``) use
    :func:`make_vec`: async workers with a spawn context and per-env GPUs. ``task`` comes from the
    registered kwargs; ``vectorization_mode="sync"`` may be passed to get a sync vector env.
    """
    from rebench_gym.envs.registration import env_id_of

    mode = str(kwargs.pop("vectorization_mode", "async"))
    return make_vec(env_id_of(task), num_envs, mode, **kwargs)
