"""Baseline agents: ``reference``, ``noop`` and ``random``.

``reference`` is the scorer's regression test: it writes the task's reference solution through
the env's own actions, scores it and submits, and must reach a normalized score of about 1.
``noop`` scores the starting solution (about 0). ``random`` samples harmless commands and
occasionally scores, for smoke tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rebench_gym.errors import UsageError


class ScriptedAgent:
    """Plays a fixed list of actions, then ``submit``."""

    name = "scripted"

    def __init__(self, actions: list[str]) -> None:
        self.actions = list(actions)
        self._i = 0

    def reset(self, *, seed: int | None = None) -> None:
        self._i = 0

    def act(self, observation: dict[str, str], info: dict[str, Any]) -> str:
        if self._i < len(self.actions):
            self._i += 1
            return self.actions[self._i - 1]
        return "submit"

    def close(self) -> None:
        pass


class ReferenceAgent(ScriptedAgent):
    """Applies the task's reference solution, scores it, submits."""

    name = "reference"

    def __init__(self, env_id: str, scale: str) -> None:
        from rebench_gym.envs.registration import task_name
        from rebench_gym.tasks import get_task

        task = get_task(task_name(env_id))
        if scale not in task.spec.scales:
            raise UsageError(f"scale must be one of {sorted(task.spec.scales)}")
        calls = task.spec.scale(scale).reference_score_calls
        super().__init__([*task.reference_actions(scale), *["score"] * calls])  # type: ignore[arg-type]


class NoopAgent(ScriptedAgent):
    """Scores the starting solution unchanged, then submits."""

    name = "noop"

    def __init__(self) -> None:
        super().__init__(["score"])


class RandomAgent:
    """Harmless random commands from the action space's samples; scores with probability p."""

    name = "random"

    def __init__(self, *, steps: int = 10, score_prob: float = 0.1) -> None:
        if steps < 0 or not 0 <= score_prob <= 1:
            raise UsageError("steps must be >= 0 and score_prob in [0, 1]")
        self.steps = steps
        self.score_prob = score_prob
        self._rng = np.random.default_rng()
        self._i = 0

    def reset(self, *, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)
        self._i = 0

    def act(self, observation: dict[str, str], info: dict[str, Any]) -> str:
        from rebench_gym.spaces import SAFE_COMMANDS

        self._i += 1
        if self._i > self.steps:
            return "submit"
        if self._rng.random() < self.score_prob:
            return "score"
        return str(SAFE_COMMANDS[int(self._rng.integers(len(SAFE_COMMANDS)))])

    def close(self) -> None:
        pass
