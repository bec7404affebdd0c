"""Normalization and aggregation follow RE-Bench's rules."""

from __future__ import annotations

import math

import pytest

from rebench_gym.scoring import Anchors, ScoreLog, ScoreResult, normalize

HIGHER = Anchors(start=0.24, reference=0.84, source="paper")
LOWER = Anchors(start=1.56, reference=0.47, source="paper")


def test_normalize_anchors_map_to_zero_and_one() -> None:
    assert normalize(0.24, HIGHER) == 0.0
    assert normalize(0.84, HIGHER) == pytest.approx(1.0)
    assert normalize(1.56, LOWER) == 0.0
    assert normalize(0.47, LOWER) == pytest.approx(1.0)


def test_lower_is_better_beyond_reference_is_not_clipped() -> None:
    assert normalize(math.log(0.64), LOWER) == pytest.approx((math.log(0.64) - 1.56) / -1.09)
    assert normalize(math.log(0.64), LOWER) > 1.0


def test_below_start_counts_as_zero_and_nan_is_zero() -> None:
    assert normalize(3.0, LOWER) == 0.0
    assert normalize(0.1, HIGHER) == 0.0
    assert normalize(float("nan"), LOWER) == 0.0


def test_anchors_must_differ() -> None:
    with pytest.raises(ValueError, match="differ"):
        Anchors(1.0, 1.0, "x")


def test_best_aggregation_ignores_invalid_and_keeps_best() -> None:
    log = ScoreLog(LOWER, "best")
    assert log.normalized == 0.0 and math.isnan(log.raw)
    log.add(ScoreResult(1.0, True), elapsed_s=1)
    log.add(ScoreResult.invalid("timeout"), elapsed_s=2)
    log.add(ScoreResult(1.2, True), elapsed_s=3)
    assert log.raw == 1.0
    assert log.normalized == pytest.approx((1.0 - 1.56) / (0.47 - 1.56))
    assert [r.valid for r in log.rows] == [True, False, True]
    assert log.to_list()[1]["raw"] is None


def test_last_valid_aggregation() -> None:
    log = ScoreLog(HIGHER, "last")
    log.add(ScoreResult(0.8, True), elapsed_s=1)
    log.add(ScoreResult(0.5, True), elapsed_s=2)
    log.add(ScoreResult.invalid("bad json"), elapsed_s=3)
    assert log.raw == 0.5


def test_only_invalid_rows_score_zero() -> None:
    log = ScoreLog(LOWER, "best")
    log.add(ScoreResult.invalid("crash"), elapsed_s=1)
    assert log.normalized == 0.0


def test_hidden_rows_withhold_numbers() -> None:
    log = ScoreLog(HIGHER, "best")
    log.add(ScoreResult(0.5, True), elapsed_s=1)
    row = log.to_list(hidden=True)[0]
    assert row["raw"] is None and row["normalized"] is None and row["valid"] is True
