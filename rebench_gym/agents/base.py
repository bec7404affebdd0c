"""The Agent protocol."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Agent(Protocol):
    """Anything that maps observations to action strings.

    Optional members, used when present:

    * ``bind(env)``: called by :func:`~rebench_gym.rollout` before each episode's ``reset``
      with the (wrapped) env, so an agent can find what it reports to or pauses, e.g.
      :func:`~rebench_gym.wrappers.find_usage_meter` and
      :func:`~rebench_gym.wrappers.pause_budgets`. The agent still acts only through the
      action strings it returns; ``bind`` is not a way around the sandbox.
    * ``usage``: a dict of what an LLM agent spent in the current episode (``prompt_tokens``,
      ``completion_tokens``, ``total_tokens``, ``cost_usd`` if known, ...); it becomes
      ``EpisodeResult.tokens``.
    """

    name: str

    def reset(self, *, seed: int | None = None) -> None: ...

    def act(self, observation: dict[str, str], info: dict[str, Any]) -> str: ...

    def close(self) -> None: ...


def bind_agent(agent: Any, env: Any) -> None:
    """Call ``agent.bind(env)`` if the agent has that optional hook."""
    bind = getattr(agent, "bind", None)
    if callable(bind):
        bind(env)
