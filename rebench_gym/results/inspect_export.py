"""``rebench export --format inspect``: stored episodes as Inspect AI eval logs.

Each episode becomes one ``.eval`` log written by ``inspect_ai``'s own writer
(:func:`inspect_ai.log.write_eval_log`) from its own log types, so ``inspect view DIR`` and
:func:`inspect_ai.log.read_eval_log` read it like a log of an Inspect evaluation:

* one sample per log (one episode), whose ``input`` is the task instructions;
* messages: the instructions (with the starting workspace listing) as the user message; then per
  step an assistant message calling the tool the env parsed from the action (``bash``,
  ``write_file``, ``str_replace``, ``view``, ``score``, ``submit``; a plain shell command is a
  ``bash`` call) and a tool message with the output the agent saw; a malformed action is an
  assistant message with its raw text and a user message with the env's error;
* the sample's score ``normalized_score``: the episode's final normalized score, with the raw
  score and end reason, and every score row in the score's metadata;
* model usage (input, output, total tokens and cost) when the run recorded it, under the model
  ``rebench/<agent>`` (the store records the agent, not a model name);
* the sample's events (its transcript in ``inspect view``): a tool event per step with its
  start, end and duration, an intermediate score event per score call (normalized score, raw
  score, validity, message, kept solution), and the final score;
* a failed episode is a log with status ``error`` and the error message.

``inspect_ai`` is an optional dependency (``pip install 'rebench-gym[inspect]'``).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebench_gym.errors import UsageError
from rebench_gym.results.store import EpisodeRecord, RunStore
from rebench_gym.results.transcript import (
    Transcript,
    action_call,
    find_run,
    load_transcripts,
    run_episodes,
    step_action,
    step_output,
)

if TYPE_CHECKING:
    from inspect_ai.event import Event
    from inspect_ai.log import EvalLog
    from inspect_ai.model import ChatMessage
    from inspect_ai.scorer import Score

SCORER = "normalized_score"


def _inspect() -> None:
    try:
        import inspect_ai  # noqa: F401
    except ImportError:
        raise UsageError(
            "exporting Inspect logs needs inspect_ai: pip install 'rebench-gym[inspect]'"
        ) from None


def _iso(ts: float | None) -> str:
    when = datetime.fromtimestamp(ts if ts is not None else 0.0, tz=timezone.utc)
    return when.isoformat()


def _messages(t: Transcript) -> list[ChatMessage]:
    from inspect_ai.model import ChatMessageAssistant, ChatMessageTool, ChatMessageUser
    from inspect_ai.tool import ToolCall

    first = t.instructions if t.instructions is not None else f"[{t.note}]"
    if t.start_files:
        first += f"\n\nWorkspace files:\n{t.start_files}"
    messages: list[ChatMessage] = [ChatMessageUser(content=first)]
    for step in t.steps:
        n = int(step.get("step") or 0)
        output = step_output(step)
        meta = {
            "step": n,
            "reward": step.get("reward"),
            "timings": step.get("timings"),
            "tokens": step.get("tokens"),
        }
        call = action_call(step)
        if call is None:  # malformed: the raw text, and the env's error as the reply
            messages.append(ChatMessageAssistant(content=step_action(step), metadata=meta))
            messages.append(ChatMessageUser(content=output))
            continue
        tool, args = call
        call_id = f"step-{n}"
        messages.append(
            ChatMessageAssistant(
                content="",
                tool_calls=[ToolCall(id=call_id, function=tool, arguments=args)],
                metadata=meta,
            )
        )
        messages.append(ChatMessageTool(content=output, tool_call_id=call_id, function=tool))
    return messages


def _when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def _events(t: Transcript, final: Score | None) -> list[Event]:
    """The sample's transcript (what ``inspect view`` shows as its timeline): a tool event per
    step with its timing (an info event for a malformed action), an intermediate score event per
    score call, and the final score."""
    from inspect_ai.event import InfoEvent, ScoreEvent, ToolEvent
    from inspect_ai.scorer import Score

    timed: list[tuple[float, Event]] = []
    for step in t.steps:
        n = int(step.get("step") or 0)
        end = float(step.get("time") or t.record.started_at)
        timings = step.get("timings") or {}
        took = float(timings.get("step_s") or 0.0)
        since = float(timings.get("since_reset_s") or 0.0)
        output = step_output(step)
        call = action_call(step)
        event: Event
        if call is None:
            data: dict[str, Any] = {
                "step": n,
                "malformed_action": step_action(step),
                "observation": output,
            }
            event = InfoEvent(source="rebench_gym", data=data, timestamp=_when(end))
        else:
            event = ToolEvent(
                id=f"step-{n}",
                function=call[0],
                arguments=call[1],
                result=output,
                timestamp=_when(end - took),
                completed=_when(end),
                working_start=max(0.0, since - took),
                working_time=took,
                metadata={"step": n, "reward": step.get("reward"), "tokens": step.get("tokens")},
            )
        timed.append((end - took, event))
    for seq, row in enumerate(t.record.score_rows):
        score = Score(
            value=row.normalized,
            answer=None if row.raw is None else str(row.raw),
            explanation=row.message,
            metadata={"seq": seq, "valid": row.valid, "raw": row.raw, "step": t.score_steps[seq],
                      "solution_id": row.solution_id, "elapsed_s": row.elapsed_s},
        )  # fmt: skip
        timed.append((row.timestamp, ScoreEvent(score=score, intermediate=True,
                                                 timestamp=_when(row.timestamp))))  # fmt: skip
    timed.sort(key=lambda item: item[0])
    events = [e for _, e in timed]
    if final is not None:
        end = t.record.finished_at or t.record.started_at
        events.append(ScoreEvent(score=final, scorer=SCORER, timestamp=_when(end)))
    return events


def _usage(record: EpisodeRecord) -> dict[str, Any]:
    """Model usage keyed by model name, when the run recorded tokens."""
    from inspect_ai.model import ModelUsage

    tokens = record.tokens
    if not tokens:
        return {}
    inp = int(tokens.get("prompt_tokens", tokens.get("input_tokens", 0)) or 0)
    out = int(tokens.get("completion_tokens", tokens.get("output_tokens", 0)) or 0)
    usage = ModelUsage(
        input_tokens=inp,
        output_tokens=out,
        total_tokens=int(tokens.get("total_tokens", inp + out) or 0),
        total_cost=record.cost_usd,
    )
    return {_model(record): usage}


def _model(record: EpisodeRecord) -> str:
    return f"rebench/{record.agent}"


def episode_log(t: Transcript) -> EvalLog:
    """The Inspect eval log of one episode (see the module docstring)."""
    _inspect()
    from inspect_ai.log import (
        EvalConfig,
        EvalDataset,
        EvalError,
        EvalLog,
        EvalMetric,
        EvalResults,
        EvalSample,
        EvalScore,
        EvalSpec,
        EvalStats,
    )
    from inspect_ai.model import ModelOutput
    from inspect_ai.scorer import Score

    r = t.record
    finished = r.status == "finished"
    value = float(r.normalized_score or 0.0)
    rows = [
        {
            "elapsed_s": row.elapsed_s,
            "raw": row.raw,
            "normalized": row.normalized,
            "valid": row.valid,
            "message": row.message,
            "solution_id": row.solution_id,
            "step": t.score_steps[i],
        }
        for i, row in enumerate(r.score_rows)
    ]
    score = Score(
        value=value,
        explanation=f"final normalized score ({r.aggregation} valid score call); "
        f"ended by {r.end_reason or r.status}",
        metadata={"raw_score": r.raw_score, "score_rows": rows},
    )
    usage = _usage(r)
    sample_id = f"{r.run_id}-ep{r.episode_index}"
    messages = _messages(t)
    last = t.steps[-1] if t.steps else None
    sample = EvalSample(
        id=sample_id,
        epoch=1,
        input=messages[0].text,
        target="",
        messages=messages,
        output=ModelOutput.from_content(_model(r), step_output(last) if last else ""),
        scores={SCORER: score} if finished else None,
        events=_events(t, score if finished else None),
        metadata={
            "env_id": r.env_id,
            "run_id": r.run_id,
            "episode_index": r.episode_index,
            "status": r.status,
            "end_reason": r.end_reason,
            "steps": r.steps,
            "scale": r.scale,
            "hidden_score": r.hidden_score,
            "anchors": r.anchors,
            "budgets": r.budgets,
            "trajectory_file": None if t.trajectory_file is None else str(t.trajectory_file),
            "trajectory_note": t.note,
        },
        model_usage=usage,
        started_at=_iso(r.started_at),
        completed_at=_iso(r.finished_at) if r.finished_at is not None else None,
        total_time=r.wall_time_s,
        error=None
        if finished
        else EvalError(message=r.error or r.status, traceback="", traceback_ansi=""),
    )
    results = EvalResults(
        total_samples=1,
        completed_samples=1 if finished else 0,
        scores=[
            EvalScore(
                name=SCORER,
                scorer=SCORER,
                scored_samples=1,
                metrics={"mean": EvalMetric(name="mean", value=value)},
            )
        ]
        if finished
        else [],
    )
    from rebench_gym import __version__

    spec = EvalSpec(
        created=_iso(r.started_at),
        run_id=r.run_id,
        eval_id=log_id(r),
        task=r.env_id,
        task_id=log_id(r),
        task_version=r.task_version,
        task_args={k: v for k, v in r.make_kwargs.items() if _jsonable(v)},
        dataset=EvalDataset(name=r.env_id, samples=1, sample_ids=[sample_id]),
        model=_model(r),
        config=EvalConfig(
            token_limit=r.budgets.get("token_budget"),
            time_limit=_int_or_none(r.budgets.get("time_budget_s")),
        ),
        packages={"rebench_gym": r.package_version, "rebench_gym (exporter)": __version__},
        metadata={"agent": r.agent, "hardware": r.hardware, "seed": r.seed},
    )
    return EvalLog(
        status="success" if finished else "error",
        eval=spec,
        results=results,
        stats=EvalStats(
            started_at=_iso(r.started_at),
            completed_at=_iso(r.finished_at) if r.finished_at is not None else "",
            model_usage=usage,
        ),
        error=sample.error,
        samples=[sample],
    )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else round(float(value))


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def log_id(record: EpisodeRecord) -> str:
    """The episode's id in Inspect's terms (task and eval id): letters and digits only, as
    Inspect reads the id back from the file name up to its first ``-``."""
    return re.sub(r"[^A-Za-z0-9]+", "", f"{record.run_id}ep{record.episode_index}")


def log_name(record: EpisodeRecord) -> str:
    """The file name of an episode's log: Inspect's ``<time>_<task>_<id>.eval`` pattern."""
    when = datetime.fromtimestamp(record.started_at, tz=timezone.utc).strftime(
        "%Y-%m-%dT%H-%M-%S+00-00"
    )
    task = re.sub(r"[^A-Za-z0-9-]+", "-", record.env_id.removeprefix("RE-Bench/"))
    return f"{when}_{task}_{log_id(record)}.eval"


def export_run(db: Path, run: str, out_dir: Path, *, episode: int | None = None) -> list[Path]:
    """Write each episode of run ``run`` (an id, unique prefix or ``latest``) of the store
    ``db`` as an Inspect eval log in ``out_dir``; returns the files written."""
    _inspect()
    from inspect_ai.log import write_eval_log

    with RunStore(db) as store:
        run_id = find_run(store, run)
        records = run_episodes(store, run_id, episode)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file; give a directory for the logs")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create the log directory {out_dir}: {e}") from None
    paths = []
    for transcript in load_transcripts(records, db):
        path = out_dir / log_name(transcript.record)
        write_eval_log(episode_log(transcript), location=str(path), format="eval")
        paths.append(path)
    return paths
