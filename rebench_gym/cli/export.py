"""``rebench export``: stored runs in another tool's format (Inspect AI eval logs)."""

from __future__ import annotations

import argparse

from rebench_gym.cli._common import Subparsers, add_command, add_db, emit


def command(args: argparse.Namespace) -> int:
    """Export the episodes of a stored run for another tool.

    ``--format inspect``: one Inspect AI eval log (``.eval``) per episode in ``--out DIR``,
    written with inspect_ai's own log writer; ``inspect view --log-dir DIR`` shows them. Each
    holds the instructions, one tool call and tool result per step (when the run was recorded
    with ``--record``), the final normalized score as the sample's score and the model usage
    the run recorded.
    """
    from pathlib import Path

    from rebench_gym.errors import UsageError
    from rebench_gym.results import default_db_path
    from rebench_gym.results.inspect_export import export_run

    db = Path(args.db) if args.db else default_db_path()
    if not db.is_file():
        raise UsageError(f"no run store at {db}; record runs with `rebench run ... --db {db}`")
    if args.episode is not None and args.episode < 0:
        raise UsageError(f"--episode is an episode index from 0, not {args.episode}")
    paths = export_run(db, args.run, Path(args.out), episode=args.episode)
    emit(
        [str(p) for p in paths],
        args.json,
        "\n".join(f"wrote {p}" for p in paths)
        + f"\nview them with: inspect view --log-dir {args.out}",
    )
    return 0


def register(sub: Subparsers) -> None:
    p = add_command(sub, "export", command, "export a stored run (Inspect AI eval logs)")
    p.add_argument("run", help="the run id (or a unique prefix of it, or 'latest')")
    add_db(p)
    p.add_argument(
        "--format",
        choices=("inspect",),
        required=True,
        help="inspect: one Inspect AI .eval log per episode",
    )
    p.add_argument("--out", required=True, help="the directory to write the logs to")
    p.add_argument(
        "--episode",
        type=int,
        default=None,
        help="the episode index (from 0, as stored); default: every episode of the run",
    )
