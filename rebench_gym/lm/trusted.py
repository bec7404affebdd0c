"""Run one of the package's trusted worker modules (``python -m ...``) on a JSON spec.

Scorers that must not execute the agent's code in their own process (checkpoint evaluation,
graph execution, sampling) hand the work to a fresh interpreter. The worker prints one JSON line
last: a result, ``{"error": ...}`` or ``{"violation": ...}``. Every way it can fail (timeout,
out of memory, crash, no result) becomes a message for an invalid score, never an exception.

Workers run on hidden data (held-out tokens, held-out instructions), so what they print to
stderr is never passed on: a crash is reported by its exit status and the type name of the last
exception. A worker's own ``error`` and ``violation`` texts reach the agent as they are, so each
worker must keep text derived from hidden data out of them.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from typing import Any

from rebench_gym.scoring import ScoreResult


def run_worker(
    module: str, spec: dict[str, Any], timeout: float, what: str = "evaluation"
) -> tuple[dict[str, Any] | None, str]:
    """``(result, "")`` or ``(None, message)``; ``what`` names the work in messages."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", module, json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None, f"{what} timed out after {timeout:.0f} s"
    if proc.returncode != 0:
        reason = "ran out of memory" if proc.returncode in (-9, 137) else "crashed"
        return None, f"{what} {reason} (exit {proc.returncode}){_last_exception(proc.stderr)}"
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, f"{what} gave no result{_last_exception(proc.stderr)}"
    if not isinstance(result, dict):
        return None, f"{what} gave no result{_last_exception(proc.stderr)}"
    if "violation" in result:
        return None, f"rule violation: {result['violation']}"
    if "error" in result:
        return None, str(result["error"])
    return result, ""


#: a traceback's last line: an exception class name (dotted, ending like one), then ":" or EOL
_EXCEPTION_LINE = re.compile(
    r"^((?:[A-Za-z_]\w{0,40}\.){0,4}[A-Za-z_]\w{0,40}(?:Error|Exception|Exit|Interrupt|Fault))"
    r"(?::|$)"
)


def _last_exception(stderr: str) -> str:
    """``": ValueError"`` from a traceback's last line, or "": never the exception's text."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    match = _EXCEPTION_LINE.match(lines[-1]) if lines else None
    return f": {match.group(1)}" if match else ""


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
