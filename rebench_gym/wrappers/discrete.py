"""DiscreteCommands and StepBudget: an RE-Bench env as an RL library expects it.

RL libraries such as stable-baselines3 need ``Discrete`` actions and ``Box`` observations. A
:class:`DiscreteCommands` env picks one entry of a command menu per step (a solution variant, a
knob, a check, ``score``, ``submit``); :class:`~rebench_gym.wrappers.EncodeObservation` turns
the text observation into numbers; :class:`StepBudget` keeps episodes short (as a budget: the
final state is scored when it ends the episode). A typical stack::

    env = gym.make("RE-Bench/OptimizeKernel-v0", scale="mini")
    env = StepBudget(env, max_steps=4)
    env = DiscreteCommands(env)          # the task's shipped menu
    env = EncodeObservation(env)         # Box(float32)
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from rebench_gym.errors import UsageError
from rebench_gym.wrappers.budgets import BudgetWrapper, check_budget
from rebench_gym.wrappers.menus import Command, check_commands, load_menu


class DiscreteCommands(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """A ``Discrete(n)`` action space over a menu of ``n`` actions.

    Action ``i`` sends ``commands[i].action`` (any action string the env accepts: a shell
    command, a JSON tool call, ``score``, ``submit``) to the wrapped env. Observations, rewards
    and episode ends are the env's own; ``info`` gains ``command`` (the name) and
    ``command_index``.

    Args:
        env: an RE-Bench env (or any env whose actions are strings).
        commands: ``None`` for the shipped menu of the env's task (see
            :mod:`rebench_gym.wrappers.menus`), a task name or env id for another shipped menu,
            or a sequence of :class:`~rebench_gym.wrappers.menus.Command` objects, plain
            action strings (a string is its own name) and ``{name, action, description}``
            mappings (what ``env.spec`` records, so ``gym.make(env.spec)`` rebuilds the stack).

    Raises:
        UsageError: no menu is shipped for the task, or a command is malformed or repeated.

    Example:
        >>> env = DiscreteCommands(gym.make("RE-Bench/OptimizeKernel-v0", scale="mini"))
        >>> print(env.describe())  # doctest: +SKIP
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        commands: str | Sequence[Command | str | Mapping[str, Any]] | None = None,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, commands=commands)
        gym.Wrapper.__init__(self, env)
        if commands is None:
            task = getattr(env.unwrapped, "task_name", None)
            if not isinstance(task, str):
                raise UsageError(
                    "DiscreteCommands needs commands= for an env that is not an RE-Bench env"
                )
            menu = load_menu(task)
        elif isinstance(commands, str):
            menu = load_menu(commands)
        else:
            menu = check_commands([_as_command(c) for c in commands])
        self.commands: tuple[Command, ...] = menu
        self.action_space = gym.spaces.Discrete(len(menu))

    @property
    def command_names(self) -> list[str]:
        """The commands' names, in action-index order."""
        return [c.name for c in self.commands]

    def action(self, index: Any) -> str:
        """The action string of menu entry ``index``.

        Raises:
            UsageError: ``index`` is not an integer in ``[0, n)``.
        """
        return self.commands[self._index(index)].action

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Run menu entry ``action`` (an integer index) in the wrapped env."""
        index = self._index(action)
        obs, reward, terminated, truncated, info = self.env.step(self.commands[index].action)
        info["command"] = self.commands[index].name
        info["command_index"] = index
        return obs, float(reward), terminated, truncated, info

    def describe(self) -> str:
        """The menu as text: one line per command with its index, name and description."""
        width = max(len(c.name) for c in self.commands)
        return "\n".join(
            f"{i:3d}  {c.name:<{width}}  {c.description}" for i, c in enumerate(self.commands)
        )

    def _index(self, action: Any) -> int:
        if isinstance(action, np.ndarray) and action.size == 1:
            action = action.reshape(()).item()
        if isinstance(action, bool | np.bool_) or not isinstance(action, numbers.Integral):
            raise UsageError(
                f"a DiscreteCommands action is an integer index in [0, {len(self.commands)}), "
                f"not {type(action).__name__} {action!r}"
            )
        index = int(action)
        if not 0 <= index < len(self.commands):
            raise UsageError(f"action index {index} is outside [0, {len(self.commands)})")
        return index


class StepBudget(BudgetWrapper, gym.utils.RecordConstructorArgs):
    """End the episode (``truncated=True``) after ``max_steps`` actions, scoring the final state.

    Gymnasium's ``TimeLimit`` also counts steps, but it truncates without scoring: an RE-Bench
    episode ended by a budget must score its final state (``env.unwrapped.finish_episode``), so
    the last step's reward includes it. ``info["step_budget"]``: ``limit``, ``used``, ``left``.

    Raises:
        UsageError: ``max_steps`` is not a positive whole number.
    """

    info_key = "step_budget"
    label = "step budget"

    def __init__(self, env: gym.Env[Any, Any], max_steps: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, max_steps=max_steps)
        BudgetWrapper.__init__(self, env)
        if max_steps is None:
            raise UsageError("max_steps must be a positive whole number, not None")
        self.max_steps: int = check_budget("max_steps", max_steps, integer=True)
        self._steps = 0

    def _begin_episode(self, observation: Any) -> None:
        self._steps = 0

    def _count_action(self, action: Any) -> None:
        self._steps += 1

    def _used_up(self) -> list[str]:
        return ["max_steps"] if self._steps >= self.max_steps else []

    def state(self) -> dict[str, Any]:
        """Limit, used and left steps."""
        return {
            "limit": self.max_steps,
            "used": self._steps,
            "left": max(0, self.max_steps - self._steps),
        }


def _as_command(item: Command | str | Mapping[str, Any]) -> Command:
    if isinstance(item, Command):
        return item
    if isinstance(item, str):
        return Command(name=item, action=item)
    if isinstance(item, Mapping) and isinstance(item.get("name"), str):  # from env.spec JSON
        return Command(item["name"], str(item.get("action", "")), str(item.get("description", "")))
    raise UsageError(
        f"a command is a Command, a mapping with name/action/description or an action string, "
        f"not {type(item).__name__}"
    )


__all__ = ["DiscreteCommands", "StepBudget"]
