"""Rehearsal stand-ins for OptimizeKernel: the full-scale task on CPU with a 1e5-element input.

There are no files to stand in for (the inputs are generated per score call); the full-scale
parameters shrink the input to 100,000 elements, run on the CPU (the starting PyTorch solution
natively, the reference's Triton kernels in Triton's interpreter) and time fewer calls.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rebench_gym.rehearse import StandIns


def stand_ins(root: Path, progress: Callable[[str], None] | None = None) -> StandIns:
    return StandIns(
        params={"length": 100_000, "device": "cpu", "timed_repeats": 3, "warmup_calls": 1},
    )
