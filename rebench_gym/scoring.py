"""Normalization, the score log, and aggregation of an episode's score.

RE-Bench rules (METR, 2024): ``normalized = (raw - start) / (reference - start)``, so the
starting solution is worth 0 and the reference 1, with no upper clip; a score below the start
counts as 0. The best valid score of the log counts, except for Scaling Law where the last valid
one does. A log without a valid score is worth 0 (not the original kernel task's ``ln(1 ms)``).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Aggregation = Literal["best", "last"]


@dataclass(frozen=True)
class Anchors:
    """Raw scores of the starting and the reference solution, and where they come from."""

    start: float
    reference: float
    source: str  # "paper", "calibrated", or "constant"
    details: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.reference)):
            raise ValueError("anchors must be finite numbers")
        if self.start == self.reference:
            raise ValueError("start and reference anchors must differ")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalize(raw: float, anchors: Anchors) -> float:
    """Normalized score of ``raw``: 0 at the start, 1 at the reference, clipped below at 0.

    Works for lower-is-better tasks too (the denominator is then negative). NaN (an invalid
    score) normalizes to 0.
    """
    if not math.isfinite(raw):
        return 0.0
    value = (raw - anchors.start) / (anchors.reference - anchors.start)
    return max(0.0, value)


@dataclass(frozen=True)
class ScoreResult:
    """What one run of a task's scorer found.

    ``raw`` is NaN when ``valid`` is False; ``message`` says why, or gives details.
    """

    raw: float
    valid: bool
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def invalid(cls, message: str, **details: Any) -> ScoreResult:
        return cls(raw=float("nan"), valid=False, message=message, details=dict(details))


@dataclass(frozen=True)
class ScoreRow:
    """One row of the score log: a timestamped scorer result, as RE-Bench records it."""

    timestamp: float
    elapsed_s: float
    raw: float
    normalized: float
    valid: bool
    message: str
    #: the kept copy of the solution this row scored (:mod:`rebench_gym.results.solutions`),
    #: when the env keeps solutions and this one was kept
    solution_id: str | None = None

    def to_dict(self, *, hidden: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if hidden:
            d["raw"] = None
            d["normalized"] = None
        elif not math.isfinite(self.raw):
            d["raw"] = None
        return d


class ScoreLog:
    """The episode's score log with its aggregation rule."""

    def __init__(self, anchors: Anchors, aggregation: Aggregation = "best") -> None:
        if aggregation not in ("best", "last"):
            raise ValueError(f"aggregation must be 'best' or 'last', not {aggregation!r}")
        self.anchors = anchors
        self.aggregation: Aggregation = aggregation
        self.rows: list[ScoreRow] = []

    def add(
        self, result: ScoreResult, *, elapsed_s: float, solution_id: str | None = None
    ) -> ScoreRow:
        """Append a scorer result (of the kept solution ``solution_id``) and return its row."""
        raw = result.raw if result.valid and math.isfinite(result.raw) else float("nan")
        row = ScoreRow(
            timestamp=time.time(),
            elapsed_s=elapsed_s,
            raw=raw,
            normalized=normalize(raw, self.anchors),
            valid=result.valid and math.isfinite(raw),
            message=result.message,
            solution_id=solution_id,
        )
        self.rows.append(row)
        return row

    def valid_rows(self) -> list[ScoreRow]:
        return [r for r in self.rows if r.valid]

    def aggregate_row(self) -> ScoreRow | None:
        """The row that counts: best (by normalized score) or last valid; None if no valid row."""
        valid = self.valid_rows()
        if not valid:
            return None
        if self.aggregation == "last":
            return valid[-1]
        return max(valid, key=lambda r: r.normalized)

    @property
    def normalized(self) -> float:
        """The episode's aggregated normalized score (0 without a valid row)."""
        row = self.aggregate_row()
        return row.normalized if row is not None else 0.0

    @property
    def raw(self) -> float:
        """The raw score of the counting row (NaN without a valid row)."""
        row = self.aggregate_row()
        return row.raw if row is not None else float("nan")

    def to_list(self, *, hidden: bool = False) -> list[dict[str, Any]]:
        return [r.to_dict(hidden=hidden) for r in self.rows]
