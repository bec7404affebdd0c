"""Agents: the protocol and a factory, ``make(name, **kwargs)``."""

from __future__ import annotations

from typing import Any

from rebench_gym.agents.base import Agent
from rebench_gym.agents.baselines import NoopAgent, RandomAgent, ReferenceAgent, ScriptedAgent
from rebench_gym.errors import UsageError

AGENTS = ("reference", "noop", "random", "react", "aide")
#: the agents that call a model (they take model=, base_url=, ... and need the ``llm`` extra)
LLM_AGENTS = ("react", "aide")
#: keyword arguments every agent accepts and the LLM agents ignore (the CLI passes them to all)
_GENERIC_KWARGS = ("env_id", "scale")


def make(name: str, **kwargs: Any) -> Agent:
    """Build the agent ``name``.

    ``reference`` needs ``env_id`` and ``scale``; ``random`` takes ``steps`` and ``score_prob``;
    ``react`` and ``aide`` take ``model``, ``base_url``, ``api_key`` (defaults from
    ``REBENCH_*`` / ``OPENAI_*`` environment variables), ``llm_log``, ``llm_options`` and their
    own options (:class:`~rebench_gym.agents.react.ReactAgent`,
    :class:`~rebench_gym.agents.aide.AideAgent`).
    """
    if name in LLM_AGENTS:
        return _make_llm_agent(name, {k: v for k, v in kwargs.items() if k not in _GENERIC_KWARGS})
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


def _make_llm_agent(name: str, kwargs: dict[str, Any]) -> Agent:
    import inspect

    if name == "react":
        from rebench_gym.agents.react import ReactAgent as cls
    else:
        from rebench_gym.agents.aide import AideAgent as cls  # type: ignore[assignment]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise UsageError(
            f"agent {name!r} takes no argument(s) {unknown}; it takes {sorted(accepted)}"
        )
    return cls(**kwargs)


__all__ = [
    "AGENTS",
    "LLM_AGENTS",
    "Agent",
    "NoopAgent",
    "RandomAgent",
    "ReferenceAgent",
    "ScriptedAgent",
    "make",
]
