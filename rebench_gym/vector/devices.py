"""Which GPUs each sub-env of a vector env gets: disjoint by default, shared only when asked.

A task's resources (``task.yaml``) say how many GPUs one env needs at a scale. With
``num_envs`` envs on one machine, env ``i`` gets the ``i``-th slice of the visible devices, so no
two envs share a device unless ``share_gpus=True``. The ids reach the env through its sandbox as
``sandbox_options={"gpus": [...]}``, which every provider pins by UUID. On Ray, the
scheduler assigns the devices instead (``num_gpus`` per actor) and the actor passes Ray's ids the
same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from rebench_gym.errors import HardwareError, UsageError
from rebench_gym.sandbox.resources import Resources


def visible_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """The CUDA device ids this process may use.

    ``CUDA_VISIBLE_DEVICES`` when set (an empty value means none), else ``0..n-1`` for the
    devices torch sees (none without torch or CUDA).
    """
    env = os.environ if environ is None else environ
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is not None:
        return [d.strip() for d in value.split(",") if d.strip() and d.strip() != "-1"]
    from rebench_gym.tasks.base import cuda_device_count

    return [str(i) for i in range(cuda_device_count())]


def assign_gpus(
    num_envs: int, gpus_per_env: int, devices: Sequence[str], *, share: bool = False
) -> list[tuple[str, ...]]:
    """Device ids for each of ``num_envs`` envs that need ``gpus_per_env`` GPUs each.

    Envs get consecutive, disjoint slices of ``devices`` (env 0 the first ``gpus_per_env``).
    With ``share=True`` and too few devices, the slices wrap around (round-robin), so devices
    are shared as evenly as possible; one env never gets the same device twice.

    Raises:
        UsageError: a negative count or ``num_envs`` < 1.
        HardwareError: too few devices (and ``share`` is False), or one env needs more
            devices than exist.
    """
    if num_envs < 1 or gpus_per_env < 0:
        raise UsageError(
            f"num_envs must be >= 1 and gpus_per_env >= 0 (got {num_envs}, {gpus_per_env})"
        )
    if gpus_per_env == 0:
        return [() for _ in range(num_envs)]
    devices = [str(d) for d in devices]
    if len(set(devices)) != len(devices):
        raise UsageError(f"devices must be distinct, got {devices}")
    need = num_envs * gpus_per_env
    if len(devices) < gpus_per_env:
        raise HardwareError(
            f"one env needs {gpus_per_env} GPU(s) but only {len(devices)} are visible "
            f"({', '.join(devices) or 'none'}); use scale='mini' to run on CPU"
        )
    if len(devices) < need and not share:
        raise HardwareError(
            f"{num_envs} envs x {gpus_per_env} GPU(s) need {need} GPUs but {len(devices)} are "
            f"visible ({', '.join(devices)}); use fewer envs, share_gpus=True to let envs share "
            "devices, or Ray across several machines (rebench_gym.vector.RayVectorEnv)"
        )
    return [
        tuple(devices[(i * gpus_per_env + j) % len(devices)] for j in range(gpus_per_env))
        for i in range(num_envs)
    ]


def with_gpus(make_kwargs: Mapping[str, Any], gpus: Sequence[str]) -> dict[str, Any]:
    """``make_kwargs`` with the env's sandbox pinned to the device ids ``gpus``.

    Every sandbox gets ``sandbox_options["gpus"]`` (it pins exactly these devices by UUID:
    ``CUDA_VISIBLE_DEVICES`` and device nodes for bwrap and local, a device request for
    docker); a ``gpus`` option the user set is kept.
    """
    kwargs = dict(make_kwargs)
    if not gpus:
        return kwargs
    options = dict(kwargs.get("sandbox_options") or {})
    options.setdefault("gpus", [str(g) for g in gpus])
    kwargs["sandbox_options"] = options
    return kwargs


def gpus_per_env(env_id: str, scale: str) -> int:
    """How many GPUs one env of ``env_id`` needs at ``scale`` (from its ``task.yaml``)."""
    return task_resources(env_id, scale).gpus


def task_resources(env_id: str, scale: str) -> Resources:
    """The resources one env of ``env_id`` needs at ``scale`` (``gpus``, ``cpus``, ...)."""
    from rebench_gym.envs.registration import task_name
    from rebench_gym.tasks import get_task

    task = get_task(task_name(env_id))
    if scale not in task.spec.scales:
        raise UsageError(f"scale must be one of {sorted(task.spec.scales)}, not {scale!r}")
    return task.spec.scale(scale).resources
