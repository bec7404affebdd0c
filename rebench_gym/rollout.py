"""Running one agent through one episode: :func:`rollout` and its :class:`EpisodeResult`."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym


@dataclass(frozen=True)
class EpisodeResult:
    """What one episode produced."""

    env_id: str
    agent: str
    total_reward: float
    normalized_score: float
    raw_score: float | None
    steps: int
    wall_time_s: float
    terminated: bool
    truncated: bool
    score_log: list[dict[str, Any]] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=dict)
    end_reason: str = ""


def rollout(
    env: gym.Env[Any, Any],
    agent: Any,
    *,
    max_steps: int | None = None,
    seed: int | None = None,
    agent_name: str | None = None,
) -> EpisodeResult:
    """Run ``agent`` in ``env`` until the episode ends (or ``max_steps``, then submit).

    The env is reset here; it is not closed. ``agent`` follows the Agent protocol:
    ``reset(seed=...)``, ``act(observation, info) -> str``.
    """
    from rebench_gym.env import ReBenchEnv

    agent.reset(seed=seed)
    obs, info = env.reset(seed=seed)
    started = time.monotonic()  # after reset: asset preparation and calibration do not count
    total = 0.0
    steps = 0
    terminated = truncated = False
    while not (terminated or truncated):
        action = "submit" if max_steps is not None and steps >= max_steps else agent.act(obs, info)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        steps += 1
    base = env.unwrapped
    assert isinstance(base, ReBenchEnv)
    log = base.score_log
    usage = getattr(agent, "usage", None)
    return EpisodeResult(
        env_id=base.task.spec.env_id,
        agent=str(agent_name or getattr(agent, "name", type(agent).__name__)),
        total_reward=total,
        normalized_score=log.normalized,
        raw_score=None if math.isnan(log.raw) else log.raw,
        steps=steps,
        wall_time_s=time.monotonic() - started,
        terminated=terminated,
        truncated=truncated,
        score_log=log.to_list(),
        tokens=dict(usage) if isinstance(usage, dict) else {},
        end_reason=str(info.get("end_reason", "")),
    )
