"""Agents: the protocol and a factory, ``make(name, **kwargs)``."""

from __future__ import annotations

from typing import Any

from rebench_gym.agents.base import Agent
from rebench_gym.agents.baselines import NoopAgent, RandomAgent, ReferenceAgent, ScriptedAgent
from rebench_gym.errors import UsageError

AGENTS = ("reference", "noop", "random")


def make(name: str, **kwargs: Any) -> Agent:
    """Build the agent ``name``.

    ``reference`` needs ``env_id`` and ``scale``; ``random`` takes ``steps`` and ``score_prob``.
    """
    if name == "reference":
        try:
            return ReferenceAgent(kwargs["env_id"], kwargs.get("scale", "full"))
        except KeyError:
            raise UsageError("the reference agent needs env_id=...") from None
    if name == "noop":
        return NoopAgent()
    if name == "random":
        return RandomAgent(**{k: v for k, v in kwargs.items() if k in ("steps", "score_prob")})
    raise UsageError(f"unknown agent {name!r}; agents: {', '.join(AGENTS)}")


__all__ = ["AGENTS", "Agent", "NoopAgent", "RandomAgent", "ReferenceAgent", "ScriptedAgent", "make"]
