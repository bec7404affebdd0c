"""``rebench rescore``: score a run's kept solutions again, beside the original scores."""

from __future__ import annotations

import argparse
import json
import sys

from rebench_gym.cli._common import (
    Subparsers,
    add_command,
    add_db,
    add_sandbox,
    add_task_option,
    say,
    task_options,
)


def command(args: argparse.Namespace) -> int:
    """Score the kept solutions of RUN again with the current scorer and anchors.

    Each solution a score call of the run scored was kept beside the run store; it is scored
    again in a fresh sandbox of its task (bwrap unless --sandbox names another), the path a live
    score call takes, and the new scores are stored beside the old ones, marked with the scorer
    version (`rebench leaderboard --rescored` shows them). The agent is not run again.
    """
    from pathlib import Path

    from rebench_gym.errors import UsageError
    from rebench_gym.rescore import rescore_run
    from rebench_gym.results import RunStore, default_db_path

    db = Path(args.db) if args.db else default_db_path()
    if not db.is_file():
        raise UsageError(f"no run store at {db}; record runs with `rebench run ... --db {db}`")
    with RunStore(db) as store:
        rows = rescore_run(
            store,
            args.run,
            episode=args.episode,
            anchors=args.anchors,
            sandbox=args.sandbox,
            task_options=task_options(args),
            progress=say,
        )
    if args.json:
        data = [
            {
                "episode_index": r.episode_index,
                "episode_id": r.rescore.episode_id,
                "seq": r.rescore.seq,
                "solution_id": r.original.solution_id,
                "original": {
                    "raw": r.original.raw,
                    "normalized": r.original.normalized,
                    "valid": r.original.valid,
                    "message": r.original.message,
                },
                "rescored": {
                    "raw": r.rescore.raw,
                    "normalized": r.rescore.normalized,
                    "valid": r.rescore.valid,
                    "message": r.rescore.message,
                    "scorer_version": r.rescore.scorer_version,
                    "anchors": r.rescore.anchors,
                    "sandbox": r.rescore.sandbox,
                },
            }
            for r in rows
        ]
        print(json.dumps(data, indent=2))
        return 0
    if not rows:
        say("no kept solutions to rescore (runs recorded before solutions were kept have none)")
        return 0
    print("episode  call  original (raw, normalized)    rescored (raw, normalized)    version")
    for r in rows:
        before = _cell(r.original.raw, r.original.normalized, r.original.valid)
        after = _cell(r.rescore.raw, r.rescore.normalized, r.rescore.valid)
        print(
            f"{r.episode_index:>7}  {r.rescore.seq:>4}  {before:<28}  {after:<28}  "
            f"{r.rescore.scorer_version}"
        )
    anchors = rows[0].rescore.anchors
    say(
        f"stored {len(rows)} rescored row(s) in {db} (anchors {anchors['source']}: start "
        f"{anchors['start']:g}, reference {anchors['reference']:g})"
    )
    sys.stdout.flush()
    return 0


def _cell(raw: float | None, normalized: float, valid: bool) -> str:
    if not valid or raw is None:
        return "invalid"
    return f"{raw:.4f}, {normalized:.3f}"


def register(sub: Subparsers) -> None:
    from rebench_gym.rescore import ANCHOR_CHOICES

    p = add_command(sub, "rescore", command, "score a run's kept solutions again")
    p.add_argument("run", metavar="RUN", help="the run id (or a unique prefix of it, or 'latest')")
    p.add_argument(
        "--episode",
        type=int,
        default=None,
        metavar="N",
        help="only the episode with index N of the run (0-based, as stored); default: all "
        "finished episodes",
    )
    p.add_argument(
        "--anchors",
        choices=ANCHOR_CHOICES,
        default="calibrate",
        help="calibrate: the anchors a new episode on this machine gets (calibrated where the "
        "task measures them); paper: the task's fixed anchors (an error where it has none); "
        "default: calibrate",
    )
    add_sandbox(p)
    add_task_option(p)
    add_db(p)
