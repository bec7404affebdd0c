"""``rebench image build ID``: a task's Docker image for the docker sandbox."""

from __future__ import annotations

import argparse
import sys

from rebench_gym.cli._common import Subparsers, add_id, add_scale, emit


def command(args: argparse.Namespace) -> int:
    """Build a task's Docker image for the docker sandbox (skipped when it is up to date)."""
    from pathlib import Path

    from rebench_gym.sandbox.docker_images import build_image

    def log(line: str) -> None:
        if not args.json:
            print(line, file=sys.stderr)

    tag = build_image(
        args.id,
        args.scale,
        base_image=args.base_image,
        wheels=Path(args.wheels) if args.wheels else None,
        force=args.force,
        log=log,
    )
    emit({"image": tag}, args.json, tag)
    return 0


def register(sub: Subparsers) -> None:
    image = sub.add_parser("image", help="Docker images of the tasks").add_subparsers(
        dest="image_command", required=True, metavar="IMAGE_COMMAND"
    )
    p = image.add_parser("build", help="build a task's image", description=command.__doc__)
    p.set_defaults(func=command)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_id(p)
    add_scale(p, "mini")
    p.add_argument("--base-image", default=None, help="the FROM image (must be present locally)")
    p.add_argument("--wheels", default=None, help="a directory of wheels to install offline")
    p.add_argument("--force", action="store_true", help="rebuild even if up to date")
