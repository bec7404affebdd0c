"""An episode of the run store joined with its steps from the JSONL trajectory file.

``rebench view`` (an HTML page) and ``rebench export --format inspect`` (Inspect AI logs) both
read a stored episode this way; this module is the one place that finds a run, picks its
episodes and links each to its recorded steps.

The store keeps the episode's outcome and score log; the trajectory file (``rebench run
--record PATH``) keeps every step. One trajectory file can hold many episodes (every episode of
a run, and of later runs recorded to the same file, is appended), and its lines carry their own
episode ids, not the store's, so an episode's steps are found by time: the recorded episode of
the same env whose reset line was written while the stored episode ran (between its
``started_at`` and ``finished_at``, both read from the clock of the process that ran it).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rebench_gym import actions as act
from rebench_gym.errors import ActionError, UsageError
from rebench_gym.results.store import EpisodeRecord, RunStore
from rebench_gym.wrappers.trajectory import RecordedEpisode, read_trajectory


@dataclass(frozen=True)
class Transcript:
    """One stored episode and, when its trajectory was recorded, its steps.

    Attributes:
        record: The stored episode (outcome, budgets, score rows).
        instructions: The reset observation's ``terminal`` (the task instructions), if recorded.
        start_files: The reset observation's ``files`` listing, if recorded.
        steps: The step lines of the trajectory file (see
            :mod:`rebench_gym.wrappers.trajectory`), in order; empty without a trajectory.
        trajectory_file: The trajectory file the steps were read from, if any.
        note: Why there are no steps (no ``--record``, file missing, no matching episode).
        score_steps: For each score row (by its position in the score log), the number of the
            step that produced it, or None when it is unknown.
    """

    record: EpisodeRecord
    instructions: str | None
    start_files: str | None
    steps: tuple[dict[str, Any], ...]
    trajectory_file: Path | None
    note: str | None
    score_steps: tuple[int | None, ...]


def find_run(store: RunStore, run: str) -> str:
    """The run id ``run`` names in ``store``: an exact id, a unique prefix, or ``latest``.

    Raises:
        UsageError: no run (or more than one) matches; the message lists the latest runs.
    """
    runs = store.runs()
    ids = [str(r["run_id"]) for r in runs]
    if not ids:
        raise UsageError(f"the run store {store.path} holds no runs; record one with `rebench run`")
    if run == "latest":
        return ids[-1]
    if run in ids:
        return run
    matches = [i for i in ids if i.startswith(run)]
    if len(matches) == 1:
        return matches[0]
    latest = ", ".join(
        f"{r['run_id']} ({r['agent']} on {r['env_id']})" for r in reversed(runs[-5:])
    )
    why = "matches several runs" if matches else "is not a run in"
    raise UsageError(f"{run!r} {why} {store.path}; latest runs: {latest}")


def run_episodes(store: RunStore, run_id: str, episode: int | None = None) -> list[EpisodeRecord]:
    """The episodes of ``run_id`` to show: one per episode index, the finished attempt if any,
    else the latest attempt (failed or running); only index ``episode`` when given.

    Raises:
        UsageError: the run has no episode ``episode``.
    """
    chosen: dict[int, EpisodeRecord] = {}
    for record in store.episodes(run_id=run_id):
        have = chosen.get(record.episode_index)
        if have is None or have.status != "finished":
            chosen[record.episode_index] = record
    if episode is not None:
        if episode not in chosen:
            have_text = ", ".join(str(i) for i in sorted(chosen)) or "none"
            raise UsageError(
                f"run {run_id} has no episode {episode} (episode indices, from 0: {have_text})"
            )
        return [chosen[episode]]
    return [chosen[i] for i in sorted(chosen)]


def _resolve(path_text: str, db_path: Path) -> Path | None:
    """The trajectory file as recorded (relative to where the run was started), else beside the
    store (a store and its trajectory copied together to another machine)."""
    path = Path(path_text)
    if path.is_file():
        return path
    if not path.is_absolute() and (db_path.parent / path).is_file():
        return db_path.parent / path
    beside = db_path.parent / path.name
    return beside if beside.is_file() else None


def _match(record: EpisodeRecord, episodes: list[RecordedEpisode]) -> RecordedEpisode | None:
    """The recorded episode of ``record``: same env, reset while it ran, the earliest such.

    Both times come from one host's clock in one process: the store's row is written before the
    env is reset and finished after the episode's last step, so no slack is needed, and none is
    taken (the next episode's reset follows this one's end within milliseconds).
    """
    start = record.started_at
    end = record.finished_at if record.finished_at is not None else math.inf
    best: RecordedEpisode | None = None
    for candidate in episodes:
        header = candidate.header
        env_id = header.get("env_id")
        if env_id is not None and env_id != record.env_id:
            continue
        t = float(header.get("time") or 0.0)
        if start <= t <= end and (best is None or t < float(best.header.get("time") or 0.0)):
            best = candidate
    return best


def _score_steps(steps: tuple[dict[str, Any], ...], rows: int) -> tuple[int | None, ...]:
    """For each of ``rows`` score rows, the step whose line first listed it."""
    out: list[int | None] = []
    for step in steps:
        new = step.get("new_score_rows")
        for _ in new if isinstance(new, list) else ():
            out.append(int(step.get("step") or 0))
    out = out[:rows]
    return tuple(out + [None] * (rows - len(out)))


def load_transcripts(records: list[EpisodeRecord], db_path: Path) -> list[Transcript]:
    """Join each stored episode with its recorded steps (each trajectory file read once)."""
    files: dict[Path, list[RecordedEpisode]] = {}
    out: list[Transcript] = []
    for record in records:
        rows = len(record.score_rows)
        path = _resolve(record.trajectory_path, db_path) if record.trajectory_path else None
        note: str | None = None
        recorded: RecordedEpisode | None = None
        if record.trajectory_path is None:
            note = (
                "no trajectory was recorded for this episode (run it with "
                "`rebench run ... --record PATH` to keep every step)"
            )
        elif path is None:
            note = f"the trajectory file {record.trajectory_path} is missing"
        else:
            if path not in files:
                files[path] = read_trajectory(os.fspath(path))
            recorded = _match(record, files[path])
            if recorded is None:
                note = f"{path} holds no episode of {record.env_id} that started during this one"
        if recorded is None:
            out.append(Transcript(record, None, None, (), path, note, (None,) * rows))
            continue
        obs = recorded.header.get("observation")
        obs = obs if isinstance(obs, dict) else {}
        out.append(
            Transcript(
                record=record,
                instructions=_text_or_none(obs.get("terminal")),
                start_files=_text_or_none(obs.get("files")),
                steps=recorded.steps,
                trajectory_file=path,
                note=None,
                score_steps=_score_steps(recorded.steps, rows),
            )
        )
    return out


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def step_output(step: dict[str, Any]) -> str:
    """The text the agent saw after a step (the observation's ``terminal``)."""
    obs = step.get("observation")
    if isinstance(obs, dict):
        return str(obs.get("terminal", ""))
    return "" if obs is None else str(obs)


def step_action(step: dict[str, Any]) -> str:
    """A step's action as text."""
    action = step.get("action")
    return action if isinstance(action, str) else repr(action)


_TOOL_NAMES: dict[type, str] = {
    act.Bash: "bash",
    act.WriteFile: "write_file",
    act.StrReplace: "str_replace",
    act.View: "view",
    act.Score: "score",
    act.Submit: "submit",
}


def action_call(step: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """A step's action as the env parsed it: ``(tool name, arguments)`` (a plain shell command
    is ``bash``), or None for an action the env refused as malformed."""
    try:
        parsed = act.parse_action(step.get("action"))
    except ActionError:
        return None
    args = {k: v for k, v in dataclasses.asdict(parsed).items() if v is not None}
    return _TOOL_NAMES[type(parsed)], args
