"""TimeBudget: RE-Bench's wall-clock limit, with pauses for API waits and a score-call limit."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym

from rebench_gym import actions as act
from rebench_gym.errors import ActionError, UsageError
from rebench_gym.wrappers.budgets import BudgetWrapper, check_budget


class TimeBudget(BudgetWrapper, gym.utils.RecordConstructorArgs):
    """End the episode (``truncated=True``) when its wall-clock budget is used up.

    Modelled on Gymnasium's ``TimeLimit``, but it counts seconds, not steps. As in the RE-Bench
    paper the clock runs from the end of ``reset`` and includes the agent's own thinking time
    (the time between steps), not only the time actions take. Waits that are not the agent's
    fault (API rate limits, retries after server errors) can be excluded with :meth:`paused`::

        with env.get_wrapper_attr("paused")():
            time.sleep(backoff)

    or, without knowing which wrappers the env has, with
    :func:`rebench_gym.wrappers.pause_budgets`.

    The budget is checked before each action runs and after it returned:

    * if it ran out while the agent was thinking, the pending action is **not run**;
    * if it ran out while the action ran (a long command or score call), the action's result is
      returned;

    and in both cases the episode ends there: ``truncated=True``, the final state is scored by
    ``env.unwrapped.finish_episode("time_budget")`` (the step's reward includes that final
    reward), ``info["truncated_by"] == "time_budget"``. A running command is not cut short by
    the budget (the env's ``command_timeout`` bounds it), so an episode may overrun its budget
    by at most one action.

    Score calls: with ``max_score_calls`` set, a score call beyond the limit is **refused**: it
    is not run, the observation says so, the reward is 0 and the episode goes on (the agent can
    still work and ``submit``; the final state is still scored when the episode ends). ``submit``
    and the final scoring do not count as score calls.

    ``info["time_budget"]`` (at reset and every step): ``limit_s``, ``used_s``, ``left_s``,
    ``paused_s``, ``score_calls``, ``max_score_calls``, ``score_calls_left``.

    Example:
        >>> import gymnasium as gym, rebench_gym
        >>> from rebench_gym.wrappers import TimeBudget
        >>> env = TimeBudget(gym.make("RE-Bench/OptimizeKernel-v0", scale="mini"), 8 * 3600)
    """

    info_key = "time_budget"
    label = "time budget"

    def __init__(
        self,
        env: gym.Env[Any, Any],
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_score_calls: int | None = None,
    ) -> None:
        """Wrap ``env`` with a wall-clock budget.

        Args:
            env: the environment (usually a ``RE-Bench/*`` env from ``gym.make``).
            seconds: the budget in seconds, from the end of ``reset``; must be > 0.
            clock: a monotonic clock returning seconds (inject one in tests).
            max_score_calls: most score calls per episode (``None``: no limit; ``0``: none).

        Raises:
            UsageError: a budget is not a number, negative or zero, or ``clock`` is not callable.
        """
        if seconds is None:
            raise UsageError("seconds must be a number: the budget in seconds, e.g. 8 * 3600")
        limit = check_budget("seconds", seconds)
        max_calls = check_budget("max_score_calls", max_score_calls, integer=True, allow_zero=True)
        if not callable(clock):
            raise UsageError(f"clock must be a callable returning seconds, not {clock!r}")
        recorded: dict[str, Any] = {"seconds": seconds, "max_score_calls": max_score_calls}
        if clock is not time.monotonic:
            recorded["clock"] = clock
        gym.utils.RecordConstructorArgs.__init__(self, _disable_deepcopy=True, **recorded)
        BudgetWrapper.__init__(self, env)
        self.seconds: float = limit
        self.max_score_calls: int | None = max_calls
        self.clock = clock
        self._lock = threading.Lock()
        self._started = 0.0
        self._paused_total = 0.0
        self._pause_depth = 0
        self._pause_began = 0.0
        self._score_calls = 0

    # ----- pausing ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Exclude the time spent inside this ``with`` block from the budget.

        For waits the agent is not to blame for: API rate limits, retries after server errors.
        Pauses may nest and may come from other threads; overlapping pauses count once.
        """
        with self._lock:
            self._pause_depth += 1
            if self._pause_depth == 1:
                self._pause_began = self.clock()
        try:
            yield
        finally:
            with self._lock:
                self._pause_depth -= 1
                if self._pause_depth == 0:
                    self._paused_total += max(0.0, self.clock() - self._pause_began)

    def _paused_s(self) -> float:
        with self._lock:
            total = self._paused_total
            if self._pause_depth > 0:
                total += max(0.0, self.clock() - self._pause_began)
        return total

    @property
    def used_s(self) -> float:
        """Seconds of the budget spent so far this episode (paused time excluded)."""
        if not self._running:
            return 0.0
        return max(0.0, self.clock() - self._started - self._paused_s())

    @property
    def left_s(self) -> float:
        """Seconds of the budget left (never negative)."""
        return max(0.0, self.seconds - self.used_s)

    # ----- BudgetWrapper hooks --------------------------------------------------------------------
    def _begin_episode(self, observation: Any) -> None:
        with self._lock:
            self._started = self.clock()
            self._paused_total = 0.0
            if self._pause_depth > 0:  # reset inside a pause: the pause goes on from now
                self._pause_began = self._started
        self._score_calls = 0

    def _overspent(self) -> list[str]:
        return ["seconds"] if self.used_s > self.seconds else []

    def _used_up(self) -> list[str]:
        return ["seconds"] if self.used_s >= self.seconds else []

    def _refuse(self, action: Any) -> str | None:
        if self.max_score_calls is None or not _is_score(action):
            return None
        if self._score_calls >= self.max_score_calls:
            return (
                f"[score refused] this episode's limit of {self.max_score_calls} score calls is "
                "used up; keep working and submit when done (the final state is scored then)"
            )
        self._score_calls += 1
        return None

    def state(self) -> dict[str, Any]:
        """The budget's state for ``info``: limit, used, left, paused time and score calls."""
        used = self.used_s
        calls_left = (
            None if self.max_score_calls is None else self.max_score_calls - self._score_calls
        )
        return {
            "limit_s": self.seconds,
            "used_s": round(used, 3),
            "left_s": round(max(0.0, self.seconds - used), 3),
            "paused_s": round(self._paused_s(), 3),
            "score_calls": self._score_calls,
            "max_score_calls": self.max_score_calls,
            "score_calls_left": calls_left,
        }

    def _ended_note(self, used_up: list[str], extra: dict[str, Any]) -> str:
        note = f"[time budget used up: {self.used_s:.1f} s of {self.seconds:g} s; the episode ends]"
        if extra.get("final_message"):
            note += " " + str(extra["final_message"])
        return note


def _is_score(action: Any) -> bool:
    try:
        return isinstance(act.parse_action(action), act.Score)
    except ActionError:
        return False


@contextlib.contextmanager
def pause_budgets(env: gym.Env[Any, Any]) -> Iterator[None]:
    """Pause every :class:`TimeBudget` wrapped around ``env`` for the ``with`` block.

    A no-op for an env without one, so agents can use it unconditionally around API waits::

        with pause_budgets(env):
            time.sleep(retry_after)
    """
    with contextlib.ExitStack() as stack:
        current: Any = env
        while isinstance(current, gym.Wrapper):
            if isinstance(current, TimeBudget):
                stack.enter_context(current.paused())
            current = current.env
        yield
