"""``rebench image build ID|--all``: the tasks' Docker images for the docker sandbox."""

from __future__ import annotations

import argparse
import sys
import time

from rebench_gym.cli._common import Subparsers, add_scale, emit
from rebench_gym.errors import UsageError


def command(args: argparse.Namespace) -> int:
    """Build a task's Docker image (or every task's, --all) for the docker sandbox. The scale's
    shared base is built first when missing; an image that is up to date is not rebuilt."""
    from pathlib import Path

    from rebench_gym.envs.registration import ENV_IDS
    from rebench_gym.sandbox.docker_images import build_image

    if args.all == bool(args.id):
        raise UsageError("give one environment id or --all")
    ids = sorted(ENV_IDS) if args.all else [args.id]
    verbose = not args.json and not args.all

    def log(line: str) -> None:
        if verbose:
            print(line, file=sys.stderr)

    built: dict[str, dict[str, object]] = {}
    for n, env_id in enumerate(ids, 1):
        if args.all and not args.json:
            print(f"[{n}/{len(ids)}] {env_id} ({args.scale}) ...", file=sys.stderr, flush=True)
        start = time.monotonic()
        tag = build_image(
            env_id,
            args.scale,
            base_image=args.base_image,
            wheels=Path(args.wheels) if args.wheels else None,
            force=args.force,
            log=log,
        )
        seconds = round(time.monotonic() - start, 1)
        built[env_id] = {"image": tag, "seconds": seconds}
        if args.all and not args.json:
            print(f"[{n}/{len(ids)}] {env_id}: {tag} ({seconds} s)", file=sys.stderr, flush=True)
    if args.all:
        text = "\n".join(f"{i}  {b['image']}" for i, b in built.items())
        emit({"images": built}, args.json, text)
    else:
        emit({"image": built[ids[0]]["image"]}, args.json, str(built[ids[0]]["image"]))
    return 0


def register(sub: Subparsers) -> None:
    from rebench_gym.envs.registration import ENV_IDS

    image = sub.add_parser("image", help="Docker images of the tasks").add_subparsers(
        dest="image_command", required=True, metavar="IMAGE_COMMAND"
    )
    p = image.add_parser("build", help="build a task's image", description=command.__doc__)
    p.set_defaults(func=command)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("id", nargs="?", help=f"environment id, one of: {', '.join(ENV_IDS)}")
    p.add_argument("--all", action="store_true", help="build every task's image, one by one")
    add_scale(p, "mini")
    p.add_argument("--base-image", default=None, help="the root image (must be present locally)")
    p.add_argument("--wheels", default=None, help="a directory of wheels to install offline")
    p.add_argument("--force", action="store_true", help="rebuild even if up to date")
