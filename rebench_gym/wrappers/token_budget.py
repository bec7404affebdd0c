"""TokenBudget: a limit on the tokens (and money) an agent spends, with a usage meter for LLMs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from rebench_gym.errors import UsageError
from rebench_gym.wrappers.budgets import BudgetWrapper, check_budget

#: characters per token of :func:`estimate_tokens` (about right for English and code with
#: OpenAI-style BPE tokenizers)
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """Estimate the tokens of ``text``: one per :data:`CHARS_PER_TOKEN` characters, rounded up.

    An estimate, not a tokenizer: real counts differ by tokenizer and language (typically within
    ±30% for English prose and code). Pass ``counter=`` to :class:`TokenBudget` for exact counts.
    """
    return -(-len(text) // CHARS_PER_TOKEN)


class UsageMeter:
    """Where an LLM agent reports what its model calls really cost.

    Thread-safe. A :class:`TokenBudget` owns one per env and resets it on ``reset``; agents get
    it with ``env.get_wrapper_attr("usage_meter")`` or :func:`find_usage_meter` and call
    :meth:`record` after each model call with the usage the API returned.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._cost: float | None = None
        self.reports = 0

    def record(
        self, *, prompt_tokens: int = 0, completion_tokens: int = 0, cost: float | None = None
    ) -> None:
        """Add one model call's usage.

        Args:
            prompt_tokens: input tokens the call consumed (the API's ``prompt_tokens``).
            completion_tokens: output tokens it produced (the API's ``completion_tokens``).
            cost: what the call cost (any currency, used consistently), if known.

        Raises:
            UsageError: a count is not a whole number >= 0, or the cost is not a number >= 0.
        """
        for name, value in (
            ("prompt_tokens", prompt_tokens),
            ("completion_tokens", completion_tokens),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UsageError(f"{name} must be an int >= 0, not {value!r}")
        cost_value = check_budget("cost", cost, allow_zero=True)
        with self._lock:
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            if cost_value is not None:
                self._cost = (self._cost or 0.0) + cost_value
            self.reports += 1

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens reported so far."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost(self) -> float | None:
        """Total reported cost, or ``None`` if no report gave one."""
        return self._cost

    def reset(self) -> None:
        """Forget everything recorded (a new episode starts)."""
        with self._lock:
            self.prompt_tokens = 0
            self.completion_tokens = 0
            self._cost = None
            self.reports = 0


class TokenBudget(BudgetWrapper, gym.utils.RecordConstructorArgs):
    """End the episode (``truncated=True``) when the agent has spent its token or cost budget.

    Two sources of counts, per episode:

    * **reported** (exact): an agent that calls an LLM reports each call's usage through
      :attr:`usage_meter` (``env.get_wrapper_attr("usage_meter").record(prompt_tokens=...,
      completion_tokens=..., cost=...)``). As soon as one report arrives in an episode, the
      reported numbers are the ones that count.
    * **estimated** (for agents that report nothing): the text of each action counts as output
      tokens, and the text of each observation (reset observation included) as input tokens,
      measured with ``counter`` (default :func:`estimate_tokens`, ~4 characters per token). This
      is an estimate, and for chat agents that resend their history it is a lower bound on the
      real input tokens: each observation is counted once.

    ``max_cost`` counts reported cost only (an estimate has no price); with no cost reported it
    never ends the episode.

    The budget is checked before each action runs (with the tokens spent to produce it) and after
    the step: if a limit is already *exceeded* before the action, the action is not run; if a
    limit is *reached* after a step, the step's result is returned. Either way the episode ends
    with ``truncated=True``, the final state scored by ``env.unwrapped.finish_episode(
    "token_budget")`` and its reward added to the step's, ``info["truncated_by"] ==
    "token_budget"``.

    ``info["token_budget"]`` (at reset and every step): ``source`` ("reported" or "estimated"),
    ``input_tokens``, ``output_tokens``, ``total_tokens``, ``cost``, ``limits`` (the limits set),
    ``left`` (per limit set) and ``exhausted`` (names of the limits reached).
    """

    info_key = "token_budget"
    label = "token budget"

    def __init__(
        self,
        env: gym.Env[Any, Any],
        max_tokens: int | None = None,
        max_input_tokens: int | None = None,
        max_output_tokens: int | None = None,
        max_cost: float | None = None,
        counter: Callable[[str], int] = estimate_tokens,
    ) -> None:
        """Wrap ``env`` with token and cost limits (each ``None`` = no limit).

        Args:
            env: the environment.
            max_tokens: most input plus output tokens per episode.
            max_input_tokens: most input (prompt) tokens per episode.
            max_output_tokens: most output (completion) tokens per episode.
            max_cost: most reported cost per episode.
            counter: ``text -> tokens`` for agents that report no usage (an estimate by default).

        Raises:
            UsageError: a limit is not a number, negative or zero, a token limit is not a whole
                number, or ``counter`` is not callable.
        """
        limits = {
            "max_tokens": check_budget("max_tokens", max_tokens, integer=True),
            "max_input_tokens": check_budget("max_input_tokens", max_input_tokens, integer=True),
            "max_output_tokens": check_budget("max_output_tokens", max_output_tokens, integer=True),
            "max_cost": check_budget("max_cost", max_cost),
        }
        if not callable(counter):
            raise UsageError(f"counter must be a callable text -> int, not {counter!r}")
        recorded: dict[str, Any] = {
            "max_tokens": max_tokens,
            "max_input_tokens": max_input_tokens,
            "max_output_tokens": max_output_tokens,
            "max_cost": max_cost,
        }
        if counter is not estimate_tokens:
            recorded["counter"] = counter
        gym.utils.RecordConstructorArgs.__init__(self, _disable_deepcopy=True, **recorded)
        BudgetWrapper.__init__(self, env)
        self.limits: dict[str, float | int] = {k: v for k, v in limits.items() if v is not None}
        self.counter = counter
        self.usage_meter = UsageMeter()
        self._est_input = 0
        self._est_output = 0
        self._proxy_seen: tuple[int, int, float] = (0, 0, 0.0)

    # ----- counting -------------------------------------------------------------------------------
    def _count(self, text: str) -> int:
        n = self.counter(text)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise UsageError(f"counter must return an int >= 0, but returned {n!r}")
        return n

    @staticmethod
    def _text(value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            return "\n".join(v for v in value.values() if isinstance(v, str))
        return str(value)

    def _begin_episode(self, observation: Any) -> None:
        self.usage_meter.reset()
        self._est_output = 0
        self._est_input = self._count(self._text(observation))
        self._proxy_seen = (0, 0, 0.0)

    def _count_action(self, action: Any) -> None:
        self._est_output += self._count(self._text(action))

    def _count_observation(self, observation: Any) -> None:
        self._est_input += self._count(self._text(observation))
        self._record_proxy_usage()

    def _record_proxy_usage(self) -> None:
        """Record what the episode's LLM proxy (``info["llm_proxy"]``, e.g. RustCodecontests)
        counted since the last step, as a report: calls the agent's own code made count too."""
        get_info = getattr(self.env.unwrapped, "episode_info", None)
        usage = get_info().get("llm_proxy") if callable(get_info) else None
        if not isinstance(usage, dict):
            return
        seen = (
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
            float(usage.get("cost") or 0.0),
        )
        prompt, completion, cost = (a - b for a, b in zip(seen, self._proxy_seen, strict=True))
        if prompt > 0 or completion > 0 or cost > 0:
            self.usage_meter.record(
                prompt_tokens=int(prompt),
                completion_tokens=int(completion),
                cost=float(cost) if usage.get("cost") is not None else None,
            )
            self._proxy_seen = seen

    @property
    def source(self) -> str:
        """``"reported"`` once the agent reported usage this episode, else ``"estimated"``."""
        return "reported" if self.usage_meter.reports else "estimated"

    def used(self) -> dict[str, Any]:
        """Tokens (and cost) spent this episode, from the source that counts."""
        meter = self.usage_meter
        if meter.reports:
            inp, out = meter.prompt_tokens, meter.completion_tokens
        else:
            inp, out = self._est_input, self._est_output
        return {
            "input_tokens": inp,
            "output_tokens": out,
            "total_tokens": inp + out,
            "cost": meter.cost,
        }

    def _amounts(self) -> dict[str, float | int | None]:
        used = self.used()
        return {
            "max_tokens": used["total_tokens"],
            "max_input_tokens": used["input_tokens"],
            "max_output_tokens": used["output_tokens"],
            "max_cost": used["cost"],
        }

    def _overspent(self) -> list[str]:
        amounts = self._amounts()
        return [k for k, lim in self.limits.items() if (amounts[k] or 0) > lim]

    def _used_up(self) -> list[str]:
        amounts = self._amounts()
        return [k for k, lim in self.limits.items() if (amounts[k] or 0) >= lim]

    def state(self) -> dict[str, Any]:
        """The budget's state for ``info``: source, used, limits, left and exhausted limits."""
        used = self.used()
        amounts = self._amounts()
        left = {k: max(0, lim - (amounts[k] or 0)) for k, lim in self.limits.items()}
        return {
            "source": self.source,
            **used,
            "limits": dict(self.limits),
            "left": left,
            "exhausted": [k for k, v in left.items() if v <= 0],
        }


def find_usage_meter(env: gym.Env[Any, Any]) -> UsageMeter | None:
    """The usage meter of the outermost :class:`TokenBudget` around ``env``, or ``None``.

    Lets an agent report usage whether or not the env has a token budget::

        meter = find_usage_meter(env)
        if meter is not None:
            meter.record(prompt_tokens=usage.prompt_tokens, completion_tokens=...)
    """
    current: Any = env
    while isinstance(current, gym.Wrapper):
        if isinstance(current, TokenBudget):
            return current.usage_meter
        current = current.env
    return None
