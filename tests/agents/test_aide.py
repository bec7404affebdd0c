"""The aide agent's tree search in a real mini episode against a local OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rebench_gym
from rebench_gym import agents, rollout
from rebench_gym.llm.scripted_server import ScriptedOpenAIServer

from .conftest import MakeEnv

pytest.importorskip("openai")

START = (
    Path(rebench_gym.__file__).parent / "tasks/optimize_kernel/workspace/solution/solution.py"
).read_text()
FIXED = START.replace("import torch\n", "import torch\n\n# fixed by the debug node\n", 1)
BROKEN = "import torch\n\n\ndef prefix_sum(x):\n    raise RuntimeError('draft bug')\n"
WORSE = FIXED.replace("# fixed by the debug node", "# an 'improvement' whose check fails")


def node_reply(plan: str, content: str, command: str) -> str:
    return (
        f'<plan>{plan}</plan>\n<write_file path="solution/solution.py">\n{content}</write_file>\n'
        f"<bash>{command}</bash>"
    )


@pytest.mark.slow
def test_aide_drafts_debugs_improves_and_restores_the_best_node(
    make_kernel_env: MakeEnv, tmp_path: Path
) -> None:
    fail = "python3 -c \"import sys; sys.exit('check failed: {}')\""
    script = [
        node_reply("A draft that raises.", BROKEN, fail.format("draft raises")),
        node_reply("Fix the bug: restore the vectorized version.", FIXED, "echo check ok"),
        node_reply("Try something else.", WORSE, fail.format("improvement broke it")),
    ]
    journal_path = tmp_path / "journal" / "aide.json"
    with ScriptedOpenAIServer(script) as server:
        env = make_kernel_env()
        agent = agents.make(
            "aide",
            model="scripted",
            base_url=server.base_url,
            api_key="k",
            num_drafts=1,
            max_nodes=3,
            debug_prob=1.0,
            journal_path=str(journal_path),
        )
        result = rollout(env, agent, seed=0)
        solution = (env.unwrapped.workspace / "solution" / "solution.py").read_text()  # type: ignore[attr-defined]
    requests = server.requests
    journal = json.loads(journal_path.read_text())

    assert len(requests) == 3 and result.terminated
    nodes = journal["nodes"]
    assert [n["stage"] for n in nodes] == ["draft", "debug", "improve"]
    assert [n["parent"] for n in nodes] == [None, 0, 1]
    assert nodes[0]["buggy"] and nodes[0]["run_exit_code"] not in (None, 0)
    assert nodes[0]["score"] is None  # a failed command is not scored
    assert not nodes[1]["buggy"] and nodes[1]["score"]["valid"]
    assert nodes[1]["metric"] is not None and nodes[1]["metric"] > 0
    assert nodes[2]["buggy"] and "improvement broke it" in nodes[2]["output"]
    assert journal["best"] == 1 and journal["restored"] and journal["restore_verified"]

    # the best node's files are what was submitted; its score and the final one are logged
    assert solution == FIXED
    assert [row["valid"] for row in result.score_log] == [True, True]
    assert result.normalized_score > 0
    assert result.tokens["llm_calls"] == 3

    # what the model saw: the starting files (read through view actions), then its failures
    first = requests[0]["messages"][1]["content"]
    assert "def prefix_sum" in first and "solution/test_solution.py" in first
    assert "Your job: draft" in first
    debug = requests[1]["messages"][1]["content"]
    assert "Your job: debug" in debug and "check failed: draft raises" in debug
    improve = requests[2]["messages"][1]["content"]
    assert "Your job: improve" in improve and "# fixed by the debug node" in improve
    assert "valid, normalized score" in improve


def test_aide_search_mechanics_without_a_valid_node(make_kernel_env: MakeEnv) -> None:
    """Fast: no scorer run (a failed command is not scored, a missing solution/ is invalid)."""
    fail = "python3 -c \"import sys; sys.exit('check failed: draft raises')\""
    script = [
        node_reply("A draft that raises.", BROKEN, fail),
        node_reply("Fix it.", FIXED, "rm -rf solution && echo removed the solution"),
        "I cannot think of anything.",  # no files, no command: a node with nothing to run
    ]
    with ScriptedOpenAIServer(script) as server:
        env = make_kernel_env()
        agent = agents.make(
            "aide",
            model="scripted",
            base_url=server.base_url,
            api_key="k",
            num_drafts=1,
            max_nodes=3,
            debug_prob=1.0,
        )
        result = rollout(env, agent, seed=0)
        workspace = env.unwrapped.workspace  # type: ignore[attr-defined]
        start_copy = (workspace / ".aide" / "start" / "solution.py").read_text()
    journal = agent.journal  # type: ignore[attr-defined]
    requests = server.requests

    assert len(requests) == 3 and result.terminated
    assert start_copy == START  # the agent's copy of the starting files, made by a bash action
    assert [n.stage for n in journal.nodes] == ["draft", "debug", "debug"]
    assert [n.parent for n in journal.nodes] == [None, 0, 1]
    assert journal.nodes[0].score is None and journal.nodes[0].run_exit_code == 1
    assert journal.nodes[1].buggy and "no solution/ directory" in journal.nodes[1].output
    assert "nothing to run" in journal.nodes[2].notes[0]
    assert journal.best is None and not journal.restored
    assert journal.ended_because == "max_nodes (3) reached"
    assert [row["valid"] for row in result.score_log] == [False, False]
    first = requests[0]["messages"][1]["content"]
    assert "def prefix_sum" in first and "Your job: draft" in first
    assert "check failed: draft raises" in requests[1]["messages"][1]["content"]
    assert "no solution/ directory" in requests[2]["messages"][1]["content"]
