"""The LLM proxy: forwards over a Unix socket, meters tokens and cost, enforces budgets, logs."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from rebench_gym.errors import UsageError
from rebench_gym.llm.proxy import LLMProxy, ProxyConfig, unix_socket_request
from rebench_gym.llm.scripted_server import ScriptedOpenAIServer, ScriptedReply

openai = pytest.importorskip("openai")

UTILS = (
    Path(__file__).resolve().parents[2]
    / "rebench_gym/tasks/rust_codecontests/workspace/rust_codecontests_utils.py"
)


def workspace_utils() -> Any:
    spec = importlib.util.spec_from_file_location("rcc_utils_under_test", UTILS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_forwards_with_key_and_model_counts_usage_and_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KEY", "sk-secret")
    replies = [ScriptedReply(content=["a", "b"], prompt_tokens=100, completion_tokens=40)]
    with ScriptedOpenAIServer(replies, api_key="sk-secret") as upstream:
        config = ProxyConfig.from_options(
            {"base_url": upstream.base_url, "model": "gpt-3.5-turbo-0125", "api_key_env": "MY_KEY"}
        )
        log = tmp_path / "logs" / "calls.jsonl"
        with LLMProxy(tmp_path / "llm.sock", config, log_path=log) as proxy:

            async def call() -> Any:
                client = workspace_utils().make_client(tmp_path / "llm.sock")
                return await client.chat.completions.create(
                    model="whatever", n=2, messages=[{"role": "user", "content": "hi"}]
                )

            reply = asyncio.run(call())
            info = proxy.info()
    assert [c.message.content for c in reply.choices] == ["a", "b"]
    assert upstream.requests[0]["model"] == "gpt-3.5-turbo-0125"
    assert info["requests"] == 1 and info["prompt_tokens"] == 100
    assert info["completion_tokens"] == 40 and info["total_tokens"] == 140
    assert info["cost"] == pytest.approx((100 * 0.5 + 40 * 1.5) / 1e6)
    assert "sk-secret" not in json.dumps(info)
    record = json.loads(log.read_text().splitlines()[0])
    assert record["status"] == 200 and record["requested_model"] == "whatever"
    assert "sk-secret" not in log.read_text()


def test_budget_exhaustion_errors_and_refusals(tmp_path: Path) -> None:
    script = [
        ScriptedReply(content="x", prompt_tokens=30, completion_tokens=30),
        ScriptedReply(status=429, retry_after=3),
    ]
    with ScriptedOpenAIServer(script) as upstream:
        config = ProxyConfig(base_url=upstream.base_url, model="m", max_tokens=50)
        sock = tmp_path / "p.sock"
        with LLMProxy(sock, config) as proxy:
            body = {"messages": [{"role": "user", "content": "q"}]}
            assert unix_socket_request(sock, "POST", "/v1/chat/completions", body)[0] == 200
            status, payload = unix_socket_request(sock, "POST", "/v1/chat/completions", body)
            assert status == 402 and "budget exhausted" in payload["error"]["message"]
            assert proxy.info()["exhausted"] == ["max_tokens"]
            proxy.config = ProxyConfig(base_url=upstream.base_url, model="m")
            assert unix_socket_request(sock, "POST", "/v1/chat/completions", body)[0] == 429
            stream = {**body, "stream": True}
            assert unix_socket_request(sock, "POST", "/v1/chat/completions", stream)[0] == 400
            assert unix_socket_request(sock, "POST", "/v1/other", body)[0] == 404
            status, models = unix_socket_request(sock, "GET", "/v1/models")
            assert status == 200 and models["data"][0]["id"] == "m"
            info = proxy.info()
    assert info["requests"] == 2 and info["errors"] == 1 and info["refused"] == 2
    assert len(upstream.requests) == 2


def test_unconfigured_endpoint_and_bad_options(tmp_path: Path) -> None:
    sock = tmp_path / "p.sock"
    with LLMProxy(sock, ProxyConfig.from_options({})) as proxy:
        status, payload = unix_socket_request(
            sock, "POST", "/v1/chat/completions", {"messages": []}
        )
        assert status == 503 and "task_options" in payload["error"]["message"]
        assert proxy.info()["requests"] == 0
    assert not sock.exists()
    with pytest.raises(UsageError, match="api_key_env"):
        ProxyConfig.from_options({"api_key": "sk-leak"})
    with pytest.raises(UsageError, match="max_tokens"):
        ProxyConfig.from_options({"max_tokens": -1})
    with pytest.raises(UsageError, match="prices"):
        LLMProxy(sock, ProxyConfig(model="unknown-model", max_cost=1.0))
