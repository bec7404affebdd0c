"""A chat client for any OpenAI-compatible endpoint, built for agents that run under budgets.

:class:`ChatClient` wraps the official ``openai`` SDK (``pip install 'rebench-gym[llm]'``) and
adds what an agent in a RE-Bench episode needs:

* **configuration** from arguments or environment variables (:func:`resolve_config`): model,
  base URL and API key from ``REBENCH_MODEL`` / ``REBENCH_BASE_URL`` / ``REBENCH_API_KEY``,
  falling back to ``OPENAI_MODEL`` / ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``; prices from
  ``REBENCH_PRICE_INPUT`` / ``REBENCH_PRICE_OUTPUT`` (USD per million tokens);
* **retries** with exponential backoff and jitter on rate limits (429), server errors (5xx),
  timeouts, connection errors and malformed replies, honouring ``Retry-After``; every backoff
  sleep runs inside :attr:`ChatClient.pause` so a :class:`~rebench_gym.wrappers.TimeBudget` does
  not charge the agent for it;
* **usage**: the tokens the server reports (and the cost, from prices or a ``usage.cost`` field
  as OpenRouter sends it) go to :attr:`ChatClient.usage_sink` (a
  :class:`~rebench_gym.wrappers.UsageMeter`, say) and into running :attr:`ChatClient.totals`;
* **request logging**: one JSON line per attempt to ``log_path`` (and ``logging`` records on the
  ``rebench_gym.llm`` logger).

Example::

    client = ChatClient(model="gpt-4o-mini")  # key from OPENAI_API_KEY
    result = client.chat([{"role": "user", "content": "Say hi"}])
    result.text, result.prompt_tokens, result.completion_tokens, result.cost
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rebench_gym.errors import ReBenchError, UsageError

logger = logging.getLogger("rebench_gym.llm")

#: HTTP statuses worth retrying: timeouts, conflicts, rate limits and server errors
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class LLMError(ReBenchError):
    """A model call failed for good (retries exhausted, or an error that retrying cannot fix)."""


class UsageSink(Protocol):
    """Where a client reports each call's usage (a :class:`~rebench_gym.wrappers.UsageMeter`)."""

    def record(
        self, *, prompt_tokens: int = 0, completion_tokens: int = 0, cost: float | None = None
    ) -> None: ...


@dataclass(frozen=True)
class LLMConfig:
    """Where and how to call a model.

    Attributes:
        model: the model name the endpoint knows (``gpt-4o``, ``Qwen/Qwen2.5-7B-Instruct``, ...).
        base_url: the API root ending in ``/v1``; ``None`` means OpenAI's own API.
        api_key: the key (never printed: it is left out of ``repr``).
        temperature: sampling temperature; ``None`` leaves the endpoint's default.
        max_tokens: cap on each reply's tokens; ``None`` leaves the endpoint's default.
        timeout_s: seconds one HTTP request may take.
        max_retries: retries after a failed attempt (so at most ``max_retries + 1`` attempts).
        backoff_s: first backoff; it doubles per retry, with jitter, up to ``max_backoff_s``.
        max_backoff_s: longest single wait (a ``Retry-After`` header is capped by it too).
        price_input: USD per million prompt tokens (``None``: unknown).
        price_output: USD per million completion tokens (``None``: unknown).
    """

    model: str
    base_url: str | None = None
    api_key: str = field(default="", repr=False)
    temperature: float | None = None
    max_tokens: int | None = None
    timeout_s: float = 600.0
    max_retries: int = 6
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    price_input: float | None = None
    price_output: float | None = None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for a call with these token counts, if both prices are known."""
        if self.price_input is None or self.price_output is None:
            return None
        return (prompt_tokens * self.price_input + completion_tokens * self.price_output) / 1e6


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _env_float(name: str) -> float | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise UsageError(
            f"{name} must be a number (USD per million tokens), not {value!r}"
        ) from None


def resolve_config(
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    **options: Any,
) -> LLMConfig:
    """Build an :class:`LLMConfig` from arguments, then environment variables.

    Args:
        model: model name; default ``$REBENCH_MODEL``, then ``$OPENAI_MODEL``.
        base_url: API root; default ``$REBENCH_BASE_URL``, then ``$OPENAI_BASE_URL``, then
            OpenAI's API.
        api_key: key; default ``$REBENCH_API_KEY``, then ``$OPENAI_API_KEY``. Local servers
            (vLLM, llama.cpp) that check no key work without one when ``base_url`` is set.
        **options: other :class:`LLMConfig` fields (``temperature``, ``max_retries``, ...);
            ``price_input`` / ``price_output`` default to ``$REBENCH_PRICE_INPUT`` /
            ``$REBENCH_PRICE_OUTPUT``.

    Raises:
        UsageError: no model is named, no key is known for OpenAI's own API, or an option is
            unknown or out of range.
    """
    model = model or _env("REBENCH_MODEL", "OPENAI_MODEL")
    if not model:
        raise UsageError(
            "no model given: pass model=... (CLI: --model) or set REBENCH_MODEL or OPENAI_MODEL"
        )
    base_url = base_url or _env("REBENCH_BASE_URL", "OPENAI_BASE_URL")
    api_key = api_key or _env("REBENCH_API_KEY", "OPENAI_API_KEY")
    if not api_key:
        if base_url is None:
            raise UsageError(
                "no API key: set REBENCH_API_KEY or OPENAI_API_KEY (or give base_url=... for a "
                "local server that needs no key)"
            )
        api_key = "not-needed"
    known = set(LLMConfig.__dataclass_fields__) - {"model", "base_url", "api_key"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(f"unknown LLM option(s) {unknown}; options: {sorted(known)}")
    options.setdefault("price_input", _env_float("REBENCH_PRICE_INPUT"))
    options.setdefault("price_output", _env_float("REBENCH_PRICE_OUTPUT"))
    config = LLMConfig(model=model, base_url=base_url, api_key=api_key, **options)
    if config.max_retries < 0 or config.backoff_s < 0 or config.max_backoff_s < 0:
        raise UsageError("max_retries, backoff_s and max_backoff_s must be >= 0")
    if config.timeout_s <= 0:
        raise UsageError("timeout_s must be > 0")
    return config


@dataclass(frozen=True)
class ChatResult:
    """One successful model call.

    Attributes:
        text: the assistant message's content (empty if the model sent none).
        prompt_tokens: input tokens the server reported.
        completion_tokens: output tokens the server reported.
        cost: USD for the call, if known (prices, or the server's ``usage.cost``).
        model: the model that answered, as the server names it.
        finish_reason: why the model stopped (``stop``, ``length``, ...).
        latency_s: seconds of the successful attempt.
        retries: failed attempts before it.
        usage_reported: whether the server reported usage at all.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    model: str
    finish_reason: str
    latency_s: float
    retries: int
    usage_reported: bool = True

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass
class UsageTotals:
    """Running totals of a client's calls (reset with :meth:`reset`)."""

    calls: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    retry_wait_s: float = 0.0

    def add(self, result: ChatResult) -> None:
        """Count one successful call."""
        self.calls += 1
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        if result.cost is not None:
            self.cost = (self.cost or 0.0) + result.cost

    def reset(self) -> None:
        """Forget everything."""
        self.__init__()  # type: ignore[misc]

    def as_tokens(self) -> dict[str, Any]:
        """The totals in the shape of ``EpisodeResult.tokens`` (cost as ``cost_usd``)."""
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "llm_calls": self.calls,
            "llm_retries": self.retries,
        }
        if self.cost is not None:
            out["cost_usd"] = self.cost
        return out


class _Retryable(Exception):
    """An attempt failed in a way another attempt may fix."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _no_pause() -> AbstractContextManager[None]:
    return contextlib.nullcontext()


class ChatClient:
    """Chat completions over an OpenAI-compatible endpoint, with retries, usage and logging.

    Args:
        config: an :class:`LLMConfig`; or leave it out and give :func:`resolve_config`'s
            arguments (``model=``, ``base_url=``, ...) as keywords.
        log_path: append one JSON line per attempt here (request's last message and size,
            reply, usage, latency, error); ``None``: no file.
        log_messages: log every request's full message list (large: chat history is resent).
        sleep: the sleep function (tests inject one).
        **config_kwargs: passed to :func:`resolve_config` when ``config`` is ``None``.

    Attributes:
        pause: a callable returning a context manager; backoff waits run inside it. Agents set
            it to ``lambda: pause_budgets(env)`` so rate-limit waits do not count against the
            episode's time budget.
        usage_sink: gets ``record(prompt_tokens=, completion_tokens=, cost=)`` after each call
            (``None``: nobody).
        totals: running :class:`UsageTotals`.

    Raises:
        UsageError: the ``openai`` package is missing or the configuration is incomplete.
    """

    def __init__(
        self,
        config: LLMConfig | None = None,
        *,
        log_path: str | os.PathLike[str] | None = None,
        log_messages: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        **config_kwargs: Any,
    ) -> None:
        try:
            import openai
        except ImportError:
            raise UsageError(
                "the LLM agents need the openai package: pip install 'rebench-gym[llm]'"
            ) from None
        self.config = config if config is not None else resolve_config(**config_kwargs)
        self._openai = openai
        self._client = openai.OpenAI(
            base_url=self.config.base_url,
            api_key=self.config.api_key,
            max_retries=0,  # retries are ours: they must pause the time budget
            timeout=self.config.timeout_s,
        )
        self.log_path = Path(log_path) if log_path is not None else None
        self.log_messages = log_messages
        self.sleep = sleep
        self.pause: Callable[[], AbstractContextManager[None]] = _no_pause
        self.usage_sink: UsageSink | None = None
        self.totals = UsageTotals()
        self._log_lock = threading.Lock()
        self._rng = random.Random()

    def __repr__(self) -> str:
        return f"ChatClient(model={self.config.model!r}, base_url={self.config.base_url!r})"

    # ----- the call ----------------------------------------------------------------------------
    def chat(self, messages: Sequence[dict[str, Any]], **kwargs: Any) -> ChatResult:
        """Send ``messages`` and return the reply, retrying what can be retried.

        Args:
            messages: OpenAI chat messages (``{"role": ..., "content": ...}``).
            **kwargs: extra request fields (``temperature``, ``max_tokens``, ``stop``,
                ``extra_body``, ...); they override the configuration's.

        Returns:
            The :class:`ChatResult`; its usage was already reported to :attr:`usage_sink`.

        Raises:
            LLMError: all attempts failed, or the request was refused in a way retrying cannot
                fix (bad key, unknown model, request too large).
        """
        request: dict[str, Any] = {"model": self.config.model, "messages": list(messages)}
        if self.config.temperature is not None:
            request["temperature"] = self.config.temperature
        if self.config.max_tokens is not None:
            request["max_tokens"] = self.config.max_tokens
        request.update(kwargs)
        retries = 0
        while True:
            began = time.monotonic()
            try:
                result = self._attempt(request, retries, began)
            except _Retryable as e:
                latency = time.monotonic() - began
                self._log(request, attempt=retries, latency=latency, error=str(e))
                if retries >= self.config.max_retries:
                    self.totals.failures += 1
                    raise LLMError(
                        f"model call failed after {retries + 1} attempt(s): {e}"
                    ) from None
                wait = self._backoff(retries, e.retry_after)
                logger.warning("model call failed (%s); retrying in %.1f s", e, wait)
                self._wait(wait)
                retries += 1
                self.totals.retries += 1
                continue
            except LLMError as e:
                self._log(request, attempt=retries, latency=time.monotonic() - began, error=str(e))
                self.totals.failures += 1
                raise
            self.totals.add(result)
            if self.usage_sink is not None and result.usage_reported:
                self.usage_sink.record(
                    prompt_tokens=result.prompt_tokens,
                    completion_tokens=result.completion_tokens,
                    cost=result.cost,
                )
            self._log(request, attempt=retries, latency=result.latency_s, result=result)
            return result

    def _attempt(self, request: dict[str, Any], retries: int, began: float) -> ChatResult:
        openai = self._openai
        try:
            response = self._client.chat.completions.create(**request)
        except openai.APIStatusError as e:
            status = int(e.status_code)
            if status in RETRY_STATUSES:
                raise _Retryable(f"HTTP {status}: {_message(e)}", _retry_after(e)) from None
            raise LLMError(
                f"the endpoint refused the request (HTTP {status}): {_message(e)}"
            ) from None
        except (openai.APIConnectionError, openai.APITimeoutError) as e:
            raise _Retryable(f"{type(e).__name__}: {e}") from None
        except (openai.APIResponseValidationError, ValueError) as e:  # JSON that is not a reply
            raise _Retryable(f"malformed reply: {type(e).__name__}: {e}") from None
        latency = time.monotonic() - began
        return self._parse(response, retries, latency)

    def _parse(self, response: Any, retries: int, latency: float) -> ChatResult:
        choices = getattr(response, "choices", None)
        if not choices:
            raise _Retryable("malformed reply: no choices")
        choice = choices[0]
        message = getattr(choice, "message", None)
        if message is None:
            raise _Retryable("malformed reply: a choice without a message")
        content = getattr(message, "content", None)
        if content is not None and not isinstance(content, str):
            raise _Retryable(f"malformed reply: content is {type(content).__name__}")
        text = content or ""
        usage = getattr(response, "usage", None)
        prompt = _count(getattr(usage, "prompt_tokens", None))
        completion = _count(getattr(usage, "completion_tokens", None))
        reported = usage is not None and prompt is not None and completion is not None
        prompt, completion = prompt or 0, completion or 0
        cost = self.config.cost(prompt, completion)
        if cost is None and usage is not None:
            server_cost = (getattr(usage, "model_extra", None) or {}).get("cost")
            if isinstance(server_cost, int | float) and not isinstance(server_cost, bool):
                cost = float(server_cost) if server_cost >= 0 else None
        return ChatResult(
            text=text,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=cost,
            model=str(getattr(response, "model", None) or self.config.model),
            finish_reason=str(getattr(choice, "finish_reason", None) or ""),
            latency_s=latency,
            retries=retries,
            usage_reported=reported,
        )

    # ----- waiting -----------------------------------------------------------------------------
    def _backoff(self, retries: int, retry_after: float | None) -> float:
        cap = self.config.max_backoff_s
        if retry_after is not None:
            return min(max(0.0, retry_after), cap)
        base = self.config.backoff_s * (2**retries)
        return min(cap, base * (0.5 + self._rng.random() / 2))

    def _wait(self, seconds: float) -> None:
        began = time.monotonic()
        with self.pause():
            self.sleep(seconds)
        self.totals.retry_wait_s += time.monotonic() - began

    # ----- logging -----------------------------------------------------------------------------
    def _log(
        self,
        request: dict[str, Any],
        *,
        attempt: int,
        latency: float,
        result: ChatResult | None = None,
        error: str | None = None,
    ) -> None:
        messages = request.get("messages") or []
        if result is not None:
            logger.info(
                "model call: %d prompt + %d completion tokens in %.1f s (%d retries)",
                result.prompt_tokens,
                result.completion_tokens,
                latency,
                attempt,
            )
        if self.log_path is None:
            return
        entry: dict[str, Any] = {
            "time": time.time(),
            "model": request.get("model"),
            "attempt": attempt,
            "latency_s": round(latency, 3),
            "n_messages": len(messages),
            "request_chars": sum(len(str(m.get("content") or "")) for m in messages),
        }
        if self.log_messages:
            entry["messages"] = messages
        elif messages:
            entry["last_message"] = messages[-1]
        if result is not None:
            entry.update(
                ok=True,
                reply=result.text,
                finish_reason=result.finish_reason,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                usage_reported=result.usage_reported,
                cost=result.cost,
            )
        else:
            entry.update(ok=False, error=error)
        line = json.dumps(entry, default=str)
        with self._log_lock:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _message(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(error, "message", None) or error)


def _retry_after(error: Any) -> float | None:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


__all__ = [
    "RETRY_STATUSES",
    "ChatClient",
    "ChatResult",
    "LLMConfig",
    "LLMError",
    "UsageSink",
    "UsageTotals",
    "resolve_config",
]
