"""The SQLite run store: rows written as runs go, resumption, a run killed mid-way."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import pytest

from rebench_gym import EpisodeResult
from rebench_gym.errors import UsageError
from rebench_gym.results import EpisodeSpec, RunStore, StoreRecorder, default_db_path
from rebench_gym.results.store import RunInUseError, RunStoreError


def make_spec(**overrides: object) -> EpisodeSpec:
    data: dict = dict(
        env_id="RE-Bench/OptimizeKernel-v0",
        agent="noop",
        task_version="1",
        scale="mini",
        hidden_score=False,
        aggregation="best",
        package_version="0.1.0",
        hardware="hw-a",
        make_kwargs={"scale": "mini", "sandbox": "local", "hidden_score": False},
        budgets={"time_budget_s": None, "token_budget": None, "max_steps": None},
        seed=None,
    )
    data.update(overrides)
    return EpisodeSpec(**data)


def make_result(normalized: float, rows: list[dict] | None = None, **kw: object) -> EpisodeResult:
    rows = rows if rows is not None else [score_row(1.0, normalized)]
    data: dict = dict(
        env_id="RE-Bench/OptimizeKernel-v0",
        agent="noop",
        total_reward=normalized,
        normalized_score=normalized,
        raw_score=1.5,
        steps=2,
        wall_time_s=3.0,
        terminated=True,
        truncated=False,
        score_log=rows,
        tokens={"input": 10, "output": 5},
        end_reason="submit",
    )
    data.update(kw)
    return EpisodeResult(**data)


def score_row(elapsed: float, normalized: float, valid: bool = True) -> dict:
    return {
        "timestamp": 1_700_000_000.0 + elapsed,
        "elapsed_s": elapsed,
        "raw": 1.0 if valid else None,
        "normalized": normalized,
        "valid": valid,
        "message": "ok" if valid else "wrong output",
    }


def test_rows_are_committed_at_once_and_read_back(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    spec = make_spec()
    with RunStore(db) as store:
        run_id = store.open_run(spec, 1)
        eid = store.begin_episode(run_id, 0, spec)
        # Another connection (another process would be the same) sees the running row now.
        other = sqlite3.connect(db)
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        status = other.execute("SELECT status FROM episodes WHERE episode_id=?", (eid,))
        assert status.fetchone()[0] == "running"
        store.set_anchors(eid, {"start": 2.0, "reference": 1.0, "source": "calibrated"})
        store.add_score_rows(eid, [score_row(1.0, 0.25)])
        n_rows = other.execute("SELECT COUNT(*) FROM score_rows").fetchone()[0]
        assert n_rows == 1
        other.close()
        store.finish_episode(
            eid,
            make_result(0.5, [score_row(1.0, 0.25), score_row(2.0, 0.5)], tokens={"cost_usd": 3}),
            trajectory_path="traj.jsonl",
        )
        (ep,) = store.episodes()
    assert ep.status == "finished"
    assert ep.normalized_score == 0.5
    assert ep.anchors == {"start": 2.0, "reference": 1.0, "source": "calibrated"}
    assert [r.normalized for r in ep.score_rows] == [0.25, 0.5]  # the first row is not doubled
    assert ep.cost_usd == 3.0 and ep.tokens == {}
    assert ep.trajectory_path == "traj.jsonl"
    assert ep.make_kwargs["sandbox"] == "local" and ep.hardware == "hw-a"
    assert ep.budgets["time_budget_s"] is None


def test_resume_skips_finished_and_reruns_interrupted(tmp_path: Path) -> None:
    spec = make_spec()
    with RunStore(tmp_path / "runs.db") as store:
        run_id = store.open_run(spec, 3)
        assert store.pending_episodes(run_id, 3) == [0, 1, 2]
        store.finish_episode(store.begin_episode(run_id, 0, spec), make_result(0.1))
        stale = store.begin_episode(run_id, 1, spec)  # left "running", as after a crash
        # --resume finds the same run by its settings and skips what finished.
        assert store.open_run(spec, 3, resume=True) == run_id
        assert store.pending_episodes(run_id, 3) == [1, 2]
        failed = next(e for e in store.episodes() if e.episode_id == stale)
        assert failed.status == "failed" and "interrupted" in (failed.error or "")
        # Other settings are another run; a new run never reuses an id silently.
        assert store.open_run(make_spec(seed=7), 3, resume=True) != run_id
        assert store.open_run(spec, 3) != run_id
        with pytest.raises(UsageError, match="--resume"):
            store.open_run(spec, 3, run_id=run_id)
        with pytest.raises(UsageError, match="other settings"):
            store.open_run(make_spec(agent="random"), 3, run_id=run_id, resume=True)
        # Asking for more episodes on resume extends the run.
        assert store.open_run(spec, 5, resume=True, run_id=run_id) == run_id
        assert store.pending_episodes(run_id, 5) == [1, 2, 3, 4]


def test_a_finished_index_is_stored_once(tmp_path: Path) -> None:
    spec = make_spec()
    with RunStore(tmp_path / "runs.db") as store:
        run_id = store.open_run(spec, 1)
        store.finish_episode(store.begin_episode(run_id, 0, spec), make_result(0.1))
        second = store.begin_episode(run_id, 0, spec)
        with pytest.raises(sqlite3.IntegrityError):
            store.finish_episode(second, make_result(0.2))
        store.fail_episode(second, "duplicate")
        assert [e.status for e in store.episodes()] == ["finished", "failed"]


def test_default_db_path_follows_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REBENCH_DB", "/tmp/x/runs.db")
    assert default_db_path() == Path("/tmp/x/runs.db")
    monkeypatch.delenv("REBENCH_DB")
    monkeypatch.setenv("XDG_DATA_HOME", "/data")
    assert default_db_path() == Path("/data/rebench_gym/runs.db")


def test_episode_spec_for_env_describes_this_machine() -> None:
    spec = EpisodeSpec.for_env(
        "RE-Bench/OptimizeKernel-v0",
        "noop",
        make_kwargs={"scale": "mini", "hidden_score": True},
        budgets={"time_budget_s": 60.0},
    )
    assert spec.scale == "mini" and spec.hidden_score and spec.aggregation == "best"
    assert spec.task_version and spec.hardware and spec.package_version
    assert (
        spec.run_key()
        == EpisodeSpec.for_env(
            "RE-Bench/OptimizeKernel-v0",
            "noop",
            make_kwargs={"scale": "mini", "hidden_score": True},
            budgets={"time_budget_s": 60.0},
        ).run_key()
    )
    assert spec.run_key() != make_spec().run_key()


@pytest.mark.slow
def test_store_recorder_writes_score_rows_as_they_happen(tmp_path: Path) -> None:
    """A real env with fixed anchors (no calibration): the score row is stored before submit."""
    env = gym.make(
        "RE-Bench/OptimizeKernel-v0",
        scale="mini",
        sandbox="local",
        anchors=(2.0, 1.0),
        cache_dir=str(tmp_path / "cache"),
    )
    spec = make_spec()
    with RunStore(tmp_path / "runs.db") as store:
        run_id = store.open_run(spec, 1)
        eid = store.begin_episode(run_id, 0, spec)
        rec = StoreRecorder(env, store, eid)
        try:
            with pytest.warns(UserWarning, match="isolation"):
                rec.reset(seed=0)
            (ep,) = store.episodes()
            assert ep.anchors is not None and ep.anchors["source"] == "user"
            rec.step("score")
            (ep,) = store.episodes()
            assert ep.status == "running" and len(ep.score_rows) == 1
            rec.step("submit")
        finally:
            rec.close()
        (ep,) = store.episodes()
        assert len(ep.score_rows) == 1  # the submitted state was scored already


SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from rebench_gym import EpisodeResult
    from rebench_gym.results import EpisodeSpec
    from rebench_gym.results.recording import RunRecording

    db, episodes, slow_from = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    spec = EpisodeSpec(
        env_id="RE-Bench/OptimizeKernel-v0", agent="scripted", task_version="1", scale="mini",
        hidden_score=False, aggregation="best", package_version="0", hardware="hw",
    )
    with RunRecording.start(db, spec, episodes, resume="--resume" in sys.argv) as rec:
        print("pending", *rec.pending, flush=True)
        for i in rec.pending:
            eid = rec.begin(i)
            rec.store.add_score_rows(eid, [dict(timestamp=time.time(), elapsed_s=0.1, raw=1.0,
                                                normalized=i / 10, valid=True, message="")])
            time.sleep(60 if i >= slow_from else 0.05)
            rec.finish(EpisodeResult(
                env_id=spec.env_id, agent="scripted", total_reward=i / 10,
                normalized_score=i / 10, raw_score=1.0, steps=1, wall_time_s=0.1,
                terminated=True, truncated=False))
            print("finished", i, flush=True)
    """
)


def _wait_for(cond, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _statuses(db: Path) -> list[tuple[int, str]]:
    if not db.exists():
        return []
    try:
        with RunStore(db) as store:
            return [(e.episode_index, e.status) for e in store.episodes(with_score_rows=False)]
    except sqlite3.OperationalError:  # the schema is being created
        return []


def test_killed_run_keeps_finished_episodes_and_resume_runs_only_the_rest(
    tmp_path: Path,
) -> None:
    script = tmp_path / "runner.py"
    script.write_text(SCRIPT)
    db = tmp_path / "runs.db"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), "4", "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: (2, "running") in _statuses(db))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert sorted(_statuses(db)) == [(0, "finished"), (1, "finished"), (2, "running")]

    done = subprocess.run(
        [sys.executable, str(script), str(db), "4", "99", "--resume"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[0] == "pending 2 3"
    assert lines[1:] == ["finished 2", "finished 3"]
    with RunStore(db) as store:
        episodes = store.episodes()
        runs = store.runs()
    assert len(runs) == 1 and runs[0]["finished"] == 4
    finished = sorted(e.episode_index for e in episodes if e.status == "finished")
    assert finished == [0, 1, 2, 3]
    (killed,) = [e for e in episodes if e.status == "failed"]
    assert killed.episode_index == 2 and "interrupted" in (killed.error or "")
    assert len(killed.score_rows) == 1  # what it logged before the kill is kept


CLAIM = textwrap.dedent(
    """
    import sys, time
    from rebench_gym.results import EpisodeSpec
    from rebench_gym.results.recording import RunRecording
    from rebench_gym.results.store import RunInUseError

    spec = EpisodeSpec(
        env_id="RE-Bench/OptimizeKernel-v0", agent="scripted", task_version="1", scale="mini",
        hidden_score=False, aggregation="best", package_version="0", hardware="hw",
    )
    try:
        rec = RunRecording.start(sys.argv[1], spec, 2, resume=True)
    except RunInUseError as e:
        print("refused", e, flush=True)
        sys.exit(2)
    print("won", *rec.pending, flush=True)
    time.sleep(float(sys.argv[2]))
    rec.close()
    """
)


def test_of_two_concurrent_resumes_one_wins_and_the_other_is_told(tmp_path: Path) -> None:
    script = tmp_path / "claim.py"
    script.write_text(CLAIM)
    db = tmp_path / "runs.db"
    spec = dataclasses.replace(
        make_spec(agent="scripted", task_version="1", package_version="0", hardware="hw"),
        make_kwargs={},
        budgets={},
    )  # the run key of the script's spec
    with RunStore(db) as store:
        run_id = store.open_run(spec, 2)
        store.finish_episode(store.begin_episode(run_id, 0, spec), make_result(0.1))
    # closed: the claim is released, so a resume elsewhere may take the run
    procs = [
        subprocess.Popen([sys.executable, str(script), str(db), "8"], stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].decode() for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    won = next(o for o in outs if o.startswith("won"))
    refused = next(o for o in outs if o.startswith("refused"))
    assert won.split() == ["won", "1"]  # the winner runs only what is left
    assert f"run {run_id!r}" in refused and "being run or resumed elsewhere" in refused
    # The winner released its claim when it closed: resuming here works again.
    with RunStore(db) as store:
        assert store.open_run(spec, 2, resume=True) == run_id
        assert store.pending_episodes(run_id, 2) == [1]
        assert store.episodes(status="running") == []


def test_a_dead_process_claim_is_taken_over(tmp_path: Path) -> None:
    script = tmp_path / "claim.py"
    script.write_text(CLAIM)
    db = tmp_path / "runs.db"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), "300"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("won 0 1")
        spec = EpisodeSpec(
            env_id="RE-Bench/OptimizeKernel-v0",
            agent="scripted",
            task_version="1",
            scale="mini",
            hidden_score=False,
            aggregation="best",
            package_version="0",
            hardware="hw",
        )
        with RunStore(db) as store, pytest.raises(RunInUseError, match=str(proc.pid)):
            store.open_run(spec, 2, resume=True)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with RunStore(db) as store:
        run_id = store.open_run(spec, 2, resume=True)  # the killed process's claim is stale
        assert store.pending_episodes(run_id, 2) == [0, 1]


def test_a_file_that_is_not_a_store_is_a_usage_error(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    db.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(RunStoreError, match=r"cannot be read \(file is not a database\)"):
        RunStore(db)
    assert isinstance(RunStoreError("x"), UsageError)
