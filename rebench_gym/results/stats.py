"""Statistics of stored runs: bootstrap intervals, score@k, score at a time limit, over time.

Conventions (RE-Bench, METR 2024):

* A run's score is its aggregated normalized score: the best valid score of its log, or the
  last valid one for ScalingLaw (``aggregation="last"``); 0 without a valid score.
* The score of a run at a per-run time limit ``T`` is that aggregate over the score log rows
  with ``elapsed_s <= T``. A run that ended before ``T`` (or ran under a time budget of exactly
  ``T``) counts with its final score; a run that was cut by a time budget shorter than ``T``
  cannot say what it would have reached and is left out.
* score@k draws ``k`` runs with replacement and takes the best score of the ``k`` (for
  ScalingLaw a random one of the ``k``, since its agent never sees scores and cannot pick);
  the total time budget is ``k × T``. The point estimate averages ``n_resamples`` such seeded
  draws; its limit is the exact expectation :func:`score_at_k_exact`. Its interval is a
  percentile bootstrap over the runs (resampling the ``n`` runs and recomputing the exact
  score@k).
* Confidence intervals are percentile bootstraps with ``numpy.random.default_rng(seed)``, so the
  same data and seed give the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval.

    Attributes:
        mean: The point estimate.
        low: Lower end of the interval.
        high: Upper end of the interval.
        n: How many runs it rests on.
    """

    mean: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        """A JSON-friendly dict."""
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}


class ScoreRowLike(Protocol):
    """What the statistics read of a score log row."""

    @property
    def elapsed_s(self) -> float: ...

    @property
    def normalized(self) -> float: ...

    @property
    def valid(self) -> bool: ...


class RunLike(Protocol):
    """What the statistics read of a run (an :class:`~rebench_gym.results.EpisodeRecord`)."""

    @property
    def aggregation(self) -> str: ...

    @property
    def normalized_score(self) -> float | None: ...

    @property
    def wall_time_s(self) -> float | None: ...

    @property
    def time_budget_s(self) -> float | None: ...

    @property
    def score_rows(self) -> Sequence[ScoreRowLike]: ...


def _quantiles(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _check(confidence: float, n_resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), not {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, not {n_resamples}")


def bootstrap_mean(
    values: Sequence[float],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """Mean of ``values`` with a seeded percentile-bootstrap confidence interval.

    One value gives a zero-width interval; no values give NaNs with ``n=0``.
    """
    _check(confidence, n_resamples)
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    low, high = _quantiles(means, confidence)
    return Estimate(mean, min(low, mean), max(high, mean), int(x.size))


def _exact_weights(n: int, k: int) -> np.ndarray:
    """P(the max of k draws with replacement is the i-th smallest of n), i = 1..n."""
    i = np.arange(1, n + 1, dtype=float)
    return np.asarray((i / n) ** k - ((i - 1) / n) ** k)


def score_at_k_exact(values: Sequence[float] | np.ndarray, k: int, *, pick: str = "best") -> float:
    """The exact expected score@k: the limit of :func:`score_at_k`'s resampling.

    Args:
        values: One score per run.
        k: Runs drawn with replacement.
        pick: ``"best"`` (the max of the ``k``) or ``"random"`` (a random one of the ``k``: for
            ScalingLaw; its expectation is the mean, whatever ``k``).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, not {k}")
    x = np.sort(np.asarray(values, dtype=float))
    if x.size == 0:
        return math.nan
    if pick == "random":
        return float(x.mean())
    if pick != "best":
        raise ValueError(f"pick must be 'best' or 'random', not {pick!r}")
    return float(np.dot(_exact_weights(x.size, k), x))


def score_at_k(
    values: Sequence[float],
    k: int,
    *,
    pick: str = "best",
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """score@k by resampling runs with replacement, as in the RE-Bench paper.

    Each of ``n_resamples`` seeded draws takes ``k`` runs with replacement and keeps the best
    score among them (``pick="best"``) or a random one of them (``pick="random"``, ScalingLaw);
    the estimate is the mean over draws. The interval is a percentile bootstrap over runs of the
    exact score@k.
    """
    _check(confidence, n_resamples)
    if k < 1:
        raise ValueError(f"k must be >= 1, not {k}")
    if pick not in ("best", "random"):
        raise ValueError(f"pick must be 'best' or 'random', not {pick!r}")
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    draws = x[rng.integers(0, x.size, size=(n_resamples, k))]
    if pick == "best":
        point = float(draws.max(axis=1).mean())
    else:
        point = float(draws[np.arange(n_resamples), rng.integers(0, k, size=n_resamples)].mean())
    boot = _bootstrap_exact(x, k, pick, rng, n_resamples)
    low, high = _quantiles(boot, confidence)
    return Estimate(point, min(low, point), max(high, point), int(x.size))


def _bootstrap_exact(
    x: np.ndarray, k: int, pick: str, rng: np.random.Generator, n_resamples: int
) -> np.ndarray:
    """Exact score@k of ``n_resamples`` bootstrap resamples of the runs ``x``."""
    samples = np.sort(x[rng.integers(0, x.size, size=(n_resamples, x.size))], axis=1)
    if pick == "random":
        return np.asarray(samples.mean(axis=1))
    return np.asarray(samples @ _exact_weights(x.size, k))


def mean_over_tasks(
    per_task: Sequence[Sequence[float]],
    *,
    k: int | None = None,
    picks: Sequence[str] | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """The average over tasks of each task's mean (or exact score@k), with a stratified bootstrap.

    Each task weighs the same whatever its number of runs; the interval resamples runs within
    each task independently. ``n`` is the number of tasks.

    Args:
        per_task: One sequence of run scores per task (tasks without runs are not allowed).
        k: When given, average score@k (exact) instead of the mean.
        picks: ``"best"`` or ``"random"`` per task (default all ``"best"``); used with ``k``.
    """
    _check(confidence, n_resamples)
    tasks = [np.asarray(v, dtype=float) for v in per_task]
    if not tasks:
        return Estimate(math.nan, math.nan, math.nan, 0)
    if any(t.size == 0 for t in tasks):
        raise ValueError("every task needs at least one run")
    modes = list(picks) if picks is not None else ["best"] * len(tasks)
    rng = np.random.default_rng(seed)
    points, boots = [], []
    for t, mode in zip(tasks, modes, strict=True):
        if k is None:
            points.append(float(t.mean()))
            boots.append(t[rng.integers(0, t.size, size=(n_resamples, t.size))].mean(axis=1))
        else:
            points.append(score_at_k_exact(t, k, pick=mode))
            boots.append(_bootstrap_exact(t, k, mode, rng, n_resamples))
    point = float(np.mean(points))
    low, high = _quantiles(np.mean(np.vstack(boots), axis=0), confidence)
    return Estimate(point, min(low, point), max(high, point), len(tasks))


def _aggregate(rows: Sequence[ScoreRowLike], aggregation: str) -> float:
    valid = [r for r in rows if r.valid and math.isfinite(r.normalized)]
    if not valid:
        return 0.0
    if aggregation == "last":
        return float(valid[-1].normalized)
    return float(max(r.normalized for r in valid))


def run_score(run: RunLike, limit_s: float | None = None) -> float | None:
    """A run's normalized score at a per-run time limit (None: the whole run).

    Returns None when the run cannot tell: it was cut by a time budget shorter than the limit.
    """
    final = float(run.normalized_score or 0.0)
    if limit_s is None:
        return final
    budget = run.time_budget_s
    if budget is not None:
        if budget < limit_s - 1e-9:
            return None
        if budget <= limit_s + 1e-9:
            return final
    wall = run.wall_time_s
    if wall is not None and wall <= limit_s:
        return final
    return _aggregate([r for r in run.score_rows if r.elapsed_s <= limit_s], run.aggregation)


def score_over_time(runs: Sequence[RunLike], *, max_points: int = 60) -> list[tuple[float, float]]:
    """Mean best-so-far normalized score (last valid so far for ScalingLaw) against elapsed time.

    The grid is 0, every ``elapsed_s`` of a score row and the longest wall time, thinned to at
    most ``max_points`` points. A run that has ended keeps its final score afterwards.

    Returns:
        ``(elapsed seconds, mean score over runs)`` pairs, in time order.
    """
    if not runs:
        return []
    times = {0.0}
    for run in runs:
        times.update(float(r.elapsed_s) for r in run.score_rows)
        if run.wall_time_s is not None:
            times.add(float(run.wall_time_s))
    grid = sorted(times)
    if len(grid) > max_points:
        idx = np.unique(np.linspace(0, len(grid) - 1, max_points).round().astype(int))
        grid = [grid[i] for i in idx]
    out = []
    for t in grid:
        values = []
        for run in runs:
            ended = run.wall_time_s is not None and run.wall_time_s <= t
            if ended:
                values.append(float(run.normalized_score or 0.0))
            else:
                values.append(
                    _aggregate([r for r in run.score_rows if r.elapsed_s <= t], run.aggregation)
                )
        out.append((float(t), float(np.mean(values))))
    return out
