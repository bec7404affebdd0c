"""rollout() reports tokens: the agent's own usage, else the TokenBudget's counts."""

from __future__ import annotations

from typing import Any

from rebench_gym import rollout
from rebench_gym.agents import ScriptedAgent
from rebench_gym.wrappers import TokenBudget

from .conftest import MakeEnv


class BindingAgent(ScriptedAgent):
    """A scripted agent that records the env it was bound to."""

    def __init__(self, actions: list[str]) -> None:
        super().__init__(actions)
        self.bound: Any = None

    def bind(self, env: Any) -> None:
        self.bound = env


def test_rollout_binds_the_agent_and_falls_back_to_the_budget_estimate(
    make_kernel_env: MakeEnv,
) -> None:
    env = TokenBudget(make_kernel_env(), max_tokens=10**6)
    agent = BindingAgent(["rm -rf solution", "echo hello"])
    result = rollout(env, agent, seed=0)
    assert agent.bound is env
    used = env.used()
    assert result.tokens["token_source"] == "estimated"
    assert result.tokens["prompt_tokens"] == used["input_tokens"] > 0
    assert result.tokens["completion_tokens"] == used["output_tokens"] > 0
    bare = rollout(make_kernel_env(), ScriptedAgent(["rm -rf solution"]), seed=0)
    assert bare.tokens == {}  # neither usage nor a budget: nothing to report
