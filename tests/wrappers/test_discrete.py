"""DiscreteCommands, StepBudget, EncodeObservation and the shipped menus, on real envs.

OptimizeKernel at mini scale in the local sandbox (``anchors`` given, so nothing is calibrated).
Most tests never score; the stable-baselines3 check over the shipped menu scores for real and
is marked slow, as is the FixEmbedding menu test (it needs the task's assets and trains).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import rebench_gym
from rebench_gym.errors import UnenforcedLimitWarning, UsageError
from rebench_gym.tasks.optimize_kernel.task import expected_output
from rebench_gym.wrappers import (
    Command,
    DiscreteCommands,
    EncodeObservation,
    StepBudget,
    load_menu,
)
from rebench_gym.wrappers.encode import STATE_FEATURES, hashed_bag_of_words
from rebench_gym.wrappers.menus import available_menus, parse_menu

KERNEL = "RE-Bench/OptimizeKernel-v0"
KERNEL_START = (
    Path(rebench_gym.__file__).parent / "tasks/optimize_kernel/workspace/solution/solution.py"
)
pytestmark = pytest.mark.filterwarnings("ignore:sandbox='local' gives the agent no isolation")

MakeEnv = Callable[..., gym.Env[Any, Any]]


@pytest.fixture
def make_kernel(cache_dir: Path) -> Iterator[MakeEnv]:
    """Real mini kernel envs (closed after the test)."""
    made: list[gym.Env[Any, Any]] = []

    def make(sandbox: str = "local") -> gym.Env[Any, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            env = gym.make(
                KERNEL, scale="mini", sandbox=sandbox, anchors=(4.0, 3.0), cache_dir=str(cache_dir)
            )
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


def feature(env: gym.Env[Any, Any], obs: np.ndarray, name: str) -> float:
    return float(obs[env.get_wrapper_attr("feature_names").index(name)])


# ----- menus ------------------------------------------------------------------------------------
def test_shipped_menus_load_by_task_name_and_env_id() -> None:
    menus = available_menus()
    assert menus["optimize_kernel"] == KERNEL
    assert menus["fix_embedding"] == "RE-Bench/FixEmbedding-v0"
    for task, env_id in menus.items():
        by_name, by_id = load_menu(task), load_menu(env_id)
        assert by_name == by_id
        names = [c.name for c in by_name]
        assert "score" in names and "submit" in names
        assert all(c.description for c in by_name), task


def test_unknown_menu_and_malformed_entries_raise_usage_errors() -> None:
    with pytest.raises(UsageError, match=r"no command menu is shipped for .nope.*optimize_kernel"):
        load_menu("nope")
    with pytest.raises(UsageError, match="exactly one of"):
        parse_menu([{"name": "x", "bash": "ls", "score": {}}])
    with pytest.raises(UsageError, match="string 'name'"):
        parse_menu([{"bash": "ls"}])
    with pytest.raises(UsageError, match="needs a string field 'content'"):
        parse_menu([{"name": "w", "write_file": {"path": "a"}}])
    with pytest.raises(UsageError, match="appears twice"):
        parse_menu([{"name": "s", "score": {}}, {"name": "s", "submit": {}}])
    with pytest.raises(UsageError, match="non-empty list"):
        parse_menu([])


def _variant_source(name: str) -> str:
    return json.loads(next(c.action for c in load_menu(KERNEL) if c.name == name))["content"]


def _run_variant(source: str, x: torch.Tensor) -> np.ndarray:
    namespace: dict[str, Any] = {}
    exec(compile(source, "<variant>", "exec"), namespace)
    out = namespace["prefix_sum"](x)
    assert out.shape == x.shape
    return np.asarray(out.to(torch.int64))


@pytest.mark.parametrize(
    ("name", "correct"),
    [
        ("write_start", True),
        ("write_mask_mul", True),
        ("write_fused_inplace", True),
        ("write_float64", True),
        ("write_wrong_inclusive", False),
    ],
)
def test_kernel_menu_variants_are_what_their_descriptions_say(name: str, correct: bool) -> None:
    x = torch.randint(
        -10, 10, (4097,), dtype=torch.int32, generator=torch.Generator().manual_seed(1)
    )
    got = _run_variant(_variant_source(name), x)
    assert np.array_equal(got, expected_output(x.numpy())) is correct


def test_kernel_knobs_apply_to_the_starting_solution_and_keep_it_correct() -> None:
    source = KERNEL_START.read_text()
    assert _variant_source("write_start").strip() in source  # write_start restores the start
    for name in ("knob_cumsum_int32", "knob_output_int32"):
        call = json.loads(next(c.action for c in load_menu(KERNEL) if c.name == name))
        assert source.count(call["old"]) == 1, name
        source = source.replace(call["old"], call["new"])
    x = torch.randint(
        -10, 10, (1000,), dtype=torch.int32, generator=torch.Generator().manual_seed(2)
    )
    assert np.array_equal(_run_variant(source, x), expected_output(x.numpy()))


# ----- DiscreteCommands -------------------------------------------------------------------------
def test_discrete_commands_runs_menu_entries_in_the_real_env(make_kernel: MakeEnv) -> None:
    env = DiscreteCommands(make_kernel())
    names = env.command_names
    assert env.action_space == gym.spaces.Discrete(len(names))
    assert names[-2:] == ["score", "submit"]
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(names.index("write_mask_mul"))
    assert (info["command"], info["command_index"]) == ("write_mask_mul", 3)
    assert "wrote" in obs["terminal"] and (reward, terminated, truncated) == (0.0, False, False)
    obs, *_ = env.step(np.int64(names.index("view_solution")))  # numpy integers as sb3 sends
    assert "x * (before & 1)" in obs["terminal"]
    # The knob's text is not in this variant: the edit fails as data, the episode goes on.
    obs, _, terminated, _, info = env.step(np.array(names.index("knob_cumsum_int32")))
    assert "str_replace failed" in obs["terminal"] and not terminated
    assert "action_error" in info
    assert "write_fused_inplace" in env.describe()


def test_wrapped_spec_round_trips_through_json(make_kernel: MakeEnv) -> None:
    env = EncodeObservation(DiscreteCommands(StepBudget(make_kernel(), 2), ["true", "score"]))
    assert env.spec is not None
    again = gym.make(gym.envs.registration.EnvSpec.from_json(env.spec.to_json()))
    try:
        assert again.get_wrapper_attr("command_names") == ["true", "score"]
        assert again.observation_space == env.observation_space
    finally:
        again.close()


def test_discrete_commands_rejects_bad_indices_and_menus(make_kernel: MakeEnv) -> None:
    env = DiscreteCommands(make_kernel(), ["echo hi", Command("s", "score")])
    env.reset()
    obs, *_, info = env.step(0)
    assert "hi" in obs["terminal"] and info["command"] == "echo hi"
    for bad in (2, -1, 1.5, True, "0"):
        with pytest.raises(UsageError, match="index"):
            env.step(bad)
    with pytest.raises(UsageError, match="invalid action"):
        DiscreteCommands(make_kernel(), [Command("bad", '{"tool": "nope"}')])
    with pytest.raises(UsageError, match="at least one"):
        DiscreteCommands(make_kernel(), [])
    with pytest.raises(UsageError, match="no command menu"):
        DiscreteCommands(make_kernel(), "RE-Bench/NoSuchTask-v0")


def test_step_budget_truncates_and_scores_the_final_state(make_kernel: MakeEnv) -> None:
    env = DiscreteCommands(StepBudget(make_kernel(), max_steps=2), ["rm -rf solution", "true"])
    _, info = env.reset()
    assert info["step_budget"] == {"limit": 2, "used": 0, "left": 2}
    _, _, _, truncated, info = env.step(0)
    assert not truncated and info["step_budget"]["left"] == 1
    obs, reward, terminated, truncated, info = env.step(1)
    assert (terminated, truncated, info["truncated_by"]) == (False, True, "step_budget")
    assert info["final_scored"] and len(info["score_log"]) == 1  # scored (invalid: no solution)
    assert "step budget used up" in obs["terminal"] and reward == 0.0
    with pytest.raises(UsageError):
        StepBudget(make_kernel(), max_steps=0)


# ----- EncodeObservation ------------------------------------------------------------------------
def test_hashed_bag_of_words_is_stable_and_unit_length() -> None:
    a = hashed_bag_of_words("[exit code 1] No such file", 16)
    assert a.dtype == np.float32 and a.shape == (16,)
    assert np.isclose(np.linalg.norm(a), 1.0)
    assert np.array_equal(a, hashed_bag_of_words("[EXIT code 1]  no such FILE!", 16))
    assert not np.array_equal(a, hashed_bag_of_words("wrote 244 bytes", 16))
    assert not hashed_bag_of_words("", 16).any()


def test_encoded_observations_are_float32_inside_the_box(make_kernel: MakeEnv) -> None:
    env = EncodeObservation(DiscreteCommands(StepBudget(make_kernel(), 5)), 32, 16)
    names = env.get_wrapper_attr("command_names")
    n = len(STATE_FEATURES) + len(names) + 32 + 16
    assert env.observation_space.shape == (n,) and env.observation_space.dtype == np.float32
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space and "instructions" not in info
    assert feature(env, obs, "budget_left") == 1.0 and feature(env, obs, "step") == 0.0
    assert info["text_observation"]["terminal"]
    before = obs
    obs, *_ = env.step(names.index("write_fused_inplace"))
    assert obs in env.observation_space
    assert feature(env, obs, "command=write_fused_inplace") == 1.0
    assert feature(env, obs, "budget_left") == pytest.approx(0.8)
    assert feature(env, obs, "step") == pytest.approx(0.2)  # step_scale = the StepBudget's 5
    files = slice(n - 16, n)
    assert not np.array_equal(obs[files], before[files])  # the tree shows the new size
    obs, *_ = env.step(names.index("write_wrong_inclusive"))
    obs, _, _, _, info = env.step(names.index("check_example"))
    assert "wrong output" in info["text_observation"]["terminal"]
    assert feature(env, obs, "exit_ok") == 0.0 and feature(env, obs, "exit_failed") == 1.0
    with pytest.raises(UsageError):
        EncodeObservation(make_kernel(), terminal_features=-1)


def test_exit_status_features_follow_the_last_shell_command(make_kernel: MakeEnv) -> None:
    env = EncodeObservation(DiscreteCommands(make_kernel(), ["true", "exit 3", "score"]))
    env.reset()
    obs, *_ = env.step(0)
    assert (feature(env, obs, "exit_ok"), feature(env, obs, "exit_failed")) == (1.0, 0.0)
    obs, *_ = env.step(1)
    assert (feature(env, obs, "exit_ok"), feature(env, obs, "exit_failed")) == (0.0, 1.0)
    env.step(0)
    env.unwrapped.workspace.joinpath("solution/solution.py").unlink()
    obs, *_ = env.step(2)  # instant: nothing to import, an invalid row
    assert feature(env, obs, "last_valid") == -1.0
    assert feature(env, obs, "score_calls") == pytest.approx(0.1)
    assert feature(env, obs, "exit_ok") == 0.0 and feature(env, obs, "command=score") == 1.0


def test_sb3_env_checker_passes_on_a_scoring_free_menu(make_kernel: MakeEnv) -> None:
    from stable_baselines3.common.env_checker import check_env

    menu = [c for c in load_menu(KERNEL) if c.name.startswith(("write_", "knob_", "view_"))]
    env = EncodeObservation(DiscreteCommands(make_kernel(), menu))
    check_env(env, warn=True)


@pytest.mark.slow
def test_sb3_env_checker_passes_on_the_shipped_menu_with_real_scoring(
    make_kernel: MakeEnv,
) -> None:
    from stable_baselines3.common.env_checker import check_env

    env = EncodeObservation(DiscreteCommands(StepBudget(make_kernel(), max_steps=3)))
    env.action_space.seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning from the checker either
        warnings.filterwarnings("ignore", message="sandbox='local' gives the agent no isolation")
        # local says once that it shares the host's /tmp: the env's, not the checker's
        warnings.filterwarnings("ignore", category=UnenforcedLimitWarning)
        check_env(env, warn=True)
    obs, info = env.reset(seed=1)
    names = env.get_wrapper_attr("command_names")
    env.step(names.index("write_mask_mul"))
    obs, reward, terminated, _, info = env.step(names.index("submit"))
    assert terminated and info["final_valid"] and obs in env.observation_space
    assert feature(env, obs, "last_valid") == 1.0
    assert feature(env, obs, "best_score") == pytest.approx(min(max(reward, 0.0), 5.0), abs=1e-6)


@pytest.mark.slow
def test_fix_embedding_menu_repairs_the_model(cache_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        base = gym.make(
            "RE-Bench/FixEmbedding-v0",
            scale="mini",
            sandbox="local",
            cache_dir=str(cache_dir),
            score_timeout=600,  # the 60 s default is too short on a heavily loaded machine
        )
    env = DiscreteCommands(base)
    try:
        names = env.command_names
        env.reset(seed=0)
        obs, *_ = env.step(names.index("repair_adapter_25"))
        assert "[exit code 2]" in obs["terminal"] or "No such file" in obs["terminal"]
        env.step(names.index("write_repair_script"))
        obs, *_ = env.step(names.index("repair_adapter_25"))
        assert "saved solution/fixed_model.pth" in obs["terminal"], obs["terminal"]
        _, reward, _, _, info = env.step(names.index("score"))
        assert info["score"]["valid"] and reward > 0.3, info["score"]
    finally:
        env.close()
