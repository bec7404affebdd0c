"""``rebench view``: an episode of the run store as one self-contained HTML page."""

from __future__ import annotations

import argparse

from rebench_gym.cli._common import Subparsers, add_command, add_db, emit


def command(args: argparse.Namespace) -> int:
    """Write one self-contained HTML page per episode of a stored run, for reading it.

    The page shows the outcome, the budgets used, the score timeline (plot and rows, each row
    linked to its step and to the kept solution it scored, as a diff against the previous one),
    the instructions and every step (action, output, time, tokens). It loads nothing from the
    network. Steps are shown when the run was recorded with ``rebench run --record PATH``.
    """
    from pathlib import Path

    from rebench_gym.errors import UsageError
    from rebench_gym.results import default_db_path
    from rebench_gym.results.view import write_pages

    db = Path(args.db) if args.db else default_db_path()
    if not db.is_file():
        raise UsageError(f"no run store at {db}; record runs with `rebench run ... --db {db}`")
    if args.episode is not None and args.episode < 0:
        raise UsageError(f"--episode is an episode index from 0, not {args.episode}")
    paths = write_pages(db, args.run, Path(args.out), episode=args.episode)
    emit([str(p) for p in paths], args.json, "\n".join(f"wrote {p}" for p in paths))
    return 0


def register(sub: Subparsers) -> None:
    p = add_command(sub, "view", command, "an episode of the run store as an HTML page")
    p.add_argument("run", help="the run id (or a unique prefix of it, or 'latest')")
    add_db(p)
    p.add_argument(
        "--episode",
        type=int,
        default=None,
        help="the episode index (from 0, as stored); default: every episode of the run",
    )
    p.add_argument(
        "--out",
        required=True,
        help="the page to write; with several episodes, one page per episode named "
        "STEM-epN.html beside it",
    )
