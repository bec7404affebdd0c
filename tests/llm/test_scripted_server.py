"""The scripted OpenAI-compatible server answers the official SDK like a real endpoint."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from rebench_gym.errors import UsageError
from rebench_gym.llm.scripted_server import ScriptedOpenAIServer, ScriptedReply

openai = pytest.importorskip("openai")


def test_sdk_gets_scripted_replies_in_order_with_usage() -> None:
    with ScriptedOpenAIServer(["one", ScriptedReply(content="two", completion_tokens=7)]) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        first = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x" * 40}]
        )
        second = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": ""}]
        )
        with pytest.raises(openai.InternalServerError, match="script exhausted"):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": ""}])
    assert first.choices[0].message.content == "one"
    assert first.usage is not None and first.usage.prompt_tokens == 10
    assert first.usage.completion_tokens == 1
    assert second.choices[0].message.content == "two"
    assert second.usage is not None and second.usage.completion_tokens == 7
    assert [r["messages"][0]["content"] for r in srv.requests] == ["x" * 40, "", ""]


def test_responder_sees_request_and_n_choices() -> None:
    def responder(body: dict) -> ScriptedReply:
        return ScriptedReply(content=[f"{body['model']}-{i}" for i in range(body.get("n", 1))])

    with ScriptedOpenAIServer(responder) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="k")
        out = client.chat.completions.create(
            model="gen", n=3, messages=[{"role": "user", "content": "hi"}]
        )
    assert [c.message.content for c in out.choices] == ["gen-0", "gen-1", "gen-2"]


def test_errors_are_http_errors_and_sdk_retries_them() -> None:
    script = [ScriptedReply(status=429, retry_after=0), ScriptedReply(status=500), "ok"]
    with ScriptedOpenAIServer(script) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=2)
        out = client.chat.completions.create(model="m", messages=[{"role": "user", "content": ""}])
    assert out.choices[0].message.content == "ok"
    assert len(srv.requests) == 3


def test_api_key_malformed_requests_and_raw_replies() -> None:
    with ScriptedOpenAIServer([ScriptedReply(raw=b"{not json")], api_key="secret") as srv:
        url = srv.base_url + "/chat/completions"
        bad_key = urllib.request.Request(url, data=b"{}", headers={"Authorization": "Bearer no"})
        with pytest.raises(urllib.error.HTTPError) as e401:
            urllib.request.urlopen(bad_key, timeout=5)
        assert e401.value.code == 401
        auth = {"Authorization": "Bearer secret"}
        with pytest.raises(urllib.error.HTTPError) as e400:
            urllib.request.urlopen(urllib.request.Request(url, data=b"[", headers=auth), timeout=5)
        assert e400.value.code == 400
        body = json.dumps({"messages": []}).encode()
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=auth)) as r:
            assert r.read() == b"{not json"
        with urllib.request.urlopen(
            urllib.request.Request(srv.base_url + "/models", headers=auth), timeout=5
        ) as r:
            assert json.loads(r.read())["data"][0]["id"] == "scripted-model"


def test_script_must_hold_replies() -> None:
    with pytest.raises(UsageError):
        ScriptedOpenAIServer([1, 2])  # type: ignore[list-item]
