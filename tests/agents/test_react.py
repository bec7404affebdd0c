"""The react agent in a real mini episode against a local OpenAI-compatible server."""

from __future__ import annotations

import json
import time

import pytest

from rebench_gym import agents, rollout
from rebench_gym.agents.llm_base import NOOP_ACTION
from rebench_gym.agents.react import ReactAgent
from rebench_gym.llm.scripted_server import ScriptedOpenAIServer, ScriptedReply
from rebench_gym.wrappers import TimeBudget, TokenBudget

from .conftest import MakeEnv

pytest.importorskip("openai")


def reply(content: str, prompt: int, completion: int) -> ScriptedReply:
    return ScriptedReply(content=content, prompt_tokens=prompt, completion_tokens=completion)


def last_user(request: dict) -> str:
    return str(request["messages"][-1]["content"])


def test_react_episode_actions_tokens_retries_and_malformed_replies(
    make_kernel_env: MakeEnv,
) -> None:
    script = [
        reply(
            "Look first.\n<bash>rm -rf solution && echo hello-from-bash > notes.txt && "
            "cat notes.txt</bash>",
            1000,
            20,
        ),
        ScriptedReply(status=429, retry_after=1.0),  # rate limited: waits 1 s, paused
        ScriptedReply(status=500),
        reply("<python>\nprint(sum(range(10)))\n</python>", 1100, 15),
        ScriptedReply(raw=b"{this is not json"),  # malformed: retried
        reply("I think I am done here.", 1200, 8),  # no tool call: asked again
        reply('<write_file path="notes2.txt">\nline one\n</write_file>', 1300, 12),
        reply('<bash timeout="20">seq 1 3000</bash>', 1400, 10),
        reply("<score/>", 1500, 3),
        reply("All done.\n<submit/>", 1600, 4),
    ]
    with ScriptedOpenAIServer(script) as server:
        base = make_kernel_env()
        time_budget = TimeBudget(base, seconds=3600)
        token_budget = TokenBudget(time_budget, max_tokens=1_000_000)
        agent = agents.make(
            "react",
            model="scripted",
            base_url=server.base_url,
            api_key="test-key",
            llm_options={"backoff_s": 0.05},
            env_id="RE-Bench/OptimizeKernel-v0",  # generic kwargs are accepted and ignored
            scale="mini",
        )
        began = time.monotonic()
        result = rollout(token_budget, agent, seed=0)
        wall = time.monotonic() - began
        workspace = base.unwrapped.workspace  # type: ignore[attr-defined]
        notes = (workspace / "notes.txt").read_text()
        notes2 = (workspace / "notes2.txt").read_text()
        used = token_budget.used()
        timing = time_budget.state()
    requests = server.requests

    # every scripted reply was asked for, and each action reached the env
    assert len(requests) == len(script)
    assert result.terminated and result.steps == 6
    assert notes == "hello-from-bash\n" and notes2 == "line one\n"
    assert "hello-from-bash" in last_user(requests[3])
    assert "45" in last_user(requests[5])  # the python tool's output
    assert "no tool call" in last_user(requests[6])  # the model is told what was wrong
    assert "[wrote 9 bytes to notes2.txt]" in last_user(requests[7])
    long_output = last_user(requests[8])
    assert long_output.startswith("1\n2\n3\n") and "characters omitted" in long_output
    assert "\n3000\n" in long_output and "\n1500\n" not in long_output
    assert "no solution/ directory" in last_user(requests[9])  # the score action ran
    assert len(result.score_log) == 1 and not result.score_log[0]["valid"]
    # the model sees its time used and left
    assert "time used" in last_user(requests[3]) and "left" in last_user(requests[3])
    assert "time used" in requests[0]["messages"][1]["content"]
    assert "Optimize a Kernel" in requests[0]["messages"][1]["content"]  # the instructions

    # the tokens the server reported are the tokens the budget counted
    prompt = sum(r.prompt_tokens or 0 for r in script if r.status == 200 and r.raw is None)
    completion = sum(r.completion_tokens or 0 for r in script if r.status == 200 and r.raw is None)
    assert (prompt, completion) == (9100, 72)
    assert used["input_tokens"] == prompt and used["output_tokens"] == completion
    assert token_budget.source == "reported"
    assert result.tokens["prompt_tokens"] == prompt
    assert result.tokens["completion_tokens"] == completion
    assert result.tokens["llm_retries"] == 3

    # the retry waits (>= 1 s Retry-After plus backoffs) were not charged to the time budget
    waited = agent.client.totals.retry_wait_s  # type: ignore[attr-defined]
    assert waited >= 1.0
    assert timing["paused_s"] == pytest.approx(waited, abs=0.2)
    assert timing["used_s"] <= wall - 1.0


def test_failed_model_calls_give_noop_steps_then_submit() -> None:
    with ScriptedOpenAIServer([ScriptedReply(raw=b"garbage")] * 4) as server:
        agent = ReactAgent(
            "m",
            server.base_url,
            "k",
            llm_options={"max_retries": 1, "backoff_s": 0.01},
            max_api_failures=2,
        )
        agent.reset()
        obs = {"terminal": "Do the task.", "files": "solution/"}
        first = agent.act(obs, {})
        second = agent.act({"terminal": "[exit code 0]", "files": ""}, {})
    assert first == NOOP_ACTION and second == "submit"
    assert len(server.requests) == 4
    # the model is told the previous step ran nothing, in one user turn (roles alternate)
    assert "failed" in agent.messages[-1]["content"]
    assert [m["role"] for m in server.requests[3]["messages"]] == ["system", "user"]
    assert "[exit code 0]" in server.requests[3]["messages"][1]["content"]


def test_bad_tool_calls_are_explained_and_context_is_bounded() -> None:
    script = ['<bash timeout="never">ls</bash>', "<bash>ls</bash><score/>", "<submit/>"]
    with ScriptedOpenAIServer(script) as server:
        agent = ReactAgent("m", server.base_url, "k", max_context_chars=6000)
        agent.reset()
        action = agent.act({"terminal": "Task " + "x" * 1500, "files": ""}, {})
        assert json.loads(action) == {"tool": "bash", "command": "ls"}
        for _ in range(4):
            agent.messages.append({"role": "assistant", "content": "y" * 900})
            agent.messages.append({"role": "user", "content": "z" * 900})
        assert agent.act({"terminal": "out", "files": ""}, {}) == "submit"
    assert "timeout" in last_user(server.requests[1])  # why the first call could not run
    assert "only the first of your 2 tool calls" in last_user(server.requests[2])
    bounded = server.requests[2]["messages"]
    assert bounded[1]["content"].startswith("Task ")  # the instructions are always kept
    assert sum(len(m["content"]) for m in bounded) <= 6000
    assert sum(len(m["content"]) for m in agent.messages) > 6000  # nothing lost in the agent
    assert "dropped to fit the context window" in json.dumps(bounded)


def test_a_context_length_refusal_shrinks_the_context_and_retries() -> None:
    def responder(body: dict) -> ScriptedReply | str:
        size = sum(len(m["content"]) for m in body["messages"])
        if size > 25_000:
            return ScriptedReply(
                status=400, error="This model's maximum context length is 6000 tokens."
            )
        return "<submit/>"

    with ScriptedOpenAIServer(responder) as server:
        agent = ReactAgent("m", server.base_url, "k")
        agent.reset()
        agent.messages = [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "task"},
        ]
        for _ in range(20):
            agent.messages.append({"role": "assistant", "content": "a" * 1000})
            agent.messages.append({"role": "user", "content": "b" * 1000})
        assert agent.act({"terminal": "out", "files": ""}, {}) == "submit"
    sizes = [sum(len(m["content"]) for m in r["messages"]) for r in server.requests]
    assert len(sizes) == 2 and sizes[0] > 25_000 >= sizes[1]
