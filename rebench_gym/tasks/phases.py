"""Where a score call's time goes: named phases, recorded only while someone asks.

A score call is mostly overhead (starting interpreters, importing torch) around a little measured
work, and rewards per hour are bounded by it. ``rebench bench --scoring`` opens a
:func:`recording` around one score call; the scorers mark their phases with :func:`phase` (or
:func:`add` for spans measured elsewhere, e.g. import times a runner reports). Outside a
recording both are no-ops, so scoring itself pays nothing for them.

Phase names are shared across tasks so the breakdown table has common columns:
``spawn`` (starting the sandboxed process),
``process start`` (interpreter start inside the sandbox), ``imports`` (torch, the solution),
``assets`` (loading task data), ``checks`` (correctness checks), ``timed work`` (what the score
measures), ``sandboxed run`` (a sandboxed process whose inside is not broken down further),
``worker`` (trusted worker processes: evaluation, comparison), ``teardown``. What a recording
does not cover (the env's snapshot of ``solution/``, pausing the agent, the score log) is the
score call's total minus its phases.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

#: the phases in the order the table shows them
PHASES = (
    "spawn",
    "process start",
    "imports",
    "assets",
    "checks",
    "timed work",
    "sandboxed run",
    "worker",
    "teardown",
)


@dataclass
class PhaseLog:
    """Seconds per phase of one score call (a phase entered twice adds up)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + max(0.0, seconds)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


_current: ContextVar[PhaseLog | None] = ContextVar("rebench_score_phases", default=None)


@contextlib.contextmanager
def recording() -> Iterator[PhaseLog]:
    """Record the phases of the score calls made inside the block."""
    log = PhaseLog()
    token = _current.set(log)
    try:
        yield log
    finally:
        _current.reset(token)


def add(name: str, seconds: float) -> None:
    """Add ``seconds`` to phase ``name`` of the current recording (no-op outside one)."""
    log = _current.get()
    if log is not None:
        log.add(name, seconds)


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Count the block's wall time as phase ``name`` (no-op outside a recording)."""
    if _current.get() is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        add(name, time.perf_counter() - start)
