"""Real recorded runs for the readers of the run store (``rebench view``, ``rebench export``).

Three runs of ``RE-Bench/OptimizeKernel-v0`` at mini scale in bubblewrap, recorded by
:func:`rebench_gym.runs.run` into one store with one trajectory file, made once per session:

* ``reference``: the reference agent under a token budget (estimated tokens on every step), so
  its score calls keep solutions and its steps carry token counts;
* ``scripted``: an agent that prints HTML and script tags, sends a malformed action, scores a
  solution that raises (an invalid score call), prints a long output and reports model usage;
* ``noop``: the noop agent recorded without ``--record`` (no steps to show).

Anchors are given (``make_kwargs``), so no calibration runs.

:func:`record_chatty_run` records long or many episodes quickly: the real recorder
(:class:`~rebench_gym.wrappers.RecordTrajectory`) and the real store around a small env that
prints about 8 KB per step.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

from rebench_gym import EpisodeResult
from rebench_gym import actions as act
from rebench_gym.results import EpisodeSpec, RunStore
from rebench_gym.runs import RunOptions, run
from rebench_gym.wrappers import RecordTrajectory

KERNEL = "RE-Bench/OptimizeKernel-v0"
#: plausible mini anchors (ln ms of the start and reference solutions on 2 cores)
ANCHORS = (3.4, 1.6)
#: what the scripted agent prints: must show on the page as text, never run
HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'
BROKEN = "def prefix_sum(x):\n    raise ValueError('</pre><script>alert(1)</script>')\n"


class ScriptedAgent:
    """Plays a fixed list of actions; reports model usage like an LLM agent."""

    name = "scripted"

    def __init__(self) -> None:
        self.actions = [
            act.bash(f"echo '{HOSTILE}'"),
            '{"tool": "nope"}',
            act.write_file("solution/solution.py", BROKEN),
            act.score(),
            act.bash("python3 -c \"print('line of a long output ' * 2000)\""),
            act.submit(),
        ]
        self.usage: dict[str, Any] = {}
        self._i = 0

    def reset(self, *, seed: int | None = None) -> None:
        self._i = 0
        self.usage = {}

    def act(self, observation: dict[str, str], info: dict[str, Any]) -> str:
        action = self.actions[min(self._i, len(self.actions) - 1)]
        self._i += 1
        self.usage = {
            "prompt_tokens": 1000 * self._i,
            "completion_tokens": 100 * self._i,
            "total_tokens": 1100 * self._i,
            "cost_usd": 0.001 * self._i,
        }
        return action

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class RecordedRuns:
    db: Path
    trajectory: Path
    reference: str
    scripted: str
    noop: str


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the recorded runs are ``slow`` (the runs score for about 30 s) and ``bwrap``."""
    for item in items:
        if "recorded_runs" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.bwrap)


@pytest.fixture(scope="session")
def recorded_runs(tmp_path_factory: pytest.TempPathFactory) -> RecordedRuns:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    root = tmp_path_factory.mktemp("recorded")
    db, trajectory = root / "runs.db", root / "trajectory.jsonl"
    common: dict[str, Any] = {
        "scale": "mini",
        "sandbox": "bwrap",
        "db": db,
        "make_kwargs": {"anchors": ANCHORS},
    }
    ids = {}
    for label, extra, make in (
        ("reference", {"record": str(trajectory), "token_budget": 10_000_000}, None),
        ("scripted", {"record": str(trajectory)}, lambda _i: ScriptedAgent()),
        ("noop", {}, None),
    ):
        agent = "scripted" if label == "scripted" else label
        options = RunOptions(KERNEL, agent, run_id=f"{label}-run", **common, **extra)
        results = run(options, make_agent=make)
        assert len(results) == 1
        ids[label] = options.run_id
    return RecordedRuns(db, trajectory, ids["reference"], ids["scripted"], ids["noop"])


class Chatty(gym.Env[dict[str, str], str]):
    """An env that prints about 8 KB per step and logs a score row every 50 steps (every fourth
    one invalid)."""

    observation_space = gym.spaces.Dict(
        {"terminal": gym.spaces.Text(20_000), "files": gym.spaces.Text(1_000)}
    )
    action_space = gym.spaces.Text(1_000)

    def __init__(self, tag: str) -> None:
        self.spec = gym.envs.registration.EnvSpec(KERNEL)
        self.tag = tag
        self.rows: list[dict[str, Any]] = []
        self.n = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        self.rows, self.n = [], 0
        return {"terminal": f"instructions of {self.tag}", "files": "solution/"}, {"score_log": []}

    def step(self, action: str) -> Any:
        self.n += 1
        text = f"{self.tag} step {self.n} <b>not bold</b>\n" + ("y" * 79 + "\n") * 100
        if self.n % 50 == 0:
            valid = self.n % 200 != 0
            self.rows.append(
                {
                    "timestamp": time.time(),
                    "elapsed_s": float(self.n),
                    "raw": 1.0 if valid else None,
                    "normalized": self.n / 2000 if valid else 0.0,
                    "valid": valid,
                    "message": "ok" if valid else "invalid",
                }
            )
        obs = {"terminal": text, "files": "solution/"}
        return obs, 0.0, False, False, {"score_log": list(self.rows)}


def record_chatty_run(
    db: Path,
    trajectory: Path,
    run_id: str,
    *,
    steps: int,
    episodes: int = 1,
    fail_first: bool = False,
) -> None:
    """Record a run of :class:`Chatty` episodes into the store ``db`` and one trajectory file, as
    ``rebench run --record`` does (store row, then reset, steps, then the outcome); with
    ``fail_first`` episode 0 is first recorded as failed, then run again."""
    spec = EpisodeSpec(KERNEL, "chatty", "1", "mini", False, "best", "0.1.0", "hw")
    attempts = ([0] if fail_first else []) + list(range(episodes))
    with RunStore(db) as store:
        store.open_run(spec, episodes, run_id=run_id)
        for attempt, index in enumerate(attempts):
            eid = store.begin_episode(run_id, index, spec)
            env = RecordTrajectory(Chatty(f"episode {index}"), trajectory, fsync=False)
            env.reset()
            for i in range(steps):
                env.step(f"echo {i}")
            rows = env.unwrapped.rows  # type: ignore[attr-defined]
            env.close()
            if fail_first and attempt == 0:
                store.fail_episode(eid, "RuntimeError: interrupted")
                continue
            score = rows[-1]["normalized"] if rows else 0.0
            result = EpisodeResult(
                KERNEL, "chatty", score, score, 1.0, steps, float(steps), True, False, rows
            )
            store.finish_episode(eid, result, trajectory_path=str(trajectory))
