"""``rebench assets prepare ID``: build a task's hidden assets into the cache."""

from __future__ import annotations

import argparse

from rebench_gym.cli._common import Subparsers, add_id, add_scale, emit, say


def command(args: argparse.Namespace) -> int:
    """Build a task's hidden assets (models, data) into the cache, with progress shown.

    Mini scale generates everything locally. Full scale reads the original assets from
    ``--source DIR`` (for FixEmbedding: ``gpt2-xl/`` and ``gpt2/`` Hugging Face checkpoints and
    ``openwebtext/train.bin``, ``val.bin`` in nanoGPT's format); a task whose full-scale assets
    are generated too ignores ``--source``.
    """
    from pathlib import Path

    from rebench_gym.cache import cache_root
    from rebench_gym.envs.registration import task_name
    from rebench_gym.errors import UsageError
    from rebench_gym.tasks import get_task

    task = get_task(task_name(args.id))
    if args.source is not None and args.scale == "mini":
        raise UsageError(
            f"{args.id}'s mini assets are generated locally; --source is for --scale full"
        )
    cache = cache_root()
    source = None if args.source is None else Path(args.source)
    task.prepare_assets(args.scale, cache, progress=say, source=source)
    emit(
        {"id": args.id, "scale": args.scale, "cache": str(cache)},
        args.json,
        f"{args.id} ({args.scale}): assets ready in {cache}",
    )
    return 0


def register(sub: Subparsers) -> None:
    assets = sub.add_parser("assets", help="task assets (models, data)").add_subparsers(
        dest="assets_command", required=True, metavar="ASSETS_COMMAND"
    )
    p = assets.add_parser(
        "prepare", help="build a task's assets into the cache", description=command.__doc__
    )
    p.set_defaults(func=command)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_id(p)
    add_scale(p, "mini")
    p.add_argument(
        "--source",
        default=None,
        help="full scale: a directory with the original assets (see the task's documentation)",
    )
