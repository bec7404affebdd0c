"""``rebench leaderboard``: leaderboards of the runs in the store."""

from __future__ import annotations

import argparse
import sys

from rebench_gym.cli._common import (
    Subparsers,
    add_command,
    add_db,
    positive_int,
    say,
    time_limit,
)


def command(args: argparse.Namespace) -> int:
    """Compute the leaderboard of the run store as Markdown, JSON or a self-contained HTML page.

    Per agent and task: runs, mean normalized score with a bootstrap interval, score@k at
    per-run time limits, score over time; and the average over tasks.
    """
    from pathlib import Path

    from rebench_gym.errors import UsageError
    from rebench_gym.results import (
        RunStore,
        build_leaderboard,
        default_db_path,
        render_json,
        render_markdown,
    )
    from rebench_gym.results.html import render_html
    from rebench_gym.results.leaderboard import DEFAULT_KS

    db = Path(args.db) if args.db else default_db_path()
    if not db.is_file():
        raise UsageError(f"no run store at {db}; record runs with `rebench run ... --db {db}`")
    fmt = "json" if args.json else args.format
    with RunStore(db) as store:  # an unreadable file is a usage error naming it
        episodes = store.episodes()
        rescores = store.rescores() if args.rescored else None
    board = build_leaderboard(
        episodes,
        rescores=rescores,
        time_limits=args.time_limit,
        ks=args.k or DEFAULT_KS,
        n_resamples=args.resamples,
        seed=args.seed,
    )
    renderers = {"md": render_markdown, "json": render_json, "html": render_html}
    text = renderers[fmt](board)
    for warning in board.warnings:
        print(f"rebench: warning: {warning}", file=sys.stderr)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
        say(f"wrote the {fmt} leaderboard to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def register(sub: Subparsers) -> None:
    p = add_command(sub, "leaderboard", command, "leaderboards of the runs in the store")
    add_db(p)
    p.add_argument(
        "--format",
        choices=("md", "json", "html"),
        default="md",
        help="Markdown, JSON, or one self-contained HTML page with plots (default: md)",
    )
    p.add_argument("--out", default=None, help="write to this file instead of stdout")
    p.add_argument(
        "--rescored",
        action="store_true",
        help="score each episode as its latest `rebench rescore` scored it (rescored episodes "
        "only) instead of its original score",
    )
    p.add_argument(
        "--time-limit",
        type=time_limit,
        action="append",
        help="per-run time limit in seconds for score@k, or 'whole' (repeatable; default: "
        "the time budgets the runs ran under)",
    )
    p.add_argument("--k", type=positive_int, action="append", help="k of score@k (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    p.add_argument(
        "--resamples", type=positive_int, default=2000, help="bootstrap resamples (default: 2000)"
    )
