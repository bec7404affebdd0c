"""RecordTrajectory writes a crash-safe JSONL log that read_trajectory loads back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import rebench_gym  # noqa: F401 - registers the ids
from rebench_gym.errors import UsageError
from rebench_gym.wrappers import (
    SCHEMA_VERSION,
    RecordTrajectory,
    TimeBudget,
    TokenBudget,
    read_trajectory,
)

ENV_ID = "RE-Bench/OptimizeKernel-v0"
pytestmark = pytest.mark.filterwarnings("ignore:sandbox='local' gives the agent no isolation")


def _make(cache_dir: Path) -> gym.Env[Any, Any]:
    """A real kernel env (mini, local sandbox, fixed anchors: no calibration)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return gym.make(
            ENV_ID, scale="mini", sandbox="local", anchors=(4.0, 3.0), cache_dir=str(cache_dir)
        )


@pytest.fixture
def base_env(cache_dir: Path) -> Iterator[gym.Env[Any, Any]]:
    """A real kernel env, closed after the test."""
    env = _make(cache_dir)
    yield env
    env.close()


def test_records_reset_and_steps_and_reads_them_back(
    base_env: gym.Env[Any, Any], tmp_path: Path
) -> None:
    path = tmp_path / "runs" / "traj.jsonl"  # parent directories are created
    env = RecordTrajectory(TokenBudget(TimeBudget(base_env, 3600), max_tokens=10**6), path)
    obs, _ = env.reset(seed=7)
    actions = ["echo hello", "rm -rf solution", "score", "submit"]  # score is instant: invalid
    rewards = []
    for action in actions:
        _, reward, *_ = env.step(action)
        rewards.append(reward)
    env.close()
    env.close()  # idempotent

    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + len(actions)
    assert all(json.loads(line)["version"] == SCHEMA_VERSION for line in lines)

    (episode,) = read_trajectory(path)
    header = episode.header
    assert header["type"] == "reset" and header["env_id"] == ENV_ID and header["seed"] == 7
    assert header["env_kwargs"]["scale"] == "mini"
    assert header["observation"] == obs and "time_budget" in header["info"]
    assert episode.actions == actions and episode.ended
    assert [s["step"] for s in episode.steps] == [1, 2, 3, 4]
    assert episode.total_reward == pytest.approx(sum(rewards))

    first, _, scored, last = episode.steps
    assert "hello" in first["observation"]["terminal"]
    assert set(first["timings"]) == {"since_reset_s", "think_s", "step_s"}
    assert first["timings"]["step_s"] >= 0 and first["tokens"]["source"] == "estimated"
    assert first["new_score_rows"] == [] and "score_log" not in first["info"]
    assert len(scored["new_score_rows"]) == 1 and scored["new_score_rows"][0]["valid"] is False
    assert last["terminated"] and not last["truncated"]
    assert last["info"]["end_reason"] == "submit"


def test_truncation_by_a_budget_is_recorded(base_env: gym.Env[Any, Any], tmp_path: Path) -> None:
    path = tmp_path / "traj.jsonl"
    env = RecordTrajectory(TokenBudget(base_env, max_output_tokens=2, counter=lambda t: 1), path)
    env.reset()
    env.step("rm -rf solution")
    env.step("echo done")
    env.close()
    (episode,) = read_trajectory(path)
    last = episode.steps[-1]
    assert last["truncated"] and last["info"]["truncated_by"] == "token_budget"
    assert last["tokens"]["exhausted"] == ["max_output_tokens"]
    assert len(last["new_score_rows"]) == 1  # the final scoring's row


WRITER = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("ignore")
    import gymnasium as gym
    import rebench_gym
    from rebench_gym.wrappers import RecordTrajectory

    path, cache = sys.argv[1], sys.argv[2]
    env = gym.make("RE-Bench/OptimizeKernel-v0", scale="mini", sandbox="local",
                   anchors=(4.0, 3.0), cache_dir=cache)
    env = RecordTrajectory(env, path)
    env.reset()
    cgroup = getattr(env.unwrapped.sandbox, "cgroup", None)
    print("cgroup", cgroup.path if cgroup is not None else "", flush=True)
    for i in range(1, 100_000):
        env.step(f"echo step-{i}")
        print("done", i, flush=True)
    """
)


def test_trajectory_survives_sigkill_up_to_the_last_finished_step(
    tmp_path: Path, cache_dir: Path
) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    path = tmp_path / "killed.jsonl"
    scratch = tmp_path / "tmp"  # the killed process's temp dirs land here (cleaned by pytest)
    scratch.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), str(cache_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert proc.stdout is not None
    cgroup = ""
    finished = 0
    try:
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            word, _, value = line.strip().partition(" ")
            if word == "cgroup":
                cgroup = value
            elif word == "done":
                finished = int(value)
                if finished >= 5:
                    break
            assert time.monotonic() < deadline, "the writer made no progress"
        proc.send_signal(signal.SIGKILL)  # no chance to close or flush anything
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        if cgroup:  # the sandbox shell dies with its parent; remove its (now empty) cgroup
            for _ in range(100):
                try:
                    Path(cgroup).rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
    assert proc.returncode == -signal.SIGKILL and finished >= 5

    (episode,) = read_trajectory(path)
    # every step that finished is there (the one in flight may be too, or may be lost)
    assert len(episode.steps) >= finished
    assert [s["step"] for s in episode.steps] == list(range(1, len(episode.steps) + 1))
    for record in episode.steps:
        assert f"step-{record['step']}" in record["observation"]["terminal"]
    assert not episode.ended


def test_torn_lines_are_skipped_and_appending_continues(
    base_env: gym.Env[Any, Any], tmp_path: Path, cache_dir: Path
) -> None:
    path = tmp_path / "traj.jsonl"
    env = RecordTrajectory(base_env, path)
    env.reset()
    env.step("echo one")
    env.step("echo two")
    env.close()
    with path.open("a", encoding="utf-8") as f:  # a crash in the middle of writing step 3
        f.write('{"schema": "rebench_gym.trajectory", "version": 1, "type": "st')

    (episode,) = read_trajectory(path)  # a torn last line is dropped silently
    assert episode.actions == ["echo one", "echo two"] and not episode.ended

    env2 = RecordTrajectory(_make(cache_dir), path)  # a later run appends to the same file
    try:
        env2.reset()
        env2.step("rm -rf solution")  # so that submit's final scoring is instant
        env2.step("submit")
    finally:
        env2.close()
    with pytest.warns(UserWarning, match="torn or corrupt line"):
        first, second = read_trajectory(path)
    assert first.actions == ["echo one", "echo two"]
    assert second.actions == ["rm -rf solution", "submit"] and second.ended
    assert first.episode_id != second.episode_id


def test_reader_rejects_files_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no trajectory file"):
        read_trajectory(tmp_path / "missing.jsonl")
    other = tmp_path / "other.jsonl"
    other.write_text('{"hello": 1}\n')
    with pytest.raises(UsageError, match="not a rebench_gym trajectory"):
        read_trajectory(other)
    newer = tmp_path / "newer.jsonl"
    newer.write_text(json.dumps({"schema": "rebench_gym.trajectory", "version": 99}) + "\n")
    with pytest.raises(UsageError, match=r"schema version 99.*upgrade"):
        read_trajectory(newer)
    orphan = tmp_path / "orphan.jsonl"
    line = {"schema": "rebench_gym.trajectory", "version": 1, "type": "step", "episode_id": "x"}
    orphan.write_text(json.dumps(line) + "\n")
    with pytest.raises(UsageError, match="without its reset"):
        read_trajectory(orphan)


def test_bad_path_raises_at_construction(base_env: gym.Env[Any, Any], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory"):
        RecordTrajectory(base_env, tmp_path)
    with pytest.raises(UsageError, match="must be a file path"):
        RecordTrajectory(base_env, 42)  # type: ignore[arg-type]
