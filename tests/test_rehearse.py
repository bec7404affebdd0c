"""The rehearsal: every task's full-scale code path on CPU with tiny stand-ins (issue #22)."""

from __future__ import annotations

import importlib.util
import json
import tempfile
from pathlib import Path

import pytest

from rebench_gym import ENV_IDS
from rebench_gym.errors import UsageError
from rebench_gym.rehearse import RehearsalUnavailable, derive_task, rehearse
from rebench_gym.tasks import get_task


def _has_rehearsal(env_id: str) -> bool:
    return importlib.util.find_spec(f"rebench_gym.tasks.{ENV_IDS[env_id]}.rehearse") is not None


def test_derive_task_changes_only_the_full_scale() -> None:
    task = get_task("optimize_kernel")
    derived = derive_task(task, {"length": 1000, "device": "cpu"})
    full = derived.spec.scale("full")
    assert full.params["length"] == 1000 and full.params["device"] == "cpu"
    assert full.gpus == 0  # a rehearsal runs on CPU
    assert derived.spec.scale("mini") == task.spec.scale("mini")
    assert task.spec.scale("full").params["device"] == "cuda"  # the original is untouched
    assert task.spec.scale("full").gpus == 1


def test_unknown_parameter_and_id_are_usage_errors() -> None:
    task = get_task("optimize_kernel")
    if not hasattr(task, "with_params"):
        with pytest.raises(UsageError, match="no_such_param"):
            derive_task(task, {"no_such_param": 1})
    with pytest.raises(UsageError, match="unknown env id"):
        rehearse("RE-Bench/NoSuchTask-v0")


@pytest.mark.slow
@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_rehearsal(env_id: str) -> None:
    if not _has_rehearsal(env_id):
        pytest.skip(f"{env_id} has no rehearse.py yet")
    workdir = Path(tempfile.mkdtemp(prefix="test-rehearse-"))
    lines: list[str] = []
    try:
        report = rehearse(env_id, progress=lines.append, workdir=workdir)
    except RehearsalUnavailable as e:  # e.g. LLM Foundry's stack: torch 2.7 and CUDA only
        assert list(workdir.iterdir()) == []
        pytest.skip(str(e))
    print(json.dumps(report, indent=1))
    assert report["id"] == env_id
    assert report["start"]["valid"], report["start"]["message"]
    assert report["reference"]["valid"], report["reference"]["message"]
    assert report["ok"], report
    assert list(workdir.iterdir()) == []  # everything temporary removed
    workdir.rmdir()
    assert any("reference" in line for line in lines)
