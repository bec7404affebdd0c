"""``rebench calibrate ID``: measure the start and reference anchors on this machine."""

from __future__ import annotations

import argparse

from rebench_gym.cli._common import (
    Subparsers,
    add_command,
    add_id,
    add_scale,
    add_task_option,
    emit,
    positive_int,
    task_options,
)


def command(args: argparse.Namespace) -> int:
    """Measure the start and reference anchors on this machine and cache them."""
    from rebench_gym.calibration import calibrate
    from rebench_gym.envs.registration import task_name
    from rebench_gym.runs import check_task_options
    from rebench_gym.tasks import get_task

    task = get_task(task_name(args.id))
    options = task_options(args)
    check_task_options(args.id, options)
    task.check_hardware(args.scale)
    paper = task.paper_anchors("full")
    anchors = calibrate(
        task, args.scale, repeats=args.repeats, progress=True, options=options or None
    )
    data = {
        "id": args.id,
        "scale": args.scale,
        "calibrated": anchors.to_dict(),
        "paper_full_scale": paper.to_dict() if paper else None,
    }
    text = (
        f"{args.id} ({args.scale}): start {anchors.start:.4f}, reference "
        f"{anchors.reference:.4f} (calibrated; {anchors.details})"
    )
    if paper:
        text += (
            f"\npaper anchors (full scale, H100): start {paper.start}, reference {paper.reference}"
        )
    emit(data, args.json, text)
    return 0


def register(sub: Subparsers) -> None:
    p = add_command(sub, "calibrate", command, "measure start/reference anchors on this machine")
    add_id(p)
    add_scale(p, "mini")
    add_task_option(p)
    p.add_argument(
        "--repeats",
        type=positive_int,
        default=5,
        help="score runs of each solution (the median is kept)",
    )
