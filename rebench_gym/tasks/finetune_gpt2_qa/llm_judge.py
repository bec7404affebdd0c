"""The full scale's judge: any OpenAI-compatible chat-completions endpoint (Llama-3-8B-Instruct by
default) asked which of two responses to an instruction is better.

Configured through the env's ``task_options`` (never put a key there: ``env.spec.kwargs`` are
recorded):

* ``judge_base_url``: the endpoint's base URL, ending in ``/v1`` (default:
  ``$REBENCH_JUDGE_BASE_URL``);
* ``judge_model``: the model name (default ``meta-llama/Meta-Llama-3-8B-Instruct``);
* ``judge_api_key_env``: the name of the environment variable holding the key (default
  ``REBENCH_JUDGE_API_KEY``, then ``OPENAI_API_KEY``);
* ``judge_concurrency``: parallel requests (default 8).

One comparison is one request at temperature 0; the answer's first ``A`` or ``B`` decides, and
an answer with neither is a tie. Rate limits and server errors are retried with backoff.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rebench_gym.errors import UsageError

DEFAULT_MODEL = "meta-llama/Meta-Llama-3-8B-Instruct"
KEY_ENV_DEFAULTS = ("REBENCH_JUDGE_API_KEY", "OPENAI_API_KEY")

SYSTEM = (
    "You are a careful, impartial judge of chatbot answers. You compare two responses to the same "
    "instruction and say which one a user would find more helpful: correct, relevant, clear, and "
    "complete without padding or repetition. Ignore which response is shown first."
)
TEMPLATE = (
    "Instruction:\n{instruction}\n\n"
    "Response A:\n{a}\n\n"
    "Response B:\n{b}\n\n"
    "Which response is better? Reply with the single letter A or B."
)
_VERDICT = re.compile(r"\b([AB])\b")


class JudgeError(RuntimeError):
    """The judge endpoint failed after retries (network, authentication, malformed replies).

    ``str(error)`` may quote the endpoint's reply, which can echo the prompt; :attr:`public` says
    what went wrong without a word of it (what a score message on held-out prompts may carry).
    """

    def __init__(self, message: str, public: str) -> None:
        super().__init__(message)
        self.public = public


@dataclass(frozen=True)
class JudgeConfig:
    """Where the judge is and how to call it (the key itself is read from the environment)."""

    base_url: str
    model: str = DEFAULT_MODEL
    api_key: str | None = field(default=None, repr=False)
    concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 5

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> JudgeConfig:
        """Read ``judge_*`` keys of ``task_options`` (see the module docstring)."""
        base_url = str(
            options.get("judge_base_url") or os.environ.get("REBENCH_JUDGE_BASE_URL") or ""
        )
        if not base_url:
            raise UsageError(
                "FinetuneGPT2QA at full scale needs a judge: gym.make(..., task_options="
                "{'judge_base_url': 'https://HOST/v1', 'judge_model': 'NAME'}) with the key in "
                "$REBENCH_JUDGE_API_KEY (or set REBENCH_JUDGE_BASE_URL)"
            )
        key_envs = [options["judge_api_key_env"]] if options.get("judge_api_key_env") else []
        key = next(
            (os.environ[k] for k in [*key_envs, *KEY_ENV_DEFAULTS] if os.environ.get(k)), None
        )
        if key_envs and not os.environ.get(key_envs[0]):
            raise UsageError(f"task_options names ${key_envs[0]} for the judge's key; it is unset")
        concurrency = int(options.get("judge_concurrency", 8))
        if concurrency < 1:
            raise UsageError("judge_concurrency must be at least 1")
        return cls(
            base_url=base_url.rstrip("/"),
            model=str(options.get("judge_model") or DEFAULT_MODEL),
            api_key=key,
            concurrency=concurrency,
        )

    def public(self) -> dict[str, Any]:
        """The configuration without the key (safe to log)."""
        return {"base_url": self.base_url, "model": self.model, "concurrency": self.concurrency}


class LLMJudge:
    """Pairwise comparisons through an OpenAI-compatible endpoint, with token accounting."""

    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self.requests = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.unparsed = 0

    def compare(self, instruction: str, response_a: str, response_b: str) -> str:
        """``"a"``, ``"b"`` or ``"tie"`` (the reply named neither)."""
        body = {
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {
                    "role": "user",
                    "content": TEMPLATE.format(instruction=instruction, a=response_a, b=response_b),
                },
            ],
            "temperature": 0,
            "max_tokens": 8,
        }
        reply = self._post(body)
        try:
            text = str(reply["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError) as e:
            raise JudgeError(
                f"the judge's reply has no message: {str(reply)[:300]}",
                "the judge's reply has no message",
            ) from e
        usage = reply.get("usage") or {}
        with self._lock:
            self.requests += 1
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(usage.get("completion_tokens") or 0)
        match = _VERDICT.search(text.strip().upper())
        if match is None:
            with self._lock:
                self.unparsed += 1
            return "tie"
        return match.group(1).lower()

    def compare_many(self, items: Sequence[tuple[str, str, str]]) -> list[str]:
        """Compare many (instruction, a, b) triples concurrently, in order."""
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            return list(pool.map(lambda t: self.compare(*t), items))

    def usage(self) -> dict[str, int]:
        """Requests and tokens used so far."""
        with self._lock:
            return {
                "requests": self.requests,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "unparsed_verdicts": self.unparsed,
            }

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        url = f"{self.config.base_url}/chat/completions"
        delay = 1.0
        last = kind = ""
        for attempt in range(self.config.max_retries + 1):
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout_s) as resp:
                    payload = json.loads(resp.read())
                if not isinstance(payload, dict):
                    raise JudgeError(
                        f"the judge answered {str(payload)[:200]!r}, not an object",
                        "the judge's reply is not a JSON object",
                    )
                return payload
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read()[:300].decode(errors='replace')}"
                kind = f"HTTP {e.code}"
                if e.code not in (408, 409, 429) and e.code < 500:
                    raise JudgeError(
                        f"the judge at {url} refused the request ({last})",
                        f"the judge refused the request ({kind})",
                    ) from e
                retry_after = e.headers.get("Retry-After") if e.headers else None
                wait = float(retry_after) if retry_after else delay
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last, kind = f"{type(e).__name__}: {e}", type(e).__name__
                wait = delay
            except json.JSONDecodeError as e:
                last, kind = f"malformed JSON ({e})", "malformed JSON"
                wait = delay
            if attempt < self.config.max_retries:
                time.sleep(min(wait, 30.0))
                delay = min(delay * 2, 30.0)
        raise JudgeError(
            f"the judge at {url} failed after retries: {last}",
            f"the judge failed after {self.config.max_retries} retries ({kind})",
        )
