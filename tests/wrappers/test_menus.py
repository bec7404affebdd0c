"""The shipped command menus (``rebench_gym/tasks/*/menu.yaml``) checked against the tasks.

Pure file checks, no env, no scoring: every menu loads, every entry builds an action the env
parses, every ``str_replace`` knob's ``old`` text occurs exactly once in the file it edits in
the task's mini starting workspace (laid out as the task's ``populate_workspace`` does), every
``write_file`` stays in ``solution/`` or the workspace top, ``restore_*`` entries restore the
starting file byte for byte, and the written programs compile. Two task-specific checks: the
ScalingLaw answers sit where their descriptions say relative to the FLOP budget, and the
RestrictedMLM model variants map ``[batch, seq]`` ids to ``[batch, seq, vocab]`` logits.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

import rebench_gym
from rebench_gym import actions as act
from rebench_gym.tasks.scaling_law.task import training_flops
from rebench_gym.wrappers.menus import available_menus, load_menu, menu_path

TASKS = Path(rebench_gym.__file__).parent / "tasks"
NEW_MENUS = (
    "scaling_law",
    "restricted_mlm",
    "optimize_llm_foundry",
    "finetune_gpt2_qa",
    "rust_codecontests",
)
# Where a mini workspace's files come from, first match wins (see each task's
# populate_workspace): most tasks copy workspace/ as it is; ScalingLaw copies workspace/train.py
# and then workspace/mini/ over the top; OptimizeLLMFoundry copies workspace/mini/ only.
MINI_ROOTS: dict[str, tuple[str, ...]] = {
    "scaling_law": ("workspace/mini", "workspace"),
    "optimize_llm_foundry": ("workspace/mini",),
}
# Knobs that edit a file a menu entry writes (not the starting file): knob -> that entry.
KNOBS_ON_VARIANTS = {("rust_codecontests", "knob_samples_8"): "write_sample_and_check"}


def starting_file(task: str, rel: str) -> Path | None:
    """The package file a mini workspace of ``task`` starts with at ``rel``, if any."""
    for root in MINI_ROOTS.get(task, ("workspace",)):
        path = TASKS / task / root / rel
        if path.is_file():
            return path
    return None


def calls(task: str) -> dict[str, dict[str, Any]]:
    """The menu's entries as parsed tool calls (``score``/``submit`` as ``{"tool": name}``)."""
    out: dict[str, dict[str, Any]] = {}
    for c in load_menu(task):
        act.parse_action(c.action)  # raises on an action the env would refuse
        out[c.name] = (
            json.loads(c.action) if c.action.lstrip().startswith("{") else {"tool": c.action}
        )
    return out


def test_every_new_task_ships_a_menu_for_its_own_env_id() -> None:
    menus = available_menus()
    for task in NEW_MENUS:
        spec = yaml.safe_load((TASKS / task / "task.yaml").read_text())
        assert menus[task] == spec["env_id"], task


@pytest.mark.parametrize("task", sorted(available_menus()))
def test_menu_entries_build_valid_actions(task: str) -> None:
    commands = load_menu(task)
    assert len({c.name for c in commands}) == len(commands)
    assert all(c.description for c in commands), task
    entries = calls(task)
    assert list(entries)[-2:] == ["score", "submit"]
    for name, call in entries.items():
        assert call["tool"] in ("write_file", "str_replace", "bash", "view", "score", "submit")
        if call["tool"] == "bash":
            assert call["command"].strip(), name


@pytest.mark.parametrize("task", sorted(available_menus()))
def test_write_file_paths_stay_in_solution_or_the_workspace_top(task: str) -> None:
    for name, call in calls(task).items():
        if call["tool"] != "write_file":
            continue
        path = PurePosixPath(call["path"])
        assert not path.is_absolute() and ".." not in path.parts, (name, path)
        assert len(path.parts) == 1 or path.parts[0] == "solution", (name, path)


@pytest.mark.parametrize("task", sorted(available_menus()))
def test_knobs_edit_text_that_occurs_once_in_the_starting_workspace(task: str) -> None:
    entries = calls(task)
    edited: dict[str, str] = {}  # path -> start text with the start knobs applied in order
    for name, call in entries.items():
        if call["tool"] != "str_replace":
            continue
        variant = KNOBS_ON_VARIANTS.get((task, name))
        if variant is not None:
            written = entries[variant]
            assert written["path"] == call["path"], name
            assert written["content"].count(call["old"]) == 1, name
            continue
        start = starting_file(task, call["path"])
        assert start is not None, f"{task}: {name} edits {call['path']}, not a starting file"
        assert start.read_text().count(call["old"]) == 1, f"{task}: {name}"
        # The start knobs combine: each still finds its text after the earlier ones.
        text = edited.setdefault(call["path"], start.read_text())
        assert text.count(call["old"]) == 1, f"{task}: {name} after the earlier knobs"
        edited[call["path"]] = text.replace(call["old"], call["new"])
    for path, text in edited.items():
        check_file_parses(path, text)


@pytest.mark.parametrize("task", NEW_MENUS)
def test_restore_entries_write_the_starting_file_and_variants_parse(task: str) -> None:
    restored = 0
    for name, call in calls(task).items():
        if call["tool"] != "write_file":
            continue
        check_file_parses(call["path"], call["content"])
        if name.startswith("restore"):
            start = starting_file(task, call["path"])
            assert start is not None and call["content"] == start.read_text(), name
            restored += 1
    assert restored or task == "finetune_gpt2_qa"  # its start model is restored by bash


def check_file_parses(path: str, text: str) -> None:
    """A written or edited file is valid Python, YAML, JSON or bash (as far as we can tell)."""
    if path.endswith(".py"):
        compile(text, path, "exec")
    elif path.endswith((".yaml", ".yml")):
        assert isinstance(yaml.safe_load(text), dict), path
    elif path.endswith(".json"):
        json.loads(text)
    elif path.endswith(".sh"):
        assert text.startswith("#!/bin/bash"), path


def test_scaling_law_answers_sit_where_their_descriptions_say() -> None:
    params = yaml.safe_load((TASKS / "scaling_law/task.yaml").read_text())["scales"]["mini"]
    fixed = {k: params[k] for k in ("n_layer", "block_size", "batch_size")}
    low, high = params["flops_band"]
    answers = {
        name: json.loads(call["content"])
        for name, call in calls("scaling_law").items()
        if call["tool"] == "write_file"
    }
    assert answers["restore_start"] == params["default_answer"]
    for name, answer in answers.items():
        ratio = training_flops(answer["n_embd"], answer["max_iters"], fixed) / float(
            params["target_flops"]
        )
        assert answer["n_embd"] % params["n_head"] == 0, name  # train.py can train it
        if name.startswith("answer_w"):
            assert abs(ratio - 1.0) < 1e-3, (name, ratio)  # on the budget line
        elif name in ("answer_over_budget", "answer_under_budget"):
            assert not low <= ratio <= high, (name, ratio)  # invalid, as described
    cap = float(params["experiment_flops"])
    for name, call in calls("scaling_law").items():
        if name.startswith("experiment_"):
            args = dict(a[2:].split("=") for a in call["command"].split() if a.startswith("--"))
            flops = training_flops(int(args["n_embd"]), int(args["max_iters"]), fixed)
            assert 0.5 * cap < flops <= cap, (name, flops)


def test_restricted_mlm_variants_map_ids_to_logits_of_the_right_shape() -> None:
    torch = pytest.importorskip("torch")
    vocab, seq = 174, 128
    for name, call in calls("restricted_mlm").items():
        if call["tool"] != "write_file":
            continue
        namespace: dict[str, Any] = {
            "__file__": str(menu_path("restricted_mlm").parent / "model.py")
        }
        exec(compile(call["content"], name, "exec"), namespace)
        torch.manual_seed(0)
        model = namespace["build_model"]({"vocab_size": vocab, "n_embd": 16, "hidden": 32})
        ids = torch.randint(vocab, (2, seq))
        with torch.no_grad():
            out = model(ids)
        assert out.shape == (2, seq, vocab), name
        other = ids.clone()  # change a neighbour of position 0
        other[:, 1] = (other[:, 1] + 1) % vocab
        with torch.no_grad():
            sees_context = not torch.allclose(model(other)[:, 0], out[:, 0])
        assert sees_context is (name != "restore_start"), name  # the start sees one token
