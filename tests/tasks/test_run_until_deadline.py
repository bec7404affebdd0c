"""``run_until_deadline``: a scorer's one way to run a solution in the sandbox under a deadline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rebench_gym.sandbox import make_sandbox
from rebench_gym.sandbox.base import Bind
from rebench_gym.tasks.base import SCORE_ROOT, SandboxRun, ScoreContext, run_until_deadline
from tests.conftest import HAVE_BWRAP


@pytest.fixture(params=["local", "bwrap"] if HAVE_BWRAP else ["local"])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> ScoreContext:
    ws = tmp_path / "ws"
    ws.mkdir()
    sandbox = make_sandbox(request.param, ws)
    request.addfinalizer(sandbox.close)
    solution = tmp_path / "solution"
    solution.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    return ScoreContext(
        solution=solution,
        sandbox=sandbox,
        scale="mini",
        timeout_s=30,
        seed=0,
        work_dir=work,
        cache=tmp_path / "cache",
    )


def _run(ctx: ScoreContext, script: str, seconds: float) -> SandboxRun:
    (ctx.solution / "run.sh").write_text(script)
    out = ctx.work_dir / "out"
    out.mkdir(exist_ok=True)
    out.chmod(0o777)
    return run_until_deadline(
        ctx,
        ["bash", f"{SCORE_ROOT}/solution/run.sh", f"{SCORE_ROOT}/out"],  # $1: the out dir
        binds=[
            Bind(ctx.solution, f"{SCORE_ROOT}/solution"),
            Bind(out, f"{SCORE_ROOT}/out", writable=True),
        ],
        cwd=f"{SCORE_ROOT}/solution",
        env={},
        deadline=time.monotonic() + seconds,
        log=ctx.work_dir / "run.log",
    )


def test_exit_status_and_output_come_back(ctx: ScoreContext) -> None:
    run = _run(ctx, "echo hello from the solution; exit 3\n", 20)
    assert not run.timed_out and run.returncode == 3 and not run.ok
    assert "hello from the solution" in run.log_tail()
    ok = _run(ctx, "touch $1/early\n", 20)
    assert ok.ok and ok.returncode == 0
    assert (ctx.work_dir / "out" / "early").exists()  # a writable bind works (the control)


def test_a_run_past_the_deadline_is_stopped_with_its_children(ctx: ScoreContext) -> None:
    marker = ctx.work_dir / "out" / "late"
    script = "(sleep 2; touch $1/late) &\necho started\nsleep 30\n"
    start = time.monotonic()
    run = _run(ctx, script, 1.0)
    assert run.timed_out and run.returncode is None
    assert time.monotonic() - start < 10
    assert "started" in run.log_tail()
    time.sleep(2.5)
    assert not marker.exists()  # the background child was stopped too
