"""``rebench export --format inspect``: real recorded runs as Inspect AI eval logs, read back with
``inspect_ai`` itself and listed by ``inspect view``'s server.

The runs come from ``tests/results/conftest.py`` (real mini-scale rollouts in bubblewrap).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from rebench_gym.cli import main
from rebench_gym.results import EpisodeSpec, RunStore
from rebench_gym.results.inspect_export import export_run
from tests.results.conftest import HOSTILE, KERNEL, RecordedRuns, record_chatty_run

inspect_log = pytest.importorskip("inspect_ai.log", reason="pip install 'rebench-gym[inspect]'")


def record_of(db: Path, run_id: str):
    with RunStore(db) as store:
        (record,) = store.episodes(run_id=run_id)
    return record


def test_reference_run_reads_back(recorded_runs: RecordedRuns, tmp_path: Path) -> None:
    out = tmp_path / "logs"
    db = str(recorded_runs.db)
    args = ["export", recorded_runs.reference, "--db", db, "--format", "inspect", "--out"]
    assert main([*args, str(out)]) == 0
    (path,) = sorted(out.glob("*.eval"))
    log = inspect_log.read_eval_log(str(path))
    record = record_of(recorded_runs.db, recorded_runs.reference)
    assert log.status == "success" and log.eval.task == KERNEL
    assert log.eval.model == "rebench/reference"
    assert log.samples is not None and len(log.samples) == 1
    sample = log.samples[0]
    # the instructions, then one tool call and one tool result per step
    assert sample.messages[0].role == "user" and "Optimize a Kernel" in sample.messages[0].text
    assert len(sample.messages) == 1 + 2 * int(record.steps or 0)
    calls = [m.tool_calls[0] for m in sample.messages if m.role == "assistant" and m.tool_calls]
    assert [c.function for c in calls] == ["write_file", "score", "score", "score", "submit"]
    assert calls[0].arguments["path"] == "solution/solution.py"
    assert "import torch" in calls[0].arguments["content"]
    results = [m for m in sample.messages if m.role == "tool"]
    assert [r.tool_call_id for r in results] == [c.id for c in calls]
    assert results[1].text.startswith("[score] raw")
    # the final normalized score is the sample's score, and the run's headline metric
    assert sample.scores is not None
    score = sample.scores["normalized_score"]
    assert score.value == pytest.approx(record.normalized_score)
    assert score.metadata is not None
    assert len(score.metadata["score_rows"]) == len(record.score_rows)
    assert all(r["solution_id"] for r in score.metadata["score_rows"])
    assert log.results is not None
    assert log.results.scores[0].metrics["mean"].value == pytest.approx(record.normalized_score)
    # the transcript: a timed tool event per step, a score event per score call, the final score
    tools = [e for e in sample.events if e.event == "tool"]
    assert [e.id for e in tools] == [c.id for c in calls]
    assert all(e.working_time is not None and e.completed >= e.timestamp for e in tools)
    assert tools[1].working_time > 0.5  # a score call runs the scorer
    scores = [e for e in sample.events if e.event == "score"]
    assert [e.intermediate for e in scores] == [True] * len(record.score_rows) + [False]
    assert [e.score.value for e in scores[:-1]] == [r.normalized for r in record.score_rows]
    assert scores[-1].score.value == pytest.approx(record.normalized_score)
    # tokens estimated by the token budget
    usage = sample.model_usage["rebench/reference"]
    assert usage.total_tokens == record.tokens["total_tokens"] > 0


def test_scripted_run_usage_and_malformed_action(
    recorded_runs: RecordedRuns, tmp_path: Path
) -> None:
    (path,) = export_run(recorded_runs.db, recorded_runs.scripted, tmp_path)
    sample = inspect_log.read_eval_log(str(path)).samples[0]
    texts = [m.text for m in sample.messages]
    assert any(HOSTILE in t for t in texts)  # the data is exported as it was, not escaped
    # the malformed action: its raw text from the assistant, the env's error from the user
    i = texts.index('{"tool": "nope"}')
    assert sample.messages[i].role == "assistant" and not sample.messages[i].tool_calls
    assert sample.messages[i + 1].role == "user" and "[invalid action]" in texts[i + 1]
    (info,) = [e for e in sample.events if e.event == "info"]
    assert info.data["malformed_action"] == '{"tool": "nope"}'
    invalid = [e.score for e in sample.events if e.event == "score" and e.intermediate]
    assert invalid and not any(s.metadata["valid"] for s in invalid)
    usage = sample.model_usage["rebench/scripted"]
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (6000, 600, 6600)
    assert usage.total_cost == pytest.approx(0.006)
    assert sample.scores["normalized_score"].value == 0.0


def test_run_without_trajectory_and_failed_episode(
    recorded_runs: RecordedRuns, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    shutil.copy(recorded_runs.db, db)
    spec = EpisodeSpec(KERNEL, "noop", "1.1.0", "mini", False, "best", "0.1.0", "hw")
    with RunStore(db) as store:
        run_id = store.open_run(spec, 2, run_id="broken")
        store.fail_episode(store.begin_episode(run_id, 0, spec), "SandboxError: it broke")
    paths = export_run(db, "noop-run", tmp_path / "a") + export_run(db, "broken", tmp_path / "b")
    noop, failed = (inspect_log.read_eval_log(str(p)) for p in paths)
    assert noop.status == "success" and len(noop.samples) == 1
    assert "no trajectory was recorded" in noop.samples[0].messages[0].text
    # the start's own score (a timing: near 0 against the fixed anchors, not exactly 0)
    start = record_of(db, "noop-run").normalized_score
    assert noop.samples[0].scores["normalized_score"].value == pytest.approx(start)
    assert start < 0.5
    assert failed.status == "error" and "it broke" in failed.error.message
    assert failed.samples[0].scores is None


def test_one_log_per_episode(tmp_path: Path) -> None:
    """A run of three episodes (one index failed once, then finished): three logs, each with its
    own episode's steps and score."""
    db, trajectory = tmp_path / "runs.db", tmp_path / "trajectory.jsonl"
    record_chatty_run(db, trajectory, "three", steps=100, episodes=3, fail_first=True)
    paths = export_run(db, "three", tmp_path / "logs")
    assert len(paths) == 3 and len({p.name for p in paths}) == 3
    for index, path in enumerate(paths):
        log = inspect_log.read_eval_log(str(path))
        assert log.status == "success" and len(log.samples) == 1
        sample = log.samples[0]
        assert sample.metadata["episode_index"] == index
        first = f"instructions of episode {index}\n\nWorkspace files:\nsolution/"
        assert sample.messages[0].text == first
        assert len(sample.messages) == 1 + 2 * 100
        assert sample.messages[1].tool_calls[0].arguments == {"command": "echo 0"}
        assert sample.messages[-1].text.startswith(f"episode {index} step 100 <b>")
        assert sample.scores["normalized_score"].value == pytest.approx(0.05)
        rows = sample.scores["normalized_score"].metadata["score_rows"]
        assert [r["step"] for r in rows] == [50, 100]
        assert sample.model_usage == {}  # nothing recorded, nothing made up


def test_export_errors(
    recorded_runs: RecordedRuns, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(recorded_runs.db)
    file = tmp_path / "file"
    file.write_text("x")
    base = ["export", "--db", db, "--format", "inspect", "--out"]
    assert main([*base, str(file), "noop-run"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main([*base, str(tmp_path / "o"), "nope"]) == 2
    assert "latest runs" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_inspect_view_lists_the_episodes(recorded_runs: RecordedRuns, tmp_path: Path) -> None:
    """``inspect view`` on the export directory serves every exported episode's log."""
    out = tmp_path / "logs"
    written = []
    for run_id in (recorded_runs.reference, recorded_runs.scripted, recorded_runs.noop):
        written += export_run(recorded_runs.db, run_id, out)
    port = free_port()
    cmd = [sys.executable, "-m", "inspect_ai", "view", "--log-dir", str(out)]
    server = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{api}/logs", timeout=5) as r:
                    listing = json.load(r)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "inspect view did not start in 60 s"
                time.sleep(0.5)
        # the viewer's own read of an episode: its sample with every message and the score
        name = next(f["name"] for f in listing["files"] if written[0].name in f["name"])
        url = f"{api}/logs/{urllib.parse.quote(name, safe='')}"
        with urllib.request.urlopen(url, timeout=30) as r:
            served = json.load(r)
    finally:
        server.terminate()
        server.wait(timeout=30)
    names = sorted(Path(f["name"].removeprefix("file://")).name for f in listing["files"])
    assert names == sorted(p.name for p in written)
    tasks = {f["task"] for f in listing["files"]}
    assert tasks == {"OptimizeKernel-v0"}
    steps = record_of(recorded_runs.db, recorded_runs.reference).steps
    (sample,) = served["samples"]
    assert len(sample["messages"]) == 1 + 2 * int(steps or 0)
    assert sample["scores"]["normalized_score"]["value"] > 0.5
