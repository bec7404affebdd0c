"""``rebench sandbox cleanup``: remove what dead rebench_gym drivers left behind."""

from __future__ import annotations

import argparse
import sys

from rebench_gym.cli._common import Subparsers, emit


def command(args: argparse.Namespace) -> int:
    """Remove what dead rebench_gym drivers left behind: containers (when Docker answers),
    workspaces and score copies under the temp dir, shared-memory directories in /dev/shm.
    A running driver's are kept (containers too, unless --all)."""
    from rebench_gym.sandbox.leftovers import remove_leftovers

    containers: list[str] = []
    try:
        from rebench_gym.sandbox import remove_docker_containers

        containers = remove_docker_containers(all_sessions=args.all)
    except Exception as e:  # no docker SDK or no engine: the host's leftovers still go
        print(f"[cleanup] containers skipped: {e}", file=sys.stderr)
    dirs = [str(p) for p in remove_leftovers()]
    emit(
        {"removed": containers, "directories": dirs},
        args.json,
        f"removed {len(containers)} container(s) and {len(dirs)} director(y/ies)",
    )
    return 0


def register(sub: Subparsers) -> None:
    sandbox = sub.add_parser("sandbox", help="sandbox maintenance").add_subparsers(
        dest="sandbox_command", required=True, metavar="SANDBOX_COMMAND"
    )
    p = sandbox.add_parser(
        "cleanup",
        help="remove dead runs' leftovers (containers, workspaces, shared memory)",
        description=command.__doc__,
    )
    p.set_defaults(func=command)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument(
        "--all", action="store_true", help="also remove the containers of running rollouts"
    )
