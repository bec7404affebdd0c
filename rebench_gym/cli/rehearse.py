"""``rebench rehearse ID``: the full-scale code path on CPU with tiny stand-ins.

A shell over ``rebench_gym.rehearse.rehearse(env_id, progress=...)``, which scores the start and
the reference solution and returns ``{"id", "start": {raw, normalized, valid, message,
seconds}, "reference": {...}, ...}``. Exit 0 when both are valid and the reference scores better
than the start, else 1.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from typing import Any

from rebench_gym.cli._common import Subparsers, add_command, add_id, emit, say


def passed(report: Mapping[str, Any]) -> bool:
    """Both solutions valid and the reference better than the start.

    "Better" is the report's own ``ok`` where it has one (the reference better in the task's
    direction), else the reference's normalized score above the start's.
    """
    start, reference = report.get("start") or {}, report.get("reference") or {}
    if not (start.get("valid") and reference.get("valid")):
        return False
    if "ok" in report:
        return bool(report["ok"])
    try:
        s, r = float(start["normalized"]), float(reference["normalized"])
    except (KeyError, TypeError, ValueError):
        return False
    return math.isfinite(s) and math.isfinite(r) and r > s


def summary(report: Mapping[str, Any]) -> str:
    """Two lines: the start's and the reference's score, validity, time and message."""
    lines = []
    for name in ("start", "reference"):
        row = report.get(name) or {}
        raw = row.get("raw")
        raw_text = "n/a" if raw is None else f"{float(raw):.4g}"
        normalized = row.get("normalized")
        norm_text = "n/a" if normalized is None else f"{float(normalized):.3f}"
        valid = "valid" if row.get("valid") else "INVALID"
        seconds = float(row.get("seconds") or 0.0)
        message = str(row.get("message") or "").strip().splitlines()
        lines.append(
            f"{report.get('id', '?')} {name:9} raw={raw_text} normalized={norm_text} {valid} "
            f"({seconds:.1f}s){': ' + message[0] if message else ''}"
        )
    return "\n".join(lines)


def command(args: argparse.Namespace) -> int:
    """Rehearse an id's full-scale code path on this machine's CPU with tiny stand-ins: score the
    start and the reference solution; exit 0 when both are valid and the reference is better."""
    from rebench_gym.envs.registration import task_name
    from rebench_gym.rehearse import rehearse

    task_name(args.id)  # a usage error for unknown ids
    report = rehearse(args.id, progress=say, sandbox=args.sandbox)
    emit(report, args.json, summary(report))
    return 0 if passed(report) else 1


def register(sub: Subparsers) -> None:
    p = add_command(sub, "rehearse", command, "rehearse the full-scale code path on CPU")
    add_id(p)
    p.add_argument(
        "--sandbox",
        default=None,
        help="the episode's sandbox (default: the env's); docker: the full-scale image, no GPU",
    )
