"""Log-loss scoring through a trusted worker (:func:`rebench_gym.procs.run_worker`)."""

from __future__ import annotations

import math
from typing import Any

from rebench_gym.procs import run_worker
from rebench_gym.scoring import ScoreResult


def log_loss_score(
    module: str, spec: dict[str, Any], timeout: float, floor: float, describe: str
) -> ScoreResult:
    """Run a worker that reports ``{"loss": ...}``; the raw score is ``ln(loss - floor)``.

    ``describe`` is the message, formatted with the worker's result (``{loss:.4f}`` and any
    other key it reports).
    """
    result, error = run_worker(module, spec, timeout)
    if result is None:
        return ScoreResult.invalid(error)
    loss = float(result["loss"])
    return ScoreResult(
        raw=math.log(max(loss - floor, 1e-6)),
        valid=True,
        message=describe.format(**{**result, "loss": loss}),
        details={"loss": loss},
    )
