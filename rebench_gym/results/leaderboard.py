"""Leaderboards from the run store: per agent and task, averaged over tasks, as Markdown or JSON.

Finished episodes are grouped by agent, env id, scale, hidden-score variant, task version,
hardware fingerprint and anchors. Normalized scores from different groups are not comparable
(other anchors, other machine, other task), so groups are never merged: each is its own row,
and the leaderboard's ``warnings`` say where one agent and task have several groups. The average
over tasks is taken per agent, scale, variant and hardware, over tasks with exactly one group
there (tasks with several are left out, with a warning).

See :mod:`rebench_gym.results.stats` for how scores, score@k and intervals are computed.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from rebench_gym.results.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    Estimate,
    bootstrap_mean,
    mean_over_tasks,
    run_score,
    score_at_k,
    score_over_time,
)
from rebench_gym.results.store import EpisodeRecord, RescoreRecord

DEFAULT_KS = (1, 2, 4, 8, 16, 32)

HUMAN_REFERENCE: dict[str, Any] = {
    "source": (
        "Wijk et al., 'RE-Bench: Evaluating frontier AI R&D capabilities of language model "
        "agents against human experts' (METR, 2024, arXiv:2411.15114)"
    ),
    "note": (
        "Published figures at full scale on the original hardware, not measured here; they are "
        "not comparable with mini-scale results."
    ),
    "human_8h_mean_normalized_score": 0.64,
    "figures": [
        "Human experts (71 eight-hour attempts by 61 experts): average normalized score 0.64 "
        "after 8 hours; 82% of attempts scored above 0 and 24% matched or beat the reference.",
        "At a total time budget of 2 hours per environment the best AI agents scored about 4x "
        "the human experts.",
        "At 8 hours humans narrowly exceeded the top AI agents, and at 32 total hours they "
        "reached about 2x the top agent's score.",
    ],
}


@dataclass(frozen=True)
class GroupKey:
    """What must match for runs to be compared: one leaderboard row per key."""

    agent: str
    env_id: str
    scale: str
    hidden_score: bool
    task_version: str
    hardware: str
    anchors: str


@dataclass(frozen=True)
class ScoreAtK:
    """score@k at one per-run time limit.

    Attributes:
        limit_s: The per-run time limit in seconds (None: whole runs).
        per_run_s: The per-run time the budget counts (the limit, or the mean wall time of
            whole runs).
        k: Runs drawn.
        total_budget_s: ``k × per_run_s``.
        estimate: The score@k with its interval; ``estimate.n`` runs were usable.
    """

    limit_s: float | None
    per_run_s: float
    k: int
    total_budget_s: float
    estimate: Estimate


@dataclass(frozen=True)
class GroupRow:
    """The leaderboard row of one agent on one task under one set of conditions."""

    key: GroupKey
    anchors: dict[str, Any] | None
    runs: int
    failed: int
    aggregation: str
    mean: Estimate
    mean_wall_time_s: float
    mean_steps: float
    time_budgets_s: tuple[float | None, ...]
    package_versions: tuple[str, ...]
    tokens: dict[str, int]
    cost_usd: float | None
    score_at_k: tuple[ScoreAtK, ...]
    score_over_time: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class AverageRow:
    """One agent's scores averaged over tasks (each task weighs the same)."""

    agent: str
    scale: str
    hidden_score: bool
    hardware: str
    tasks: tuple[str, ...]
    mean: Estimate
    score_at_k: tuple[tuple[float | None, int, Estimate], ...]


@dataclass(frozen=True)
class Leaderboard:
    """A computed leaderboard: rows per group, averages per agent, warnings, settings."""

    rows: tuple[GroupRow, ...]
    averages: tuple[AverageRow, ...]
    warnings: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    human_reference: dict[str, Any] = field(default_factory=lambda: dict(HUMAN_REFERENCE))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of everything."""
        return _jsonable(asdict(self))


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def anchors_label(anchors: dict[str, Any] | None) -> str:
    """A short, stable label of an anchor set: ``source:start/reference``."""
    if not anchors:
        return "unknown"
    try:
        return (
            f"{anchors.get('source', '?')}:{float(anchors['start']):.6g}/"
            f"{float(anchors['reference']):.6g}"
        )
    except (KeyError, TypeError, ValueError):
        return "unknown"


def group_key(ep: EpisodeRecord) -> GroupKey:
    """The group an episode belongs to."""
    return GroupKey(
        agent=ep.agent,
        env_id=ep.env_id,
        scale=ep.scale,
        hidden_score=ep.hidden_score,
        task_version=ep.task_version,
        hardware=ep.hardware,
        anchors=anchors_label(ep.anchors),
    )


def build_leaderboard(
    episodes: Sequence[EpisodeRecord],
    *,
    time_limits: Sequence[float | None] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    rescores: Sequence[RescoreRecord] | None = None,
) -> Leaderboard:
    """Compute the leaderboard of stored episodes.

    Args:
        episodes: Stored episodes; only ``finished`` ones are scored, ``failed`` ones are
            counted, ``running`` ones ignored.
        time_limits: Per-run time limits (seconds; None = whole runs) for score@k. By default
            each group uses the time budgets its runs ran under, and whole runs for runs
            without one.
        ks: The k of score@k.
        confidence: Confidence level of the intervals.
        n_resamples: Bootstrap resamples (and score@k draws).
        seed: Seed of every resampling, so the same store gives the same leaderboard.
        rescores: Score the episodes as their latest ``rebench rescore`` scored them, instead
            of their original scores (:func:`rebench_gym.rescore.rescored_episodes`; episodes
            without a rescore are left out, with a warning).
    """
    if any(k < 1 for k in ks):
        raise ValueError("every k must be >= 1")
    warnings: list[str] = []
    if rescores is not None:
        from rebench_gym.rescore import rescored_episodes

        episodes, left_out = rescored_episodes(episodes, rescores)
        warnings += left_out
    finished: dict[GroupKey, list[EpisodeRecord]] = defaultdict(list)
    failed: dict[GroupKey, int] = defaultdict(int)
    for ep in episodes:
        if ep.status == "finished":
            finished[group_key(ep)].append(ep)
        elif ep.status == "failed":
            failed[group_key(ep)] += 1
    _attribute_failures(finished, failed, warnings)
    rows = []
    for key in sorted(finished, key=lambda k: (k.env_id, k.agent, k.scale, k.anchors)):
        rows.append(
            _group_row(
                key,
                finished[key],
                failed.get(key, 0),
                time_limits,
                ks,
                confidence,
                n_resamples,
                seed,
                warnings,
            )
        )
    _warn_variants(rows, warnings)
    averages = _averages(rows, finished, time_limits, ks, confidence, n_resamples, seed, warnings)
    settings = {
        "ks": list(ks),
        "time_limits_s": None if time_limits is None else list(time_limits),
        "confidence": confidence,
        "n_resamples": n_resamples,
        "seed": seed,
        "bootstrap": "percentile bootstrap over runs, numpy default_rng(seed)",
        "scores": "original" if rescores is None else "rescored",
    }
    return Leaderboard(tuple(rows), tuple(averages), tuple(warnings), settings)


def _attribute_failures(
    finished: dict[GroupKey, list[EpisodeRecord]],
    failed: dict[GroupKey, int],
    warnings: list[str],
) -> None:
    """Count failed episodes in the group of their conditions.

    An episode that failed before its anchors were known counts in the only group that matches
    it otherwise; failures that fit no group are reported in a warning.
    """
    for key, count in list(failed.items()):
        if key in finished:
            continue
        del failed[key]
        matches = [k for k in finished if k == replace(key, anchors=k.anchors)]
        if key.anchors == "unknown" and len(matches) == 1:
            failed[matches[0]] = failed.get(matches[0], 0) + count
        else:
            warnings.append(
                f"{key.agent} on {key.env_id} ({key.scale}): {count} failed episode(s) "
                "not counted in any row (no finished episode under the same conditions)"
            )


def _limits_for(runs: Sequence[EpisodeRecord], given: Sequence[float | None] | None) -> list:
    if given is not None:
        return list(dict.fromkeys(given))
    budgets = {r.time_budget_s for r in runs}
    out: list[float | None] = []
    out.extend(sorted(b for b in budgets if b is not None))
    if None in budgets:
        out.append(None)
    return out


def _group_row(
    key: GroupKey,
    runs: list[EpisodeRecord],
    failed: int,
    time_limits: Sequence[float | None] | None,
    ks: Sequence[int],
    confidence: float,
    n_resamples: int,
    seed: int,
    warnings: list[str],
) -> GroupRow:
    label = f"{key.agent} on {key.env_id} ({key.scale})"
    finals = [float(r.normalized_score or 0.0) for r in runs]
    pick = "random" if runs[0].aggregation == "last" else "best"
    walls = [float(r.wall_time_s or 0.0) for r in runs]
    mean_wall = float(np.mean(walls)) if walls else 0.0
    budgets = tuple(sorted({r.time_budget_s for r in runs}, key=lambda b: (b is None, b or 0.0)))
    if None in budgets:
        warnings.append(
            f"{label}: {sum(r.time_budget_s is None for r in runs)} run(s) had no time budget; "
            "their score@k uses whole runs (run with --time-budget for comparable runs)"
        )
    versions = tuple(sorted({r.package_version for r in runs}))
    if len(versions) > 1:
        warnings.append(f"{label}: runs from several rebench_gym versions: {', '.join(versions)}")
    at_k = []
    for limit in _limits_for(runs, time_limits):
        scores = [s for s in (run_score(r, limit) for r in runs) if s is not None]
        if not scores:
            warnings.append(f"{label}: no run can be scored at a {limit} s limit")
            continue
        per_run = float(limit) if limit is not None else mean_wall
        for k in ks:
            est = score_at_k(
                scores, k, pick=pick, confidence=confidence, n_resamples=n_resamples, seed=seed
            )
            at_k.append(ScoreAtK(limit, per_run, k, k * per_run, est))
    tokens: dict[str, int] = defaultdict(int)
    for r in runs:
        for name, value in r.tokens.items():
            if isinstance(value, (int, float)):
                tokens[name] += int(value)
    costs = [r.cost_usd for r in runs if r.cost_usd is not None]
    return GroupRow(
        key=key,
        anchors=runs[0].anchors,
        runs=len(runs),
        failed=failed,
        aggregation=runs[0].aggregation,
        mean=bootstrap_mean(finals, confidence=confidence, n_resamples=n_resamples, seed=seed),
        mean_wall_time_s=mean_wall,
        mean_steps=float(np.mean([r.steps or 0 for r in runs])),
        time_budgets_s=budgets,
        package_versions=versions,
        tokens=dict(tokens),
        cost_usd=float(sum(costs)) if costs else None,
        score_at_k=tuple(at_k),
        score_over_time=tuple(score_over_time(runs)),
    )


def _warn_variants(rows: Sequence[GroupRow], warnings: list[str]) -> None:
    seen: dict[tuple[str, str, str, bool], list[GroupKey]] = defaultdict(list)
    for row in rows:
        k = row.key
        seen[(k.agent, k.env_id, k.scale, k.hidden_score)].append(k)
    for (agent, env_id, scale, _), keys in seen.items():
        if len(keys) > 1:
            parts = [
                f"task {k.task_version}, hardware {k.hardware}, anchors {k.anchors}" for k in keys
            ]
            warnings.append(
                f"NOT MERGED: {agent} on {env_id} ({scale}) has {len(keys)} incomparable groups "
                f"(shown as separate rows): {'; '.join(parts)}"
            )


def _averages(
    rows: Sequence[GroupRow],
    finished: dict[GroupKey, list[EpisodeRecord]],
    time_limits: Sequence[float | None] | None,
    ks: Sequence[int],
    confidence: float,
    n_resamples: int,
    seed: int,
    warnings: list[str],
) -> list[AverageRow]:
    by_agent: dict[tuple[str, str, bool, str], dict[str, list[GroupRow]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for row in rows:
        g = row.key
        by_agent[(g.agent, g.scale, g.hidden_score, g.hardware)][g.env_id].append(row)
    out = []
    for (agent, scale, hidden, hardware), tasks in sorted(by_agent.items()):
        usable: list[GroupRow] = []
        for env_id, group_rows in sorted(tasks.items()):
            if len(group_rows) > 1:
                warnings.append(
                    f"average of {agent} ({scale}, hardware {hardware}) leaves out {env_id}: "
                    f"{len(group_rows)} task versions or anchor sets"
                )
            else:
                usable.append(group_rows[0])
        if not usable:
            continue
        per_task_final = [
            [float(r.normalized_score or 0.0) for r in finished[row.key]] for row in usable
        ]
        picks = ["random" if row.aggregation == "last" else "best" for row in usable]
        mean = mean_over_tasks(
            per_task_final, confidence=confidence, n_resamples=n_resamples, seed=seed
        )
        limits = (
            list(dict.fromkeys(time_limits))
            if time_limits is not None
            else _common_limits([finished[row.key] for row in usable])
        )
        at_k: list[tuple[float | None, int, Estimate]] = []
        for limit in limits:
            per_task = [
                [s for s in (run_score(r, limit) for r in finished[row.key]) if s is not None]
                for row in usable
            ]
            if any(not t for t in per_task):
                continue
            for k in ks:
                est = mean_over_tasks(
                    per_task,
                    k=k,
                    picks=picks,
                    confidence=confidence,
                    n_resamples=n_resamples,
                    seed=seed,
                )
                at_k.append((limit, k, est))
        out.append(
            AverageRow(
                agent=agent,
                scale=scale,
                hidden_score=hidden,
                hardware=hardware,
                tasks=tuple(row.key.env_id for row in usable),
                mean=mean,
                score_at_k=tuple(at_k),
            )
        )
    return out


def _common_limits(groups: Sequence[Sequence[EpisodeRecord]]) -> list[float | None]:
    sets = [set(_limits_for(g, None)) for g in groups]
    common = set.intersection(*sets) if sets else set()
    return sorted(common, key=lambda b: (b is None, b or 0.0))


# ----- rendering -------------------------------------------------------------------------------
def fmt_estimate(e: Estimate) -> str:
    """``0.512 [0.401, 0.633]``."""
    if not math.isfinite(e.mean):
        return "n/a"
    return f"{e.mean:.3f} [{e.low:.3f}, {e.high:.3f}]"


def fmt_seconds(s: float | None) -> str:
    """Seconds as ``42 s``, ``30 min`` or ``2 h``; None as ``whole run``."""
    if s is None:
        return "whole run"
    if s >= 3600:
        return f"{s / 3600:.3g} h"
    if s >= 60:
        return f"{s / 60:.3g} min"
    return f"{s:.3g} s"


def render_json(lb: Leaderboard) -> str:
    """The leaderboard as indented JSON."""
    return json.dumps(lb.to_dict(), indent=2, sort_keys=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return lines


def task_table(lb: Leaderboard) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-agent-and-task table (shared by Markdown and HTML)."""
    header = [
        "agent",
        "task",
        "scale",
        "runs",
        "failed",
        "mean [CI]",
        "mean wall time",
        "budgets",
        "task version",
        "hardware",
        "anchors",
        "tokens",
        "cost (USD)",
    ]
    rows = [
        [
            r.key.agent,
            r.key.env_id + (" (hidden)" if r.key.hidden_score else ""),
            r.key.scale,
            str(r.runs),
            str(r.failed),
            fmt_estimate(r.mean),
            fmt_seconds(r.mean_wall_time_s),
            ", ".join(fmt_seconds(b) for b in r.time_budgets_s),
            r.key.task_version,
            r.key.hardware,
            r.key.anchors,
            ", ".join(f"{k}={v}" for k, v in sorted(r.tokens.items())) or "-",
            "-" if r.cost_usd is None else f"{r.cost_usd:.2f}",
        ]
        for r in lb.rows
    ]
    return header, rows


def averages_table(lb: Leaderboard) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the average-over-tasks table."""
    return ["agent", "scale", "hardware", "tasks", "mean [CI]"], [
        [a.agent, a.scale, a.hardware, ", ".join(a.tasks), fmt_estimate(a.mean)]
        for a in lb.averages
    ]


def score_at_k_table(lb: Leaderboard) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the score@k table."""
    header = ["agent", "task", "per-run limit", "k", "total budget", "runs used", "score@k [CI]"]
    return header, [
        [
            r.key.agent,
            r.key.env_id,
            fmt_seconds(s.limit_s),
            str(s.k),
            fmt_seconds(s.total_budget_s),
            str(s.estimate.n),
            fmt_estimate(s.estimate),
        ]
        for r in lb.rows
        for s in r.score_at_k
    ]


def render_markdown(lb: Leaderboard) -> str:
    """The leaderboard as Markdown: per-task table, averages, score@k, warnings, human figures."""
    pct = round(100 * float(lb.settings.get("confidence", DEFAULT_CONFIDENCE)))
    out = ["# RE-Bench leaderboard", ""]
    if lb.settings.get("scores") == "rescored":
        out += [
            "Scores as the latest `rebench rescore` scored each episode's kept solutions (task "
            "version: the scorer version that rescored them).",
            "",
        ]
    if lb.warnings:
        out += ["## Warnings", ""] + [f"- **{w}**" for w in lb.warnings] + [""]
    out += [f"## Per agent and task (mean normalized score, {pct}% bootstrap CI)", ""]
    if not lb.rows:
        out += ["No finished episodes in the store.", ""]
    out += _table(*task_table(lb))
    out += ["", "## Average over tasks", ""]
    out += _table(*averages_table(lb))
    out += [
        "",
        "## score@k (k runs drawn with replacement; best of k, random one for ScalingLaw)",
        "",
    ]
    out += _table(*score_at_k_table(lb))
    out += ["", "## Score over time (mean best-so-far normalized score)", ""]
    for r in lb.rows:
        points = r.score_over_time
        step = max(1, len(points) // 8)
        shown = list(points[::step])
        if points and shown[-1] != points[-1]:
            shown.append(points[-1])
        text = ", ".join(f"{fmt_seconds(t)}: {v:.3f}" for t, v in shown)
        out.append(f"- {r.key.agent} on {r.key.env_id} ({r.key.scale}): {text or 'no data'}")
    ref = lb.human_reference
    out += [
        "",
        "## Human baseline (published figures, not measured here)",
        "",
        f"Source: {ref['source']}. {ref['note']}",
        "",
    ]
    out += [f"- {f}" for f in ref["figures"]]
    return "\n".join(out) + "\n"
