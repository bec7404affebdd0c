"""``rebench bench``: the performance benchmarks."""

from __future__ import annotations

import argparse

from rebench_gym.cli._common import Subparsers, add_command, emit, positive_int
from rebench_gym.envs.registration import ENV_IDS


def command(args: argparse.Namespace) -> int:
    """Run the performance benchmarks (step overhead against a raw shell round trip)."""
    from rebench_gym.bench import run_benchmarks, scoring_costs

    if args.scoring:
        sandbox = (args.sandbox or ["bwrap"])[0]
        scoring = scoring_costs(
            sandbox=sandbox,
            repeats=args.score_repeats,
            env_ids=args.task,
            calibration_repeats=0 if args.no_calibration else 5,
        )
        emit(scoring, args.json, scoring["text"])
        return 0
    report = run_benchmarks(
        sandboxes=args.sandbox or None,
        repeats=args.repeats,
        extended=not args.quick,
        images=args.images,
    )
    emit(report, args.json, report["text"])
    return 0


def register(sub: Subparsers) -> None:
    p = add_command(sub, "bench", command, "run the performance benchmarks")
    p.add_argument(
        "--sandbox",
        choices=("local", "bwrap", "docker"),
        action="append",
        help="sandbox to measure (repeatable; default: all available)",
    )
    p.add_argument("--repeats", type=positive_int, default=200, help="timed steps per case")
    p.add_argument(
        "--images",
        action="store_true",
        help="also time every task's mini Docker image build (cold and on a warm base) and "
        "report the sizes (rebuilds them)",
    )
    p.add_argument(
        "--scoring",
        action="store_true",
        help="only the score-call cost: per mini task where a score call's time goes (the "
        "reference solution, first --sandbox or bwrap), fast path against baseline path",
    )
    p.add_argument(
        "--task",
        action="append",
        choices=sorted(ENV_IDS),
        metavar="ID",
        help="with --scoring: only this task (repeatable; default: every task)",
    )
    p.add_argument(
        "--score-repeats",
        type=positive_int,
        default=5,
        help="score calls per task and path with --scoring",
    )
    p.add_argument(
        "--no-calibration",
        action="store_true",
        help="with --scoring: skip timing the kernel's calibration on both paths (20 score calls)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="only step overhead and reset (skip vector, memory and score-call benchmarks)",
    )
