"""Vectorized and distributed rollouts.

* ``gym.make_vec("RE-Bench/...", num_envs=N, vectorization_mode="async", vector_kwargs={"context":
  "spawn"})`` runs the envs in local worker processes (Gymnasium's own vector envs);
  :func:`make_vec` does the same with a spawn context by default and gives each env its own GPUs.
* :class:`RayVectorEnv` runs each env in a Ray actor, across machines.
* :func:`vector_rollout` plays one agent per env until a number of episodes have finished.

Ray is imported only when :class:`RayVectorEnv` is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rebench_gym.vector.devices import assign_gpus, visible_gpus
from rebench_gym.vector.local import make_vec
from rebench_gym.vector.rollout import vector_rollout

if TYPE_CHECKING:
    from rebench_gym.vector.ray_env import RayVectorEnv


def __getattr__(name: str) -> Any:
    if name == "RayVectorEnv":
        from rebench_gym.vector.ray_env import RayVectorEnv

        return RayVectorEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RayVectorEnv", "assign_gpus", "make_vec", "vector_rollout", "visible_gpus"]
