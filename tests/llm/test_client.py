"""The chat client against a local OpenAI-compatible server: usage, cost, retries, logging."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rebench_gym.errors import UsageError
from rebench_gym.llm.client import ChatClient, LLMError, resolve_config
from rebench_gym.llm.scripted_server import ScriptedOpenAIServer, ScriptedReply
from rebench_gym.wrappers import UsageMeter

pytest.importorskip("openai")

HI = [{"role": "user", "content": "hi"}]


def make_client(server: ScriptedOpenAIServer, **options: object) -> ChatClient:
    options.setdefault("backoff_s", 0.01)
    return ChatClient(model="m", base_url=server.base_url, api_key="k", **options)  # type: ignore[arg-type]


def test_reply_usage_and_cost_reach_the_meter_and_the_totals() -> None:
    script = [
        ScriptedReply(content="one", prompt_tokens=1000, completion_tokens=200),
        ScriptedReply(content="two", prompt_tokens=3000, completion_tokens=100),
    ]
    with ScriptedOpenAIServer(script) as server:
        client = make_client(server, price_input=2.5, price_output=10.0)
        meter = UsageMeter()
        client.usage_sink = meter
        first = client.chat(HI)
        second = client.chat(HI, temperature=0.5)
    assert (first.text, second.text) == ("one", "two")
    assert (first.prompt_tokens, first.completion_tokens) == (1000, 200)
    assert first.cost == pytest.approx((1000 * 2.5 + 200 * 10.0) / 1e6)
    assert (meter.prompt_tokens, meter.completion_tokens, meter.reports) == (4000, 300, 2)
    assert meter.cost == pytest.approx((4000 * 2.5 + 300 * 10.0) / 1e6)
    tokens = client.totals.as_tokens()
    assert tokens["prompt_tokens"] == 4000 and tokens["total_tokens"] == 4300
    assert tokens["llm_calls"] == 2 and tokens["cost_usd"] == pytest.approx(meter.cost)
    assert server.requests[1]["temperature"] == 0.5 and server.requests[1]["model"] == "m"


def test_server_reported_cost_is_used_without_prices() -> None:
    body = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10, "cost": 0.25},
    }
    with ScriptedOpenAIServer([ScriptedReply(raw=json.dumps(body).encode())]) as server:
        result = make_client(server).chat(HI)
    assert (result.text, result.prompt_tokens, result.cost) == ("ok", 7, 0.25)


def test_rate_limits_server_errors_and_malformed_replies_are_retried_inside_pause() -> None:
    script = [
        ScriptedReply(status=429, retry_after=0.3),
        ScriptedReply(status=503),
        ScriptedReply(raw=b"{not json"),
        ScriptedReply(raw=b'{"id": "x", "choices": []}'),
        ScriptedReply(content="finally", prompt_tokens=5, completion_tokens=1),
    ]
    waits: list[float] = []
    pauses: list[str] = []

    @contextlib.contextmanager
    def pause() -> Iterator[None]:
        pauses.append("enter")
        yield
        pauses.append("exit")

    def sleep(seconds: float) -> None:
        assert pauses[-1] == "enter", "a backoff wait ran outside the pause"
        waits.append(seconds)

    with ScriptedOpenAIServer(script) as server:
        client = make_client(server, sleep=sleep)
        client.pause = pause
        meter = UsageMeter()
        client.usage_sink = meter
        result = client.chat(HI)
    assert result.text == "finally" and result.retries == 4
    assert len(server.requests) == 5 and len(waits) == 4
    assert waits[0] == pytest.approx(0.3)  # Retry-After is honoured
    assert pauses == ["enter", "exit"] * 4
    assert (meter.reports, meter.prompt_tokens) == (1, 5)  # failed attempts report nothing
    assert client.totals.retries == 4


def test_retries_run_out_and_refusals_are_not_retried(tmp_path: Path) -> None:
    log = tmp_path / "llm.jsonl"
    with ScriptedOpenAIServer([ScriptedReply(raw=b"garbage")] * 3) as server:
        client = make_client(server, max_retries=2, log_path=log)
        with pytest.raises(LLMError, match="after 3 attempt"):
            client.chat(HI)
    assert len(server.requests) == 3 and client.totals.failures == 1
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [entry["ok"] for entry in lines] == [False, False, False]
    assert "malformed reply" in lines[0]["error"]

    with ScriptedOpenAIServer(["never"], api_key="right") as server:
        client = ChatClient(model="m", base_url=server.base_url, api_key="wrong")
        with pytest.raises(LLMError, match="HTTP 401"):
            client.chat(HI)
    assert server.requests == []  # refused before the responder: and not retried


def test_request_log_has_one_line_per_call(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    with ScriptedOpenAIServer(["a", "b"]) as server:
        client = make_client(server, log_path=log)
        client.chat(HI)
        client.chat([*HI, {"role": "assistant", "content": "a"}, {"role": "user", "content": "x"}])
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert first["ok"] and first["reply"] == "a" and first["n_messages"] == 1
    assert second["last_message"] == {"role": "user", "content": "x"}
    assert "messages" not in second  # full histories only with log_messages=True


def test_config_from_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "REBENCH_MODEL",
        "OPENAI_MODEL",
        "REBENCH_BASE_URL",
        "OPENAI_BASE_URL",
        "REBENCH_API_KEY",
        "OPENAI_API_KEY",
        "REBENCH_PRICE_INPUT",
        "REBENCH_PRICE_OUTPUT",
    ):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UsageError, match="no model"):
        resolve_config()
    with pytest.raises(UsageError, match="no API key"):
        resolve_config("gpt-x")
    local = resolve_config("qwen", base_url="http://127.0.0.1:8000/v1")
    assert local.api_key == "not-needed" and "not-needed" not in repr(local)
    monkeypatch.setenv("OPENAI_MODEL", "from-openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("REBENCH_API_KEY", "sk-rebench")
    monkeypatch.setenv("REBENCH_PRICE_INPUT", "3")
    monkeypatch.setenv("REBENCH_PRICE_OUTPUT", "15")
    config = resolve_config(temperature=0.2)
    assert (config.model, config.api_key, config.temperature) == ("from-openai", "sk-rebench", 0.2)
    assert config.cost(1_000_000, 100_000) == pytest.approx(4.5)
    assert "sk-rebench" not in repr(config)
    monkeypatch.setenv("REBENCH_PRICE_INPUT", "cheap")
    with pytest.raises(UsageError, match="REBENCH_PRICE_INPUT"):
        resolve_config()
    with pytest.raises(UsageError, match="unknown LLM option"):
        resolve_config("m", base_url="http://x/v1", temprature=1)
