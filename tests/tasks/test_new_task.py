"""An eighth task is one folder: a throwaway task folder on ``$REBENCH_TASK_PATH`` is registered,
made with ``gym.make``, scored (reference ~1, start ~0), and finds its menu and Docker folder,
without a change to any file outside the folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import rebench_gym

ENV_ID = "RE-Bench-Test/ToyCount-v0"

TASK_YAML = """\
name: toy_count
env_id: RE-Bench-Test/ToyCount-v0
version: "0.1.0"
title: Count to the target
original: none
higher_is_better: true
aggregation: best
always_hidden: false
scales:
  mini:
    resources: {cpus: 1, memory_gb: 2, disk_gb: 1, gpus: 0}
    time_budget_s: 600
    score_timeout_s: 30
    max_solution_bytes: 4096
    anchors: {start: -10, reference: 0, source: the toy's own constants}
    target: 10
"""

TASK_PY = '''\
"""A toy task: solution/answer.txt must hold the target number; raw = -|answer - target|."""

from __future__ import annotations

from dataclasses import dataclass

from rebench_gym.scoring import ScoreResult
from rebench_gym.tasks.base import ScoreContext, Task, TaskParams


@dataclass(frozen=True)
class Params(TaskParams):
    target: int


class ToyCountTask(Task):
    mini_params = Params

    def score(self, ctx: ScoreContext) -> ScoreResult:
        path = ctx.solution / "answer.txt"
        try:
            answer = int(path.read_text().strip())
        except (OSError, ValueError) as e:
            return ScoreResult.invalid(f"solution/answer.txt must hold an integer ({e})")
        target = self.params(ctx.scale).target
        return ScoreResult(raw=-abs(answer - target), valid=True, message=f"answer {answer}")
'''

MENU_YAML = """\
commands:
  - name: write_ten
    description: the right answer
    write_file: {path: solution/answer.txt, content: "10"}
  - name: score
    description: score
    score: {}
  - name: submit
    description: submit
    submit: {}
"""

DRIVER = """\
import json, warnings
import gymnasium as gym
import rebench_gym
from rebench_gym import agents, rollout
from rebench_gym.sandbox.docker_images import docker_dir
from rebench_gym.tasks import get_task
from rebench_gym.wrappers.menus import load_menu

warnings.simplefilter("ignore")
env_id = "RE-Bench-Test/ToyCount-v0"
env = gym.make(env_id, scale="mini", sandbox="local")
try:
    ref = rollout(env, agents.make("reference", env_id=env_id, scale="mini"))
    noop = rollout(env, agents.make("noop"))
finally:
    env.close()
print(json.dumps({
    "registered": env_id in rebench_gym.ENV_IDS,
    "reference": ref.normalized_score,
    "start": noop.normalized_score,
    "menu": [c.name for c in load_menu(env_id)],
    "docker_dir": str(docker_dir(env_id)),
    "package_dir": str(get_task("toy_count").package_dir),
}))
"""


def _write_task(root: Path) -> Path:
    folder = root / "toy_count"
    (folder / "workspace" / "solution").mkdir(parents=True)
    (folder / "reference" / "mini").mkdir(parents=True)
    (folder / "task.yaml").write_text(TASK_YAML)
    (folder / "task.py").write_text(TASK_PY)
    (folder / "menu.yaml").write_text(MENU_YAML)
    (folder / "instructions.md").write_text(
        "Write the number $target into solution/answer.txt (scale: $scale).\n"
    )
    (folder / "workspace" / "solution" / "answer.txt").write_text("0\n")
    (folder / "reference" / "mini" / "answer.txt").write_text("10\n")
    return folder


def _files_naming_the_task() -> list[Path]:
    """Files of the package and its project that mention the toy task (there must be none:
    nothing outside the task's folder may need an edit to add it)."""
    package = Path(rebench_gym.__file__).parent
    found = []
    for p in sorted([*package.rglob("*"), package.parent / "pyproject.toml"]):
        if p.is_file() and "__pycache__" not in p.parts:
            data = p.read_bytes()
            if b"toy_count" in data or b"ToyCount" in data:
                found.append(p)
    return found


def test_an_eighth_task_is_one_folder(tmp_path: Path) -> None:
    folder = _write_task(tmp_path / "my_tasks")
    env = {
        **os.environ,
        "REBENCH_TASK_PATH": str(folder.parent),
        "REBENCH_CACHE_DIR": str(tmp_path / "cache"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DRIVER)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["registered"]
    assert out["reference"] >= 0.99, out
    assert out["start"] <= 0.01, out
    assert out["menu"] == ["write_ten", "score", "submit"]
    assert out["docker_dir"] == str(folder.resolve() / "docker")
    assert out["package_dir"] == str(folder.resolve())
    assert _files_naming_the_task() == []


def test_without_the_search_path_the_task_is_unknown(tmp_path: Path) -> None:
    _write_task(tmp_path / "my_tasks")
    assert ENV_ID not in rebench_gym.ENV_IDS
