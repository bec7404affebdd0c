"""rebench_gym: the seven RE-Bench ML research-engineering tasks as Gymnasium environments.

Importing the package registers the ``RE-Bench/*-v0`` ids with Gymnasium.
"""

from __future__ import annotations

__version__ = "0.1.0"

from rebench_gym.envs.registration import ENV_IDS, register_envs

register_envs()

from rebench_gym.rollout import EpisodeResult, rollout  # noqa: E402

__all__ = ["ENV_IDS", "EpisodeResult", "__version__", "register_envs", "rollout"]
