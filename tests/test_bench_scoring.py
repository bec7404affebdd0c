"""``rebench bench --scoring``: the kernel's score call broken into phases, fast path against the
baseline path in the same run, and its calibration timed on both paths."""

from __future__ import annotations

import json

import pytest

from rebench_gym.bench import scoring_costs
from rebench_gym.cli import main
from tests.conftest import HAVE_BWRAP

KERNEL = "RE-Bench/OptimizeKernel-v0"
SANDBOX = "bwrap" if HAVE_BWRAP else "local"

pytestmark = pytest.mark.slow


def test_scoring_costs_measure_both_paths_and_the_calibration() -> None:
    report = scoring_costs(sandbox=SANDBOX, repeats=1, env_ids=[KERNEL], calibration_repeats=1)
    kernel = report["tasks"][KERNEL]
    for path in ("fast", "baseline"):
        entry = kernel[path]
        assert entry["p50_s"] > 0 and len(entry["calls_s"]) == 1
        assert entry["message"].startswith("correct"), entry["message"]
        phases = entry["phases_p50_s"]
        assert phases["imports"] > 0 and phases["timed work"] > 0 and phases["checks"] > 0
    assert kernel["speedup"] == kernel["baseline"]["p50_s"] / kernel["fast"]["p50_s"]
    assert kernel["p50_vs_work"] > 1  # the call holds its checks and timed work
    assert set(report["calibration_s"]) == {"fast", "baseline"}
    assert f"| {KERNEL} | fast |" in report["text"]
    assert "kernel calibration (2 score calls" in report["text"]


def test_the_command_prints_the_breakdown(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "bench",
            "--scoring",
            "--task",
            KERNEL,
            "--score-repeats",
            "1",
            "--sandbox",
            SANDBOX,
            "--no-calibration",
            "--json",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    kernel = data["tasks"][KERNEL]
    # the runner is kept for the episode: started in its first call, not in the calls after
    assert kernel["fast"]["first_call_s"] > 0
    assert kernel["fast"]["phases_p50_s"]["timed work"] > 0
    assert kernel["baseline"]["phases_p50_s"]["spawn"] > 0
    assert "calibration_s" not in data
