"""Real recorded runs for the readers of the run store (``rebench view``, ``rebench export``).

Three runs of ``RE-Bench/OptimizeKernel-v0`` at mini scale in bubblewrap, recorded by
:func:`rebench_gym.runs.run` into one store with one trajectory file, made once per session:

* ``reference``: the reference agent under a token budget (estimated tokens on every step), so
  its score calls keep solutions and its steps carry token counts;
* ``scripted``: an agent that prints HTML and script tags, sends a malformed action, scores a
  solution that raises (an invalid score call), prints a long output and reports model usage;
* ``noop``: the noop agent recorded without ``--record`` (no steps to show).

Anchors are given (``make_kwargs``), so no calibration runs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rebench_gym import actions as act
from rebench_gym.runs import RunOptions, run

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
