"""What the budget wrappers share: argument checks and the way a budget ends an episode.

A budget wrapper checks its budget twice per step:

* **before** the action runs: if the budget is already *overspent* (the agent thought past the
  time limit, or the LLM call that produced the action went over the token limit), the action is
  not run;
* **after** the action ran: if the budget is *used up* (nothing left for another step), the step's
  result is returned and the episode ends there.

Either way the episode ends with ``truncated=True`` (never ``terminated``): the wrapper calls
``env.unwrapped.finish_episode(reason)``, which scores the final state when it was never scored,
adds that final reward to the step's reward, and says in ``info["truncated_by"]`` which budget
ended the episode. Each wrapper reports its state (used / left) under its own ``info`` key at
reset and at every step, so stacked budgets do not clash.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym

from rebench_gym.errors import UsageError


def check_budget(name: str, value: Any, *, integer: bool = False, allow_zero: bool = False) -> Any:
    """Validate a budget argument given by the user and return it.

    Args:
        name: the argument's name, for the message.
        value: what the user passed; ``None`` means "no limit" and is returned as is.
        integer: whether the budget counts things (tokens, calls) and must be a whole number.
        allow_zero: whether ``0`` is a meaningful budget (e.g. no score calls at all).

    Returns:
        ``None``, or the value as an ``int`` (``integer``) or ``float``.

    Raises:
        UsageError: the value is not a number, is NaN, negative, zero (unless allowed) or, for
            counts, not a whole number.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(
            f"{name} must be a number, not {type(value).__name__} {value!r}; "
            f"pass e.g. {name}=100 (or None for no limit)"
        )
    if math.isnan(value):
        raise UsageError(f"{name} must be a number, not NaN")
    lowest = "0" if allow_zero else "a positive number"
    if value < 0 or (value == 0 and not allow_zero):
        raise UsageError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, not {value!r}")
    if integer:
        if isinstance(value, float) and (math.isinf(value) or not value.is_integer()):
            raise UsageError(f"{name} must be a whole number ({lowest} or more), not {value!r}")
        return int(value)
    return float(value)


class BudgetWrapper(gym.Wrapper[Any, Any, Any, Any]):
    """Base class of the budget wrappers: the step protocol described in the module docstring.

    Subclasses set :attr:`info_key` and implement :meth:`_begin_episode`, :meth:`_count_action`,
    :meth:`_count_observation`, :meth:`_overspent`, :meth:`_used_up` and :meth:`state`; they may
    override :meth:`_refuse` to turn an action away without ending the episode.
    """

    #: the ``info`` key of this wrapper's state, also the ``truncated_by`` / ``end_reason`` value
    info_key = "budget"
    #: words for the messages ("time budget", "token budget")
    label = "budget"

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        gym.Wrapper.__init__(self, env)
        self._running = False
        self._episode_over = False
        self._last_obs: Any = None

    # ----- hooks for subclasses ---------------------------------------------------------------
    def _begin_episode(self, observation: Any) -> None:
        """Reset the counters at the start of an episode (``observation`` is the reset one)."""

    def _count_action(self, action: Any) -> None:
        """Count what the agent spent to produce ``action`` (called before it runs)."""

    def _count_observation(self, observation: Any) -> None:
        """Count what the step's ``observation`` costs the agent (called after it ran)."""

    def _overspent(self) -> list[str]:
        """Names of the limits that are strictly exceeded (the pending action does not run)."""
        return []

    def _used_up(self) -> list[str]:
        """Names of the limits with nothing left (the episode ends after this step)."""
        return []

    def _refuse(self, action: Any) -> str | None:
        """A message if ``action`` is refused (not run, episode goes on), else ``None``."""
        return None

    def state(self) -> dict[str, Any]:
        """The budget's state for ``info``: limits, used, left."""
        return {}

    # ----- gym API ------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env and this budget's counters; ``info`` carries the fresh state."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._running = True
        self._episode_over = False
        self._last_obs = obs
        self._begin_episode(obs)
        info[self.info_key] = self.state()
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Run ``action`` within the budget; end the episode (truncated) when it runs out."""
        if not self._running:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self._episode_over:
            raise RuntimeError("the episode has ended; call reset()")
        self._count_action(action)
        overspent = self._overspent()
        if overspent:
            return self._end_before_action(overspent)
        refusal = self._refuse(action)
        if refusal is not None:
            return self._refused(refusal)
        obs, reward, terminated, truncated, info = self.env.step(action)
        reward = float(reward)
        self._last_obs = obs
        self._count_observation(obs)
        if terminated or truncated:
            self._episode_over = True
            info[self.info_key] = self.state()
            return obs, reward, terminated, truncated, info
        used_up = self._used_up()
        if used_up:
            final_reward, extra = self._finish()
            reward += final_reward
            info.update(self._episode_info())
            info.update(extra)
            obs = self._with_note(obs, self._ended_note(used_up, extra))
            self._last_obs = obs
            truncated = True
        info[self.info_key] = self.state()
        if truncated:
            info["truncated_by"] = self.info_key
        return obs, reward, terminated, truncated, info

    # ----- helpers ------------------------------------------------------------------------------
    def _end_before_action(
        self, overspent: list[str]
    ) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """End the episode without running the pending action (the budget was overspent)."""
        reward, extra = self._finish()
        info = self._episode_info()
        info.update(extra)
        info["action_not_run"] = True
        info[self.info_key] = self.state()
        info["truncated_by"] = self.info_key
        note = (
            f"[{self.label} used up ({', '.join(overspent)}) before this action ran; "
            "it was not run and the episode ends]"
        )
        if extra.get("final_message"):
            note += " " + str(extra["final_message"])
        obs = self._with_note(self._last_obs, note, replace=True)
        self._last_obs = obs
        return obs, reward, False, True, info

    def _refused(self, message: str) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Answer a refused action: an observation saying why, no reward, episode goes on."""
        info = self._episode_info()
        info["action_refused"] = message
        info[self.info_key] = self.state()
        obs = self._with_note(self._last_obs, message, replace=True)
        self._last_obs = obs
        return obs, 0.0, False, False, info

    def _finish(self) -> tuple[float, dict[str, Any]]:
        """Score the final state through the base env and mark the episode over."""
        self._episode_over = True
        finish = getattr(self.env.unwrapped, "finish_episode", None)
        if finish is None:  # not a ReBenchEnv: nothing to score, just truncate
            return 0.0, {"end_reason": self.info_key}
        reward, extra = finish(self.info_key)
        return float(reward), dict(extra)

    def _episode_info(self) -> dict[str, Any]:
        """The base env's current ``info`` (score log included) and inner budgets' states.

        Used when this wrapper answers a step without stepping the env, so that the ``info`` of
        that step still has everything a normal step's has.
        """
        episode_info = getattr(self.env.unwrapped, "episode_info", None)
        info: dict[str, Any] = dict(episode_info()) if episode_info is not None else {}
        inner: Any = self.env
        while isinstance(inner, gym.Wrapper):
            if isinstance(inner, BudgetWrapper):
                info[inner.info_key] = inner.state()
            inner = inner.env
        return info

    def _ended_note(self, used_up: list[str], extra: dict[str, Any]) -> str:
        note = f"[{self.label} used up ({', '.join(used_up)}); the episode ends]"
        if extra.get("final_message"):
            note += " " + str(extra["final_message"])
        return note

    @staticmethod
    def _with_note(obs: Any, note: str, *, replace: bool = False) -> Any:
        """``obs`` with ``note`` appended to (or replacing) its ``terminal`` text, if it has one."""
        if isinstance(obs, dict) and isinstance(obs.get("terminal"), str):
            obs = dict(obs)
            obs["terminal"] = note if replace else obs["terminal"].rstrip("\n") + "\n" + note
        return obs
