"""task.yaml is validated against the task's typed parameters; ``Task.with_params`` derives a
task whose scale uses changed parameters, validated the same way."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from rebench_gym.errors import UsageError
from rebench_gym.tasks import get_task, task_names
from rebench_gym.tasks.base import TaskParams, TaskSpec


@dataclass(frozen=True)
class _Params(TaskParams):
    length: int
    device: str = "cpu"


def _spec(tmp_path: Path, mini: str) -> Path:
    path = tmp_path / "optimize_kernel" / "task.yaml"
    path.parent.mkdir()
    path.write_text(
        "name: optimize_kernel\nenv_id: X-v0\nversion: '1'\ntitle: t\noriginal: o\n"
        "higher_is_better: false\naggregation: best\nalways_hidden: false\nscales:\n"
        "  mini:\n    resources: {cpus: 1, memory_gb: 1, disk_gb: 1}\n"
        "    time_budget_s: 60\n    score_timeout_s: 10\n"
        f"    anchors: calibrate\n{mini}"
    )
    return path


def test_every_task_yaml_parses_into_its_typed_params() -> None:
    for name in task_names():
        task = get_task(name)
        for scale in task.spec.scales:
            params = task.params(scale)  # type: ignore[arg-type]
            assert isinstance(params, task.params_type(scale)), (name, scale)


def test_unknown_key_is_named_with_the_file(tmp_path: Path) -> None:
    path = _spec(tmp_path, "    lenght: 5\n")
    with pytest.raises(UsageError) as e:
        TaskSpec.load(path, lambda _s: _Params)
    assert str(e.value).startswith(f"{path}: scales.mini: unknown key 'lenght'")


def test_missing_key_and_wrong_type_are_named(tmp_path: Path) -> None:
    path = _spec(tmp_path, "    device: cuda\n")
    with pytest.raises(UsageError, match=r"task.yaml: scales.mini: missing key 'length'"):
        TaskSpec.load(path, lambda _s: _Params)
    path.unlink()
    path.parent.rmdir()
    path = _spec(tmp_path, "    length: many\n")
    with pytest.raises(UsageError, match=r"scales.mini: key 'length': expected int, got str"):
        TaskSpec.load(path, lambda _s: _Params)
    spec = TaskSpec.load(
        _respec(path, "    length: 7\n    max_solution_bytes: 9\n"), lambda _s: _Params
    )
    assert spec.scale("mini").params.length == 7 and spec.scale("mini").params.device == "cpu"
    assert spec.scale("mini").max_solution_bytes == 9


def _respec(path: Path, mini: str) -> Path:
    tmp = path.parent.parent
    shutil.rmtree(path.parent)
    return _spec(tmp, mini)


def test_unknown_top_level_key_is_named(tmp_path: Path) -> None:
    path = _spec(tmp_path, "    length: 1\n")
    path.write_text(path.read_text().replace("title: t\n", "title: t\ntitel: t\n"))
    with pytest.raises(UsageError, match=r"task.yaml: unknown key 'titel'"):
        TaskSpec.load(path, lambda _s: _Params)


def test_with_params_derives_a_validated_task() -> None:
    task = get_task("optimize_kernel")
    resources = {"cpus": 2, "memory_gb": 4, "disk_gb": 2, "gpus": 0}
    derived = task.with_params("full", length=1000, resources=resources)
    assert derived.params("full").length == 1000
    assert derived.spec.scale("full").gpus == 0
    assert task.params("full").length != 1000  # the original is unchanged
    assert derived.params("mini") == task.params("mini")
    assert derived.max_solution_bytes("full") == task.max_solution_bytes("full")
    with pytest.raises(UsageError, match=r"scales.full .*unknown key 'lenght'"):
        task.with_params("full", lenght=5)
    with pytest.raises(UsageError, match=r"key 'length': expected int"):
        task.with_params("full", length="long")
    with pytest.raises(UsageError, match=r"key 'resources': missing key 'disk_gb'"):
        task.with_params("full", resources={"cpus": 2, "memory_gb": 4})
    with pytest.raises(UsageError, match=r"key 'memory_gb' must be a positive number"):
        task.with_params("full", resources={**resources, "memory_gb": -1})
