"""TimeBudget and TokenBudget end episodes as RE-Bench does: truncated, final state scored.

Real envs (OptimizeKernel, mini scale, local sandbox) with an injected clock and token counter.
Most tests remove ``solution/`` first so the final scoring is instant (an invalid row); one test
scores the real starting solution to check that the truncating step's reward includes it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import rebench_gym  # noqa: F401 - registers the ids
from rebench_gym.cli import build_parser
from rebench_gym.errors import UsageError
from rebench_gym.wrappers import (
    TimeBudget,
    TokenBudget,
    UsageMeter,
    estimate_tokens,
    find_usage_meter,
    pause_budgets,
)

ENV_ID = "RE-Bench/OptimizeKernel-v0"
pytestmark = pytest.mark.filterwarnings("ignore:sandbox='local' gives the agent no isolation")


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeEnv = Callable[..., gym.Env[Any, Any]]


@pytest.fixture
def make_env(cache_dir: Path) -> Iterator[MakeEnv]:
    """Build real kernel envs (closed after the test); ``anchors`` skips calibration."""
    made: list[gym.Env[Any, Any]] = []

    def make(anchors: tuple[float, float] = (4.0, 3.0)) -> gym.Env[Any, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            env = gym.make(
                ENV_ID, scale="mini", sandbox="local", anchors=anchors, cache_dir=str(cache_dir)
            )
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


def _no_solution(env: gym.Env[Any, Any]) -> None:
    """Remove solution/ so the final scoring is an instant invalid row."""
    *_, info = env.step("rm -rf solution")
    assert info["exit_code"] == 0


# ----- arguments ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seconds": -5}, "seconds must be > 0"),
        ({"seconds": 0}, "seconds must be > 0"),
        ({"seconds": "3600"}, "seconds must be a number, not str"),
        ({"seconds": None}, "seconds must be a number"),
        ({"seconds": float("nan")}, "NaN"),
        ({"seconds": True}, "seconds must be a number, not bool"),
        ({"seconds": 10, "max_score_calls": -1}, "max_score_calls must be >= 0"),
        ({"seconds": 10, "max_score_calls": 2.5}, "max_score_calls must be a whole number"),
        ({"seconds": 10, "clock": "monotonic"}, "clock must be a callable"),
    ],
)
def test_time_budget_rejects_bad_arguments(
    make_env: MakeEnv, kwargs: dict[str, Any], message: str
) -> None:
    env = make_env()
    rest = {k: v for k, v in kwargs.items() if k != "seconds"}
    with pytest.raises(UsageError, match=message):
        TimeBudget(env, kwargs["seconds"], **rest)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tokens": -100}, "max_tokens must be > 0"),
        ({"max_tokens": "1e6"}, "max_tokens must be a number, not str"),
        ({"max_input_tokens": 10.5}, "max_input_tokens must be a whole number"),
        ({"max_output_tokens": 0}, "max_output_tokens must be > 0"),
        ({"max_cost": -0.5}, "max_cost must be > 0"),
        ({"max_cost": [1]}, "max_cost must be a number, not list"),
        ({"counter": 4}, "counter must be a callable"),
    ],
)
def test_token_budget_rejects_bad_arguments(
    make_env: MakeEnv, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        TokenBudget(make_env(), **kwargs)


def test_usage_meter_rejects_bad_reports() -> None:
    meter = UsageMeter()
    with pytest.raises(UsageError, match="prompt_tokens must be an int >= 0"):
        meter.record(prompt_tokens=-1)
    with pytest.raises(UsageError, match="completion_tokens must be an int >= 0"):
        meter.record(completion_tokens=1.5)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="cost must be >= 0"):
        meter.record(cost=-0.01)
    assert meter.reports == 0 and meter.cost is None


def test_default_counter_is_four_characters_per_token() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 4000) == 1000


def test_cli_budget_flags_parse_and_reject_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(
        [
            *("run", ENV_ID, "--agent", "noop"),
            *("--time-budget", "90.5", "--token-budget", "5000", "--record", "out.jsonl"),
        ]
    )
    assert (args.time_budget, args.token_budget, args.record) == (90.5, 5000, "out.jsonl")
    for flag, value in (("--time-budget", "-1"), ("--token-budget", "lots")):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args(["run", ENV_ID, "--agent", "noop", flag, value])
        assert exc.value.code == 2
    assert "--token-budget" in capsys.readouterr().err


def test_wrapped_spec_still_serializes(make_env: MakeEnv) -> None:
    env = TokenBudget(TimeBudget(make_env(), 3600, max_score_calls=5), max_tokens=10_000)
    spec = env.spec
    assert spec is not None
    assert [w.name for w in spec.additional_wrappers][-2:] == ["TimeBudget", "TokenBudget"]
    assert '"max_score_calls": 5' in spec.to_json()


# ----- TimeBudget ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_time_budget_truncates_at_exact_step_and_scores_final_state(make_env: MakeEnv) -> None:
    clock = FakeClock()
    # Anchors well above the starting solution's raw score, so its final score is clearly > 0.
    env = TimeBudget(make_env(anchors=(6.0, 3.0)), seconds=10, clock=clock)
    _, info = env.reset(seed=0)
    assert info["time_budget"]["used_s"] == 0 and info["time_budget"]["left_s"] == 10

    clock.advance(3)  # the agent thinks for 3 s: it counts
    _, reward, terminated, truncated, info = env.step("echo one")
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["time_budget"]["used_s"] == 3 and info["time_budget"]["left_s"] == 7

    clock.advance(6.5)
    *_, truncated, info = env.step("echo two")
    assert not truncated and info["time_budget"]["left_s"] == pytest.approx(0.5)

    clock.advance(0.5)  # exactly at the budget: this action still runs, then the episode ends
    obs, reward, terminated, truncated, info = env.step("echo three")
    assert truncated and not terminated
    assert "three" in obs["terminal"] and "time budget used up" in obs["terminal"]
    assert info["truncated_by"] == "time_budget" and info["end_reason"] == "time_budget"
    assert info["time_budget"]["used_s"] == 10 and info["time_budget"]["left_s"] == 0
    log = env.unwrapped.score_log  # type: ignore[attr-defined]
    assert len(log.rows) == 1 and log.rows[0].valid  # the final state was scored
    assert len(info["score_log"]) == 1 and info["final_scored"] is True
    assert reward == pytest.approx(info["final_normalized"]) and reward > 0

    with pytest.raises(RuntimeError, match="reset"):
        env.step("echo four")
    _, info = env.reset()  # counters start again
    assert info["time_budget"]["used_s"] == 0 and info["time_budget"]["score_calls"] == 0
    assert info["score_log"] == []


def test_paused_time_is_not_counted_and_overspent_action_does_not_run(make_env: MakeEnv) -> None:
    clock = FakeClock()
    env = TimeBudget(make_env(), seconds=10, clock=clock)
    env.reset()
    _no_solution(env)
    with env.get_wrapper_attr("paused")():  # e.g. waiting out an API rate limit
        clock.advance(100)
    clock.advance(2)
    with pause_budgets(env), pause_budgets(env):  # nested pauses count once
        clock.advance(50)
    *_, truncated, info = env.step("echo still within budget")
    assert not truncated
    assert info["time_budget"]["used_s"] == 2 and info["time_budget"]["paused_s"] == 150

    clock.advance(8.5)  # the agent thinks past the budget: its next action is not run
    obs, reward, terminated, truncated, info = env.step("mkdir solution")
    assert truncated and not terminated and info["action_not_run"] is True
    assert info["truncated_by"] == "time_budget"
    assert "before this action ran" in obs["terminal"]
    assert not (env.unwrapped.workspace / "solution").exists()  # type: ignore[attr-defined]
    assert len(info["score_log"]) == 1 and info["score_log"][0]["valid"] is False
    assert reward == 0.0
    assert env.observation_space.contains(obs)


def test_score_calls_beyond_the_limit_are_refused(make_env: MakeEnv) -> None:
    env = TimeBudget(make_env(), seconds=3600, max_score_calls=1)
    _, info = env.reset()
    assert info["time_budget"]["score_calls_left"] == 1
    _no_solution(env)
    *_, info = env.step("score")  # allowed (an instant invalid score: no solution/)
    assert info["time_budget"]["score_calls_left"] == 0 and len(info["score_log"]) == 1
    for action in ("score", '{"tool": "score"}'):
        obs, reward, terminated, truncated, info = env.step(action)
        assert "[score refused]" in obs["terminal"] and "limit of 1 score calls" in obs["terminal"]
        assert (reward, terminated, truncated) == (0.0, False, False)
        assert info["action_refused"] and len(info["score_log"]) == 1
    *_, terminated, truncated, info = env.step("submit")  # submit is still allowed
    assert terminated and not truncated and info["end_reason"] == "submit"


# ----- TokenBudget --------------------------------------------------------------------------------
def test_token_budget_estimates_with_injected_counter_and_truncates_exactly(
    make_env: MakeEnv,
) -> None:
    env = TokenBudget(make_env(), max_output_tokens=3, counter=lambda text: 1)
    _, info = env.reset()
    state = info["token_budget"]
    assert state["source"] == "estimated"
    assert (state["input_tokens"], state["output_tokens"]) == (1, 0)  # the reset observation
    _no_solution(env)  # step 1: 1 output token
    *_, truncated, info = env.step("echo two")
    assert not truncated and info["token_budget"]["left"] == {"max_output_tokens": 1}
    obs, _, terminated, truncated, info = env.step("echo three")  # reaches the limit
    assert truncated and not terminated and "three" in obs["terminal"]
    assert info["truncated_by"] == "token_budget" and info["end_reason"] == "token_budget"
    state = info["token_budget"]
    assert (state["input_tokens"], state["output_tokens"], state["total_tokens"]) == (4, 3, 7)
    assert state["exhausted"] == ["max_output_tokens"]
    assert len(info["score_log"]) == 1 and info["final_scored"] is True


def test_token_budget_uses_reported_usage(make_env: MakeEnv) -> None:
    env = TokenBudget(make_env(), max_tokens=1000)
    meter = env.get_wrapper_attr("usage_meter")
    assert find_usage_meter(env) is meter
    env.reset()
    meter.record(prompt_tokens=600, completion_tokens=50, cost=0.01)
    *_, truncated, info = env.step("rm -rf solution")
    state = info["token_budget"]
    assert not truncated and state["source"] == "reported"
    assert (state["input_tokens"], state["output_tokens"], state["cost"]) == (600, 50, 0.01)
    assert state["left"] == {"max_tokens": 350}

    meter.record(prompt_tokens=700, completion_tokens=30)  # this LLM call overspent
    obs, reward, terminated, truncated, info = env.step("mkdir solution")
    assert truncated and not terminated and reward == 0.0
    assert info["action_not_run"] and info["truncated_by"] == "token_budget"
    assert "token budget used up (max_tokens) before this action ran" in obs["terminal"]
    assert info["token_budget"]["total_tokens"] == 1380
    assert not (env.unwrapped.workspace / "solution").exists()  # type: ignore[attr-defined]


# ----- stacked budgets and reset ------------------------------------------------------------------
def test_stacked_budgets_report_both_and_name_the_one_that_ended(make_env: MakeEnv) -> None:
    clock = FakeClock()
    env = TokenBudget(TimeBudget(make_env(), seconds=100, clock=clock), max_cost=0.05)
    meter = find_usage_meter(env)
    assert meter is not None

    # Episode 1: the (outer) token budget runs out on cost.
    _, info = env.reset()
    assert {"time_budget", "token_budget"} <= info.keys()
    _no_solution(env)
    clock.advance(30)
    meter.record(prompt_tokens=10, completion_tokens=10, cost=0.05)
    *_, truncated, info = env.step("echo hi")
    assert truncated and info["truncated_by"] == "token_budget"
    assert info["token_budget"]["exhausted"] == ["max_cost"]
    assert info["time_budget"]["used_s"] == 30 and len(info["score_log"]) == 1
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step("echo too late")

    # Episode 2: counters start again; now the (inner) time budget runs out first.
    _, info = env.reset()
    assert info["time_budget"]["used_s"] == 0 and info["token_budget"]["cost"] is None
    _no_solution(env)
    clock.advance(150)
    *_, truncated, info = env.step("echo late")
    assert truncated and info["truncated_by"] == "time_budget" and info["action_not_run"]
    assert info["token_budget"]["cost"] is None  # the token budget reports, but did not end it
    assert len(info["score_log"]) == 1

    # Episode 3: the outer budget is overspent before an action; the inner one still reports.
    env.reset()
    _no_solution(env)
    clock.advance(7)
    meter.record(cost=0.06)
    *_, truncated, info = env.step("echo never")
    assert truncated and info["action_not_run"] and info["truncated_by"] == "token_budget"
    assert info["time_budget"]["used_s"] == 7 and info["token_budget"]["cost"] == 0.06


def test_reset_clears_every_counter(make_env: MakeEnv) -> None:
    clock = FakeClock()
    env = TokenBudget(
        TimeBudget(make_env(), seconds=100, clock=clock, max_score_calls=3), max_tokens=10**6
    )
    env.reset()
    meter = find_usage_meter(env)
    assert meter is not None
    _no_solution(env)
    env.step("score")
    with pause_budgets(env):
        clock.advance(5)
    clock.advance(20)
    meter.record(prompt_tokens=100, completion_tokens=20, cost=1.0)
    *_, info = env.step("echo x")
    assert info["time_budget"]["used_s"] == 20 and info["time_budget"]["score_calls"] == 1
    assert info["token_budget"]["total_tokens"] == 120

    obs, info = env.reset()
    time_state, token_state = info["time_budget"], info["token_budget"]
    assert (time_state["used_s"], time_state["paused_s"], time_state["score_calls"]) == (0, 0, 0)
    assert token_state["source"] == "estimated" and token_state["cost"] is None
    assert token_state["output_tokens"] == 0
    assert token_state["input_tokens"] == estimate_tokens(obs["terminal"] + "\n" + obs["files"])
    assert meter.reports == 0 and meter.total_tokens == 0
    assert not math.isnan(token_state["left"]["max_tokens"])
