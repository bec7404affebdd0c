"""The rebench command: help, listing, usage errors, a real run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

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


# ----- faults: nothing recorded for a run that cannot start; a clear word for a bad store ------
KERNEL = "RE-Bench/OptimizeKernel-v0"
RUN_MINI = ["run", KERNEL, "--agent", "noop", "--scale", "mini", "--sandbox", "local"]


def test_unknown_agent_or_task_option_records_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    argv = ["run", KERNEL, "--agent", "nosuchagent", "--scale", "mini", "--db", str(db)]
    assert main(argv) == 2
    assert "unknown agent 'nosuchagent'" in capsys.readouterr().err
    assert main([*RUN_MINI, "--db", str(db), "--task-option", "foo=bar"]) == 2
    assert "has no task option 'foo'; it takes none" in capsys.readouterr().err
    assert not db.exists()  # refused before the first write
    rust = ["run", "RE-Bench/RustCodecontests-v0", "--agent", "noop", "--db", str(db)]
    assert main([*rust, "--task-option", "base_urll=http://x/v1"]) == 2
    err = capsys.readouterr().err
    assert "no task option 'base_urll'" in err and "base_url" in err and "model" in err
    assert main(["calibrate", KERNEL, "--task-option", "foo=1"]) == 2
    assert not db.exists()


def test_a_docker_run_without_its_image_names_the_build_command_and_records_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    # full-scale images are not built here (CI builds the mini ones)
    argv = ["run", KERNEL, "--agent", "noop", "--scale", "full", "--sandbox", "docker"]
    assert main([*argv, "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert "SandboxUnavailableError" in err
    assert f"rebench image build {KERNEL} --scale full" in err or "Docker" in err
    assert not db.exists()  # refused before the first write


def test_task_options_a_task_declares_pass_the_check() -> None:
    from rebench_gym.errors import UsageError
    from rebench_gym.runs import accepted_task_options, check_task_options

    check_task_options("RE-Bench/RustCodecontests-v0", {"base_url": "http://x/v1", "model": "m"})
    check_task_options("RE-Bench/FinetuneGPT2QA-v0", {"judge_model": "m", "student_model": "gpt2"})
    check_task_options(KERNEL, {})
    assert accepted_task_options(KERNEL) == frozenset()
    with pytest.raises(UsageError, match="API keys go only in environment variables"):
        check_task_options("RE-Bench/FinetuneGPT2QA-v0", {"judge_api_key": "sk-x"})


def test_a_corrupted_run_store_is_a_usage_error_naming_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    db.write_bytes(os.urandom(8192))
    for argv in (["leaderboard", "--db", str(db)], [*RUN_MINI, "--db", str(db)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
        assert f"the run store {db} cannot be read" in err
        assert f"mv {db} {db}.bad" in err and "--db PATH" in err


def test_resume_of_a_run_another_process_runs_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from rebench_gym.results.store import RunStore

    db = tmp_path / "runs.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from rebench_gym.runs import RunOptions, open_recording\n"
            f"options = RunOptions({KERNEL!r}, 'noop', scale='mini', sandbox='local', "
            "db=sys.argv[1], resume=True)\n"
            "rec = open_recording(options)\n"
            "print('holding', flush=True)\n"
            "time.sleep(120)\n",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        assert main([*RUN_MINI, "--db", str(db), "--resume"]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert "is being run or resumed elsewhere" in err and str(holder.pid) in err
    finally:
        holder.kill()
        holder.wait()
    with RunStore(db) as store:
        assert store.episodes() == []  # the refused run started no episode
        assert len(store.runs()) == 1


# ----- rehearse ---------------------------------------------------------------------------------
def _fake_rehearse(
    monkeypatch: pytest.MonkeyPatch,
    start: dict[str, Any],
    reference: dict[str, Any],
    **extra: Any,
) -> list[str]:
    """Put a stand-in ``rebench_gym.rehearse`` in place; returns the ids it was called with."""
    calls: list[str] = []

    def rehearse(
        env_id: str, *, progress: Any = None, sandbox: str | None = None
    ) -> dict[str, Any]:
        calls.append(env_id if sandbox is None else f"{env_id} in {sandbox}")
        if progress is not None:
            progress("rehearsing")
        return {"id": env_id, "start": start, "reference": reference, **extra}

    module = types.ModuleType("rebench_gym.rehearse")
    module.rehearse = rehearse  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rebench_gym.rehearse", module)
    return calls


def _row(normalized: float, valid: bool = True) -> dict[str, Any]:
    return {
        "raw": 2.0 - normalized,
        "normalized": normalized,
        "valid": valid,
        "message": "ok\nmore" if valid else "wrong output",
        "seconds": 1.25,
    }


def test_rehearse_prints_two_lines_and_exits_by_the_outcome(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _fake_rehearse(monkeypatch, _row(0.0), _row(1.0))
    assert main(["rehearse", KERNEL]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 2 and calls == [KERNEL]
    assert (
        lines[0].startswith(f"{KERNEL} start") and "normalized=0.000 valid (1.2s): ok" in lines[0]
    )
    assert lines[1].startswith(f"{KERNEL} reference") and "normalized=1.000" in lines[1]
    assert "[rebench] rehearsing" in captured.err
    assert main(["rehearse", KERNEL, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["start"]["normalized"] == 0.0 and data["reference"]["valid"] is True
    # the reference not better than the start, or either invalid: exit 1
    _fake_rehearse(monkeypatch, _row(0.5), _row(0.5))
    assert main(["rehearse", KERNEL]) == 1
    assert "INVALID" not in capsys.readouterr().out
    _fake_rehearse(monkeypatch, _row(0.0), _row(1.0, valid=False))
    assert main(["rehearse", KERNEL, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["reference"]["valid"] is False
    assert main(["rehearse", "RE-Bench/Nope-v0"]) == 2
    capsys.readouterr()
    # The report's own verdict (the reference better in the task's direction) decides.
    calls = _fake_rehearse(monkeypatch, _row(0.0), _row(1.0), ok=False)
    assert main(["rehearse", KERNEL]) == 1 and calls == [KERNEL]
    _fake_rehearse(monkeypatch, _row(0.5), _row(0.5), ok=True)
    assert main(["rehearse", KERNEL]) == 0
    calls = _fake_rehearse(monkeypatch, _row(0.0), _row(1.0))
    assert main(["rehearse", KERNEL, "--sandbox", "docker"]) == 0
    assert calls == [f"{KERNEL} in docker"]
