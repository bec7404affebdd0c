"""The ``rebench`` command: a thin shell over rebench_gym's public functions.

One module per command (``list``, ``check``, ``run``, ``serve``, ``leaderboard``, ``view``,
``export``, ``rescore``, ``calibrate``, ``bench``, ``assets``, ``image``, ``sandbox``,
``rehearse``), each with ``register(subparsers)`` and ``command(args) -> int``; argparse stays
in this package (``rebench run`` hands :func:`rebench_gym.runs.run` a typed
:class:`~rebench_gym.runs.RunOptions`).

Exit codes: 0 success, 1 failure of the work itself, 2 usage errors (bad ids, flags, values,
a run store that cannot be used, a run being resumed elsewhere).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rebench_gym.cli import (
    assets,
    bench,
    calibrate,
    check,
    export,
    image,
    leaderboard,
    rehearse,
    rescore,
    run,
    sandbox,
    serve,
    view,
)
from rebench_gym.cli import list as list_
from rebench_gym.errors import ReBenchError, UsageError

EPILOG = "Run `rebench COMMAND --help` for a command's options."
COMMANDS = (
    list_,
    check,
    run,
    serve,
    leaderboard,
    rescore,
    view,
    export,
    calibrate,
    bench,
    image,
    assets,
    sandbox,
    rehearse,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``rebench``."""
    parser = argparse.ArgumentParser(
        prog="rebench",
        description="RE-Bench's seven ML research-engineering tasks as Gymnasium environments.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rebench``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as e:
        print(f"rebench: error: {e}", file=sys.stderr)
        return 2
    except ReBenchError as e:
        print(f"rebench: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rebench: interrupted", file=sys.stderr)
        return 130


__all__ = ["EPILOG", "build_parser", "main"]
