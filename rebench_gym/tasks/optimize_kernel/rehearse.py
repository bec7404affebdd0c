"""Rehearsal stand-ins for OptimizeKernel: the full-scale task on CPU with a 1e5-element input.

There are no files to stand in for (the inputs are generated per score call); the full-scale
parameters shrink the input to 100,000 elements, run on the CPU (the starting PyTorch solution
natively, the reference's Triton kernels in Triton's interpreter) and time fewer calls. The
interpreter emulates a GPU in Python, so the reference is far slower than the start here: the
rehearsal checks that both run correctly through the full-scale timing path, not their ranking.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rebench_gym.rehearse import StandIns


def stand_ins(root: Path, progress: Callable[[str], None] | None = None) -> StandIns:
    return StandIns(
        params={"length": 100_000, "device": "cpu", "timed_repeats": 3, "warmup_calls": 1},
        not_comparable=(
            "the reference's Triton kernels run in Triton's interpreter on CPU (a Python "
            "emulation of the GPU, ~100x slower than the starting PyTorch code there); only "
            "a GPU can rank them (benchmarks/full_scale_gpu.py)"
        ),
    )
