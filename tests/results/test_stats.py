"""Statistics of runs: score@k against hand computations, bootstrap intervals, time limits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from rebench_gym.results.stats import (
    bootstrap_mean,
    mean_over_tasks,
    run_score,
    score_at_k,
    score_at_k_exact,
    score_over_time,
)


@dataclass(frozen=True)
class Row:
    elapsed_s: float
    normalized: float
    valid: bool = True


@dataclass(frozen=True)
class Run:
    normalized_score: float
    wall_time_s: float
    aggregation: str = "best"
    time_budget_s: float | None = None
    score_rows: tuple[Row, ...] = field(default_factory=tuple)


def test_score_at_k_matches_a_hand_computation() -> None:
    # Runs scoring 0, 0.5 and 1; draw k=2 with replacement (9 equally likely pairs):
    # max = 0 in 1 pair, 0.5 in 3 pairs, 1 in 5 pairs -> (0 + 3*0.5 + 5*1)/9 = 6.5/9.
    values = [0.0, 0.5, 1.0]
    assert score_at_k_exact(values, 2) == pytest.approx(6.5 / 9)
    assert score_at_k_exact(values, 1) == pytest.approx(0.5)
    # Two runs 0.2 and 0.8, k=3: the max is 0.2 only if all three draws are 0.2 (1/8).
    assert score_at_k_exact([0.8, 0.2], 3) == pytest.approx(0.2 / 8 + 0.8 * 7 / 8)
    # The resampling estimate (the paper's method) converges to the exact value.
    est = score_at_k(values, 2, n_resamples=20_000, seed=1)
    assert est.mean == pytest.approx(6.5 / 9, abs=0.01)
    assert est.low <= est.mean <= est.high and est.n == 3
    # More draws can only help; with many draws the best run dominates.
    ks = [score_at_k_exact(values, k) for k in (1, 2, 4, 8, 64)]
    assert ks == sorted(ks) and ks[-1] == pytest.approx(1.0, abs=1e-9)


def test_scaling_law_takes_a_random_one_of_k_not_the_max() -> None:
    values = [0.0, 0.5, 1.0]
    for k in (1, 2, 8):
        assert score_at_k_exact(values, k, pick="random") == pytest.approx(0.5)
        est = score_at_k(values, k, pick="random", n_resamples=20_000, seed=2)
        assert est.mean == pytest.approx(0.5, abs=0.015)
    assert score_at_k(values, 8, pick="best", n_resamples=20_000).mean > 0.9


def test_score_at_k_is_seeded_and_validates() -> None:
    a = score_at_k([0.1, 0.4, 0.9], 3, seed=5)
    assert a == score_at_k([0.1, 0.4, 0.9], 3, seed=5)
    with pytest.raises(ValueError):
        score_at_k([0.1], 0)
    with pytest.raises(ValueError):
        score_at_k([0.1], 1, pick="max")
    assert np.isnan(score_at_k([], 2).mean)


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_more_runs() -> None:
    rng = np.random.default_rng(0)
    population = rng.uniform(0.0, 1.0, size=400)
    few = bootstrap_mean(population[:5], seed=3)
    many = bootstrap_mean(population, seed=3)
    for est, n in ((few, 5), (many, 400)):
        assert est.low <= est.mean <= est.high and est.n == n
        assert est.mean == pytest.approx(float(np.mean(population[:n])))
    assert (many.high - many.low) < (few.high - few.low) / 3
    assert bootstrap_mean([0.7]).to_dict() == {"mean": 0.7, "low": 0.7, "high": 0.7, "n": 1}
    assert bootstrap_mean(population[:5], seed=3) == few


def test_run_score_at_a_per_run_time_limit() -> None:
    rows = (Row(10, 0.2), Row(50, 0.6), Row(80, 0.0, valid=False), Row(100, 0.4))
    best = Run(normalized_score=0.6, wall_time_s=110, score_rows=rows)
    assert run_score(best) == 0.6
    assert run_score(best, 5) == 0.0
    assert run_score(best, 20) == 0.2
    assert run_score(best, 60) == 0.6
    assert run_score(best, 1000) == 0.6  # ended before the limit: its final score
    last = Run(normalized_score=0.4, wall_time_s=110, aggregation="last", score_rows=rows)
    assert run_score(last, 60) == 0.6
    assert run_score(last, 90) == 0.6  # the invalid row at 80 s does not count
    assert run_score(last, 105) == 0.4
    budgeted = Run(normalized_score=0.5, wall_time_s=31, time_budget_s=30, score_rows=rows)
    assert run_score(budgeted, 30) == 0.5  # the limit it ran under: its final score
    assert run_score(budgeted, 60) is None  # cut short: cannot say what 60 s would give
    assert run_score(budgeted, 20) == 0.2


def test_score_over_time_is_the_mean_best_so_far() -> None:
    a = Run(0.6, 100, score_rows=(Row(10, 0.2), Row(50, 0.6), Row(90, 0.3)))
    b = Run(0.0, 20, score_rows=(Row(15, 0.0),))
    curve = dict(score_over_time([a, b]))
    assert curve[0.0] == 0.0
    assert curve[10.0] == pytest.approx(0.1)
    assert curve[50.0] == pytest.approx(0.3)
    assert curve[90.0] == pytest.approx(0.3)  # best so far never drops
    assert curve[100.0] == pytest.approx(0.3)
    assert len(score_over_time([a, b], max_points=3)) <= 3
    assert score_over_time([]) == []


def test_mean_over_tasks_weighs_tasks_equally() -> None:
    est = mean_over_tasks([[0.0, 1.0, 1.0, 1.0], [0.2]], seed=0)
    assert est.mean == pytest.approx((0.75 + 0.2) / 2) and est.n == 2
    assert est.low <= est.mean <= est.high
    at2 = mean_over_tasks([[0.0, 0.5, 1.0], [0.0, 0.5, 1.0]], k=2, picks=["best", "random"])
    assert at2.mean == pytest.approx((6.5 / 9 + 0.5) / 2)
    with pytest.raises(ValueError):
        mean_over_tasks([[0.1], []])
