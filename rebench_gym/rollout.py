"""Running one agent through one episode: :func:`rollout` and its :class:`EpisodeResult`."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gymnasium as gym

if TYPE_CHECKING:
    from rebench_gym.scoring import ScoreLog


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

    @classmethod
    def from_score_log(
        cls,
        log: ScoreLog,
        *,
        env_id: str,
        agent: str,
        total_reward: float,
        steps: int,
        started: float,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
        tokens: dict[str, int] | None = None,
    ) -> EpisodeResult:
        """The result of an episode that just ended in this process, from its env's score log
        (the real rows, hidden scores included); ``started`` is a ``time.monotonic()`` value."""
        return cls(
            env_id=env_id,
            agent=agent,
            total_reward=total_reward,
            normalized_score=log.normalized,
            raw_score=None if math.isnan(log.raw) else log.raw,
            steps=steps,
            wall_time_s=time.monotonic() - started,
            terminated=terminated,
            truncated=truncated,
            score_log=log.to_list(),
            tokens=dict(tokens or {}),
            end_reason=str(info.get("end_reason", "")),
        )


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
    ``reset(seed=...)``, ``act(observation, info) -> str``; an agent with a ``bind(env)``
    method gets the env first (LLM agents use it to report token usage and pause budgets).

    ``EpisodeResult.tokens`` holds the agent's own ``usage`` dict if it has one; otherwise the
    counts of a :class:`~rebench_gym.wrappers.TokenBudget` around ``env`` (estimated or
    reported, as its ``token_source`` entry says); otherwise it is empty.
    """
    from rebench_gym.agents.base import bind_agent
    from rebench_gym.env import ReBenchEnv

    bind_agent(agent, env)
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
    tokens = dict(usage) if isinstance(usage, dict) and usage else _budget_tokens(env)
    return EpisodeResult.from_score_log(
        log,
        env_id=base.task.spec.env_id,
        agent=str(agent_name or getattr(agent, "name", type(agent).__name__)),
        total_reward=total,
        steps=steps,
        started=started,
        terminated=terminated,
        truncated=truncated,
        info=info,
        tokens=tokens,
    )


def _budget_tokens(env: gym.Env[Any, Any]) -> dict[str, Any]:
    """The token counts of the outermost TokenBudget around ``env`` (empty without one)."""
    from rebench_gym.wrappers import TokenBudget

    current: Any = env
    while isinstance(current, gym.Wrapper):
        if isinstance(current, TokenBudget):
            used = current.used()
            tokens: dict[str, Any] = {
                "prompt_tokens": int(used["input_tokens"]),
                "completion_tokens": int(used["output_tokens"]),
                "total_tokens": int(used["total_tokens"]),
                "token_source": current.source,
            }
            if used["cost"] is not None:
                tokens["cost_usd"] = float(used["cost"])
            return tokens
        current = current.env
    return {}
