"""`rebench run --agent react|aide`: endpoint flags, environment defaults, usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rebench_gym.cli import main
from rebench_gym.llm.scripted_server import ScriptedOpenAIServer, ScriptedReply

pytest.importorskip("openai")

ENV_VARS = (
    "REBENCH_MODEL",
    "OPENAI_MODEL",
    "REBENCH_BASE_URL",
    "OPENAI_BASE_URL",
    "REBENCH_API_KEY",
    "OPENAI_API_KEY",
)


def test_llm_agent_without_model_or_key_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    argv = [
        "run",
        "RE-Bench/OptimizeKernel-v0",
        "--agent",
        "react",
        "--scale",
        "mini",
        "--db",
        str(tmp_path / "runs.db"),
    ]
    assert main(argv) == 2
    assert "no model given" in capsys.readouterr().err
    assert main([*argv, "--model", "gpt-x"]) == 2
    assert "REBENCH_API_KEY" in capsys.readouterr().err
    assert not (tmp_path / "runs.db").exists()  # nothing recorded for a run that cannot start


@pytest.mark.slow
def test_rebench_run_react_against_an_endpoint_from_environment_variables(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    script = [
        ScriptedReply(
            content="<bash>rm -rf solution</bash>", prompt_tokens=700, completion_tokens=9
        ),
        ScriptedReply(content="<submit/>", prompt_tokens=800, completion_tokens=3),
    ]
    with ScriptedOpenAIServer(script, api_key="secret-key") as server:
        monkeypatch.setenv("REBENCH_BASE_URL", server.base_url)
        monkeypatch.setenv("REBENCH_API_KEY", "secret-key")
        log = tmp_path / "llm.jsonl"
        code = main(
            [
                "run",
                "RE-Bench/OptimizeKernel-v0",
                "--agent",
                "react",
                "--model",
                "scripted",
                "--scale",
                "mini",
                "--sandbox",
                "local",
                "--token-budget",
                "100000",
                "--llm-log",
                str(log),
                "--db",
                str(tmp_path / "runs.db"),
                "--json",
            ]
        )
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    result = json.loads(captured.out)[0]
    assert result["agent"] == "react:scripted"  # the model is part of the leaderboard label
    assert result["steps"] == 2 and result["terminated"]
    assert result["tokens"]["prompt_tokens"] == 1500
    assert result["tokens"]["completion_tokens"] == 12
    assert len(server.requests) == 2 and server.requests[0]["model"] == "scripted"
    assert [json.loads(line)["ok"] for line in log.read_text().splitlines()] == [True, True]
    assert "secret-key" not in log.read_text()
