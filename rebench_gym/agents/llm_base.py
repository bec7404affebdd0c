"""What the LLM agents share: the chat client, binding to the env, usage, status lines."""

from __future__ import annotations

from typing import Any

from rebench_gym.llm.client import ChatClient, ChatResult, LLMConfig, LLMError, resolve_config

#: a no-op shell command an agent sends when it has nothing to run (a failed model call, a reply
#: without a tool call): the env steps, so budgets are still checked, and nothing changes
NOOP_ACTION = ": # no action: the model's reply held no usable tool call"


def make_client(
    client: ChatClient | None,
    *,
    model: str | None,
    base_url: str | None,
    api_key: str | None,
    llm_log: str | None,
    llm_options: dict[str, Any] | None,
) -> ChatClient:
    """``client`` itself, or a new :class:`ChatClient` from the other arguments."""
    if client is not None:
        return client
    config: LLMConfig = resolve_config(model, base_url, api_key, **dict(llm_options or {}))
    return ChatClient(config, log_path=llm_log)


class LLMAgentBase:
    """Base of the LLM agents: owns the client, binds it to the env, reports usage.

    Subclasses implement ``reset`` (calling :meth:`_reset_usage`) and ``act``.
    """

    name = "llm"

    def __init__(self, client: ChatClient) -> None:
        self.client = client
        self.env: Any = None

    # ----- Agent protocol hooks ---------------------------------------------------------------
    def bind(self, env: Any) -> None:
        """Report usage to the env's TokenBudget and pause its TimeBudget during API waits."""
        from rebench_gym.wrappers import find_usage_meter, pause_budgets

        self.env = env
        self.client.usage_sink = find_usage_meter(env)
        self.client.pause = lambda: pause_budgets(env)

    @property
    def usage(self) -> dict[str, Any]:
        """What the model calls of the current episode cost (``EpisodeResult.tokens``)."""
        return self.client.totals.as_tokens()

    def close(self) -> None:
        """Nothing to release (the HTTP client closes with the process)."""

    def _reset_usage(self) -> None:
        self.client.totals.reset()

    def _chat(self, messages: list[dict[str, Any]]) -> ChatResult | None:
        """One model call; ``None`` (and the error remembered) if it failed for good."""
        try:
            result = self.client.chat(messages)
        except LLMError as e:
            self.last_error = str(e)
            return None
        self.last_error = ""
        return result

    last_error = ""


def status_line(info: dict[str, Any], steps: int) -> str:
    """A one-line summary of the episode's state for the model: time, tokens, score calls."""
    parts: list[str] = []
    budget = info.get("time_budget")
    if isinstance(budget, dict) and budget.get("limit_s") is not None:
        parts.append(
            f"time used {format_duration(budget.get('used_s', 0.0))} of "
            f"{format_duration(budget['limit_s'])} ({format_duration(budget.get('left_s', 0.0))}"
            " left)"
        )
        if budget.get("max_score_calls") is not None:
            parts.append(f"score calls left {budget.get('score_calls_left')}")
    elif info.get("elapsed_s") is not None:
        parts.append(f"time used {format_duration(float(info['elapsed_s']))} (no time limit set)")
    tokens = info.get("token_budget")
    if isinstance(tokens, dict):
        text = f"tokens used {tokens.get('total_tokens', 0):,}"
        limit = (tokens.get("limits") or {}).get("max_tokens")
        if limit is not None:
            text += f" of {limit:,}"
        parts.append(text)
    log = info.get("score_log")
    if isinstance(log, list):
        parts.append(f"score calls so far {len(log)}")
    best = info.get("best_normalized")
    if best is not None and log:
        parts.append(f"best normalized score {best:.3f}")
    parts.append(f"step {steps}")
    return "[" + " | ".join(parts) + "]"


def format_duration(seconds: Any) -> str:
    """``3725`` -> ``"1h 2m 5s"``."""
    try:
        total = max(0, round(float(seconds)))
    except (TypeError, ValueError):
        return "?"
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h {m}m {s}s"
    if m:
        return f"{m}m {s}s"
    return f"{s}s"


def time_left_s(info: dict[str, Any]) -> float | None:
    """Seconds left in the episode's time budget, if it has one."""
    budget = info.get("time_budget")
    if isinstance(budget, dict) and budget.get("left_s") is not None:
        return float(budget["left_s"])
    return None


__all__ = [
    "NOOP_ACTION",
    "LLMAgentBase",
    "format_duration",
    "make_client",
    "status_line",
    "time_left_s",
]
