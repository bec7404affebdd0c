"""The rebench command: help, listing, usage errors, a real run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rebench_gym.cli import main


def test_help_explains_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("list", "check", "run", "calibrate", "bench", "leaderboard", "rehearse"):
        assert command in out


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 7
    kernel = next(r for r in rows if r["id"] == "RE-Bench/OptimizeKernel-v0")
    assert kernel["built"] and kernel["scales"] == ["full", "mini"]
    assert all(row["built"] for row in rows)


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "RE-Bench/Nope-v0", "--agent", "noop", "--scale", "mini"],
        ["run", "RE-Bench/OptimizeKernel-v0", "--agent", "genius", "--scale", "mini"],
        ["run", "RE-Bench/OptimizeKernel-v0", "--agent", "noop", "--episodes", "0"],
        ["run", "RE-Bench/OptimizeKernel-v0", "--agent", "noop", "--ray-node-ip", "10.0.0.2"],
        ["run", "RE-Bench/OptimizeKernel-v0", "--agent", "noop", "--ray-cpus-per-env", "0.5"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        code = main(argv)
        raise SystemExit(code)
    assert exc.value.code == 2


@pytest.mark.slow
def test_console_script_runs_a_real_episode() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rebench_gym.cli",
            "run",
            "RE-Bench/OptimizeKernel-v0",
            "--agent",
            "noop",
            "--scale",
            "mini",
            "--sandbox",
            "local",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)[0]
    assert result["agent"] == "noop" and result["steps"] == 2
    assert result["score_log"][0]["valid"] is True


def test_bench_reports_ratios_against_raw_shell() -> None:
    from rebench_gym.bench import run_benchmarks

    report = run_benchmarks(sandboxes=["local"], repeats=20, extended=False)
    entry = report["sandboxes"]["local"]
    assert report["raw_bash_roundtrip_p50_ms"] > 0
    assert entry["ratio_vs_raw"] > 0 and "overhead_p50_ms" in entry
    assert "| local |" in report["text"]


def test_assets_prepare_explains_missing_sources(
    capsys: pytest.CaptureFixture[str], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    argv = [
        "assets",
        "prepare",
        "RE-Bench/FixEmbedding-v0",
        "--scale",
        "full",
        "--source",
        str(tmp_path),
    ]
    assert main(argv) == 1
    assert "lacks gpt2-xl" in capsys.readouterr().err
    assert main(["assets", "prepare", "RE-Bench/OptimizeKernel-v0", "--source", "x"]) == 2


def test_task_option_flag_is_parsed_and_reaches_the_task(
    capsys: pytest.CaptureFixture[str], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        main(["run", "RE-Bench/RustCodecontests-v0", "--agent", "noop", "--task-option", "novalue"])
    assert exc.value.code == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    # The task itself refuses a key given as an option (options are recorded with the run).
    code = main(
        [
            "run",
            "RE-Bench/RustCodecontests-v0",
            "--agent",
            "noop",
            "--scale",
            "mini",
            "--sandbox",
            "local",
            "--db",
            str(tmp_path / "runs.db"),
            "--task-option",
            "api_key=sk-secret",
        ]
    )
    assert code == 2
    assert "api_key" in capsys.readouterr().err
