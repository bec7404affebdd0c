"""ReBenchEnv: registration, spaces, actions, rewards, episode end, and bad input."""

from __future__ import annotations

import json
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import rebench_gym
from rebench_gym import actions
from rebench_gym.errors import HardwareError
from rebench_gym.tasks.base import cuda_device_count
from tests.conftest import HAVE_BWRAP, SANDBOXES

KERNEL = "RE-Bench/OptimizeKernel-v0"
FAKE_ANCHORS = (4.0, 3.0)  # skips calibration where the numbers do not matter


def make(sandbox: str = "local", **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("anchors", FAKE_ANCHORS)
    return gym.make(KERNEL, scale="mini", sandbox=sandbox, **kw)


@pytest.fixture(params=SANDBOXES)
def env(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    e = make(request.param, command_timeout=20)
    e.reset(seed=0)
    yield e
    e.close()


def test_all_seven_ids_registered_with_string_entry_points() -> None:
    assert len(rebench_gym.ENV_IDS) == 7
    for env_id in rebench_gym.ENV_IDS:
        spec = gym.spec(env_id)
        assert spec.entry_point == "rebench_gym.env:ReBenchEnv"
        json.loads(spec.to_json())


@pytest.mark.skipif(cuda_device_count() > 0, reason="this machine has a GPU")
def test_full_scale_without_gpu_names_what_is_missing() -> None:
    e = gym.make(KERNEL, sandbox="local")
    with pytest.raises(HardwareError, match="scale='mini'"):
        e.reset()
    e.close()


def test_spec_kwargs_recorded() -> None:
    e = make(hidden_score=True)
    assert e.spec is not None and e.spec.kwargs["hidden_score"] is True
    assert e.spec.kwargs["scale"] == "mini"
    e.close()


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_check_env_passes(sandbox: str) -> None:
    e = make(sandbox)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(e.unwrapped)
    e.close()
    e.close()


@pytest.mark.slow
@pytest.mark.parametrize("env_id", sorted(rebench_gym.ENV_IDS))
def test_check_env_passes_for_every_id(env_id: str) -> None:
    # Mini assets come from the session cache (the task tests prepare them first); fixed
    # anchors skip calibration, which check_env's resets do not need.
    e = gym.make(env_id, scale="mini", sandbox="bwrap" if HAVE_BWRAP else "local", anchors=(2, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(e.unwrapped)
    e.close()
    e.close()


def test_reset_observation_has_instructions_and_files(env) -> None:  # type: ignore[no-untyped-def]
    obs, info = env.reset(seed=1)
    assert "prefix_sum" in obs["terminal"] and "solution/solution.py" in obs["terminal"]
    assert "solution/solution.py" in obs["files"]
    assert info["score_log"] == [] and info["best_normalized"] == 0.0
    obs2, _ = env.reset(seed=1)
    assert obs2 == obs


def test_reset_restores_workspace(env) -> None:  # type: ignore[no-untyped-def]
    env.step("rm -rf solution && touch junk")
    obs, _ = env.reset()
    assert "junk" not in obs["files"] and "solution/solution.py" in obs["files"]


def test_file_tools(env) -> None:  # type: ignore[no-untyped-def]
    obs, *_ = env.step(actions.write_file("notes/a.txt", "alpha\nbeta\ngamma\n"))
    assert "wrote" in obs["terminal"] and "notes/a.txt" in obs["files"]
    obs, *_ = env.step(actions.str_replace("notes/a.txt", "beta", "BETA"))
    assert "replaced 1" in obs["terminal"]
    obs, *_ = env.step(actions.view("notes/a.txt", 2, 3))
    assert obs["terminal"] == "2\tBETA\n3\tgamma"
    obs, *_ = env.step(actions.str_replace("notes/a.txt", "zzz", "y"))
    assert "occurs 0 times" in obs["terminal"]
    obs, *_ = env.step(actions.view("missing.txt"))
    assert "file error" in obs["terminal"]


@pytest.mark.parametrize(
    ("action", "fragment"),
    [
        ('{"tool": "bash", "command": "ls"', "malformed JSON"),
        ('{"tool": "teleport"}', "unknown tool"),
        (actions.write_file("../outside.txt", "x"), "outside the workspace"),
        (actions.view("/etc/passwd"), "outside the workspace"),
    ],
)
def test_bad_actions_give_observations(env, action: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    obs, reward, terminated, truncated, info = env.step(action)
    assert fragment in obs["terminal"]
    assert reward == 0 and not terminated and not truncated and "action_error" in info
    assert env.observation_space.contains(obs)
    assert env.step("echo still-here")[0]["terminal"].startswith("still-here")


@pytest.mark.parametrize(
    ("command", "fragment"),
    [
        ("head -c 100000000 /dev/urandom", "omitted"),
        ("printf '\\xff\\xfe\\x00binary'", "binary"),
        ('{"tool": "bash", "command": "sleep 100000", "timeout": 1}', "timed out"),
        ("for i in $(seq 2000); do sleep 60 & done; echo forked", "forked"),
        ("nohup sleep 600 >/dev/null 2>&1 & echo bg", "bg"),
    ],
)
def test_hostile_commands_keep_env_working(env, command: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    obs, *_ = env.step(command)
    assert fragment in obs["terminal"]
    assert env.observation_space.contains(obs)
    assert len(obs["terminal"]) <= env.unwrapped.max_output_chars
    assert env.step("echo ok")[0]["terminal"].startswith("ok")


def test_step_before_reset_and_after_end() -> None:
    e = make()
    with pytest.raises(RuntimeError, match="reset"):
        e.unwrapped.step("ls")
    e.close()


@pytest.mark.slow
@pytest.mark.parametrize("hidden", [False, True])
def test_rewards_sum_to_final_score_and_submit_scores_final_state(hidden: bool) -> None:
    e = make(hidden_score=hidden)
    e.reset()
    total = 0.0
    obs, r, term, trunc, info = e.step("score")
    total += r
    assert ("[score] valid" in obs["terminal"]) if hidden else ("raw" in obs["terminal"])
    assert (info["score"]["raw"] is None) == hidden
    e.step("echo changed >> solution/notes.txt")
    obs, r, term, trunc, info = e.step("submit")
    total += r
    assert term and not trunc
    assert info["final_scored"] is True and len(info["score_log"]) == 2
    assert total == pytest.approx(e.unwrapped.score_log.normalized)
    with pytest.raises(RuntimeError, match="ended"):
        e.step("ls")
    e.close()


@pytest.mark.slow
def test_invalid_solution_scores_invalid_without_crashing() -> None:
    e = make()
    e.reset()
    e.step(actions.write_file("solution/solution.py", "def prefix_sum(x):\n    return x\n"))
    obs, reward, *_, info = e.step("score")
    assert "invalid" in obs["terminal"] and "mismatch" in info["score"]["message"]
    assert reward == 0.0 and info["score_log"][0]["valid"] is False
    e.step("rm -rf solution")
    obs, *_ = e.step("score")
    assert "no solution/" in obs["terminal"]
    e.close()
