"""Leaderboards: grouping that never mixes incomparable runs, the renderers, and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rebench_gym import EpisodeResult
from rebench_gym.cli import main
from rebench_gym.results import (
    EpisodeSpec,
    RunStore,
    build_leaderboard,
    render_json,
    render_markdown,
)
from rebench_gym.results.html import render_html
from rebench_gym.results.stats import score_at_k

KERNEL = "RE-Bench/OptimizeKernel-v0"
SCALING = "RE-Bench/ScalingLaw-v0"
ANCHORS_A = {"start": 2.0, "reference": 1.0, "source": "calibrated", "details": ""}
ANCHORS_B = {"start": 2.5, "reference": 1.0, "source": "calibrated", "details": ""}


def add_run(
    store: RunStore,
    scores: list[float],
    *,
    env_id: str = KERNEL,
    agent: str = "agent-a",
    hardware: str = "hw-a",
    anchors: dict | None = None,
    aggregation: str = "best",
    time_budget_s: float | None = 60.0,
    scale: str = "mini",
) -> None:
    """Store one finished episode per score, each with a score log climbing to that score."""
    spec = EpisodeSpec(
        env_id=env_id,
        agent=agent,
        task_version="1",
        scale=scale,
        hidden_score=False,
        aggregation=aggregation,
        package_version="0.1.0",
        hardware=hardware,
        budgets={"time_budget_s": time_budget_s},
    )
    run_id = store.open_run(spec, len(scores))
    for i, score in enumerate(scores):
        eid = store.begin_episode(run_id, i, spec)
        store.set_anchors(eid, anchors or ANCHORS_A)
        rows = [
            {"timestamp": 0.0, "elapsed_s": 10.0, "raw": 1.0, "normalized": score / 2,
             "valid": True, "message": ""},
            {"timestamp": 0.0, "elapsed_s": 40.0, "raw": 1.0, "normalized": score,
             "valid": True, "message": ""},
        ]  # fmt: skip
        result = EpisodeResult(
            env_id=env_id,
            agent=agent,
            total_reward=score,
            normalized_score=score,
            raw_score=1.0,
            steps=3,
            wall_time_s=50.0,
            terminated=True,
            truncated=False,
            score_log=rows,
        )
        store.finish_episode(eid, result)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        add_run(store, [0.0, 0.5, 1.0])
        add_run(store, [0.2, 0.4], agent="agent-b")
        add_run(store, [0.0, 0.5, 1.0], env_id=SCALING, aggregation="last")
    return path


def episodes(path: Path) -> list:
    with RunStore(path) as store:
        return store.episodes()


def test_rows_scores_and_score_at_k(db: Path) -> None:
    lb = build_leaderboard(episodes(db), ks=(1, 2), n_resamples=4000)
    rows = {(r.key.agent, r.key.env_id): r for r in lb.rows}
    assert len(rows) == 3
    kernel = rows[("agent-a", KERNEL)]
    assert kernel.runs == 3 and kernel.mean.mean == pytest.approx(0.5)
    assert kernel.mean.low <= 0.5 <= kernel.mean.high
    at = {(s.limit_s, s.k): s for s in kernel.score_at_k}
    assert set(at) == {(60.0, 1), (60.0, 2)}
    assert at[(60.0, 2)].total_budget_s == 120.0
    expected = score_at_k([0.0, 0.5, 1.0], 2, n_resamples=4000, seed=0)
    assert at[(60.0, 2)].estimate == expected
    assert at[(60.0, 2)].estimate.mean == pytest.approx(6.5 / 9, abs=0.02)
    # ScalingLaw: a random one of the k, so score@2 stays at the mean.
    scaling = {s.k: s for s in rows[("agent-a", SCALING)].score_at_k}
    assert scaling[2].estimate.mean == pytest.approx(0.5, abs=0.03)
    # A shorter per-run limit truncates each run's score log (rows at 10 s and 40 s).
    lb20 = build_leaderboard(episodes(db), time_limits=[20.0], ks=(1,))
    kernel20 = next(r for r in lb20.rows if r.key == kernel.key)
    assert kernel20.score_at_k[0].estimate.mean == pytest.approx(0.25, abs=0.03)
    # Score over time: mean best-so-far at 10 s is half the final mean.
    curve = dict(kernel.score_over_time)
    assert curve[10.0] == pytest.approx(0.25) and curve[50.0] == pytest.approx(0.5)
    # Average over tasks: agent-a has two tasks, each weighing the same.
    (avg_a,) = [a for a in lb.averages if a.agent == "agent-a"]
    assert set(avg_a.tasks) == {KERNEL, SCALING} and avg_a.mean.mean == pytest.approx(0.5)
    assert not [w for w in lb.warnings if "NOT MERGED" in w]


def test_other_hardware_or_anchors_are_never_merged(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        add_run(store, [0.2, 0.4])
        add_run(store, [0.9], hardware="hw-b")
        add_run(store, [0.7], anchors=ANCHORS_B)
    lb = build_leaderboard(episodes(path), ks=(1,))
    assert len(lb.rows) == 3
    assert sorted(r.runs for r in lb.rows) == [1, 1, 2]
    assert {r.key.hardware for r in lb.rows} == {"hw-a", "hw-b"}
    assert {r.key.anchors for r in lb.rows} == {"calibrated:2/1", "calibrated:2.5/1"}
    assert any(w.startswith("NOT MERGED") and "3 incomparable" in w for w in lb.warnings)
    # hw-a has two anchor sets for the task: its average leaves the task out, loudly.
    assert any("leaves out" in w for w in lb.warnings)
    assert [(a.hardware, a.tasks) for a in lb.averages] == [("hw-b", (KERNEL,))]
    md = render_markdown(lb)
    assert "NOT MERGED" in md


def test_markdown_json_and_html_render(db: Path) -> None:
    lb = build_leaderboard(episodes(db), ks=(1, 2, 4))
    md = render_markdown(lb)
    tables = [line for line in md.splitlines() if line.startswith("|")]
    assert tables and all(line.endswith("|") for line in tables)
    header = md.splitlines()[md.splitlines().index(tables[0])]
    assert header.count("|") == tables[2].count("|")
    assert "published figures, not measured here" in md and "0.64" in md
    data = json.loads(render_json(lb))
    assert {"rows", "averages", "warnings", "settings", "human_reference"} <= set(data)
    assert data["human_reference"]["human_8h_mean_normalized_score"] == 0.64
    assert data["rows"][0]["score_at_k"][0]["estimate"]["n"] >= 1
    page = render_html(lb)
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 3  # score@k + 2 tasks
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page and "src=" not in page
    assert "not measured here" in page and "<polyline" in page


def test_failed_episodes_are_counted_in_their_group(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        add_run(store, [0.2, 0.4])
        (ep,) = store.episodes()[:1]
        spec = EpisodeSpec(
            env_id=KERNEL, agent="agent-a", task_version="1", scale="mini", hidden_score=False,
            aggregation="best", package_version="0.1.0", hardware="hw-a",
            budgets={"time_budget_s": 60.0},
        )  # fmt: skip
        # Killed before reset stored its anchors, and one on a task nobody finished.
        store.fail_episode(store.begin_episode(ep.run_id, 2, spec), "interrupted")
        other = EpisodeSpec(**{**spec.__dict__, "env_id": SCALING})
        run = store.open_run(other, 1)
        store.fail_episode(store.begin_episode(run, 0, other), "crashed")
    lb = build_leaderboard(episodes(path), ks=(1,))
    (row,) = lb.rows
    assert row.runs == 2 and row.failed == 1
    assert any("1 failed episode(s) not counted" in w for w in lb.warnings)


def test_empty_store_renders(tmp_path: Path) -> None:
    lb = build_leaderboard([])
    assert "No finished episodes" in render_markdown(lb)
    assert "<svg" in render_html(lb)
    assert json.loads(render_json(lb))["rows"] == []


def test_cli_leaderboard_formats(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["leaderboard", "--db", str(db), "--format", "json", "--k", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["rows"]) == 3
    out = tmp_path / "board" / "index.html"
    args = ["leaderboard", "--db", str(db), "--format", "html", "--out", str(out)]
    assert main([*args, "--time-limit", "30", "--time-limit", "whole"]) == 0
    assert "<svg" in out.read_text()
    assert main(["leaderboard", "--db", str(db)]) == 0
    assert capsys.readouterr().out.startswith("# RE-Bench leaderboard")
    assert main(["leaderboard", "--db", str(tmp_path / "missing.db")]) == 2
    with pytest.raises(SystemExit) as e:
        main(["leaderboard", "--db", str(db), "--time-limit", "soon"])
    assert e.value.code == 2


# ----- end to end: real noop runs at mini scale ------------------------------------------------
@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cache dir (one anchor calibration) for every real run in this module."""
    path = tmp_path_factory.mktemp("rebench-cache")
    old = os.environ.get("REBENCH_CACHE_DIR")
    os.environ["REBENCH_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("REBENCH_CACHE_DIR", None)
    else:
        os.environ["REBENCH_CACHE_DIR"] = old


RUN = [KERNEL, "--agent", "noop", "--scale", "mini", "--sandbox", "local"]


@pytest.mark.slow
def test_run_killed_then_resumed_then_leaderboard(
    cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    db = tmp_path / "runs.db"
    # Calibrate and finish one episode in-process, through the CLI's public entry point.
    assert main(["run", *RUN, "--db", str(db), "--episodes", "1"]) == 0
    capsys.readouterr()
    # A real `rebench run --episodes 3` (resuming that run) killed while episode 2 runs.
    cmd = [sys.executable, "-m", "rebench_gym.cli", "run", *RUN, "--db", str(db), "--resume"]
    proc = subprocess.Popen(
        [*cmd, "--episodes", "3"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "REBENCH_CACHE_DIR": str(cache_dir)},
    )

    def state() -> list[tuple[int, str]]:
        with RunStore(db) as store:
            return sorted((e.episode_index, e.status) for e in store.episodes())

    try:
        deadline = time.monotonic() + 240
        while (2, "running") not in state():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert state() == [(0, "finished"), (1, "finished"), (2, "running")]
    # Resume: only episode 2 runs again.
    assert main(["run", *RUN, "--db", str(db), "--resume", "--episodes", "3"]) == 0
    assert "2 of 3 episode(s) already done" in capsys.readouterr().err
    assert state() == [(0, "finished"), (1, "finished"), (2, "failed"), (2, "finished")]
    with RunStore(db) as store:
        finished = store.episodes(status="finished")
    assert len({e.run_id for e in finished}) == 1
    for ep in finished:
        assert ep.anchors is not None and ep.anchors["source"] in ("calibrated", "constant")
        assert ep.score_rows and ep.hardware and ep.task_version and ep.scale == "mini"
        assert ep.normalized_score == pytest.approx(0.0, abs=0.3)  # noop: about the start
    assert main(["leaderboard", "--db", str(db), "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert "| noop | RE-Bench/OptimizeKernel-v0 | mini | 3 | 1 |" in md
    out = tmp_path / "board.html"
    assert main(["leaderboard", "--db", str(db), "--format", "html", "--out", str(out)]) == 0
    page = out.read_text()
    assert "<svg" in page and "http://" not in page and "https://" not in page
