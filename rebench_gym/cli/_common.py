"""What the command modules share: output, argument types and the flags several commands take."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

#: ``sub.add_parser`` of the ``rebench`` parser (or of a command group such as ``assets``)
Subparsers = Any


def emit(data: Any, as_json: bool, text: str) -> None:
    """Print ``data`` as JSON with ``--json``, else ``text``."""
    print(json.dumps(data, indent=2, default=str) if as_json else text)


def say(message: str) -> None:
    """A progress line on stderr: ``[rebench] MESSAGE``."""
    print(f"[rebench] {message}", file=sys.stderr, flush=True)


def add_command(
    sub: Subparsers, name: str, fn: Callable[[argparse.Namespace], int], help_text: str
) -> argparse.ArgumentParser:
    """Add command ``name`` (its description is ``fn``'s docstring) with a ``--json`` flag."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=fn.__doc__)
    p.set_defaults(func=fn)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return p


def add_id(p: argparse.ArgumentParser) -> None:
    """The positional environment id."""
    from rebench_gym.envs.registration import ENV_IDS

    p.add_argument("id", help=f"environment id, one of: {', '.join(ENV_IDS)}")


def add_scale(p: argparse.ArgumentParser, default: str) -> None:
    """``--scale mini|full``."""
    p.add_argument(
        "--scale",
        choices=("mini", "full"),
        default=default,
        help=f"task scale (default: {default}; mini runs on 2 CPU cores)",
    )


def add_sandbox(p: argparse.ArgumentParser) -> None:
    """``--sandbox PROVIDER``."""
    from rebench_gym.sandbox import PROVIDERS

    p.add_argument(
        "--sandbox",
        choices=PROVIDERS,
        default=None,
        help="sandbox provider (default: bwrap; local only when named)",
    )


def add_task_option(p: argparse.ArgumentParser) -> None:
    """Repeatable ``--task-option KEY=VALUE``."""
    p.add_argument(
        "--task-option",
        type=task_option,
        action="append",
        metavar="KEY=VALUE",
        help="a task setting passed as gym.make(task_options=...), repeatable; e.g. the LLM "
        "endpoint of RustCodecontests: --task-option base_url=URL --task-option model=NAME "
        "(API keys only through environment variables); a name the task does not read is a "
        "usage error",
    )


def task_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--task-option`` flags as a dict (empty without any)."""
    return dict(getattr(args, "task_option", None) or [])


def add_db(p: argparse.ArgumentParser) -> None:
    """``--db PATH``: the run store."""
    p.add_argument(
        "--db",
        default=None,
        help="the SQLite run store (default: $REBENCH_DB, else "
        "$XDG_DATA_HOME/rebench_gym/runs.db, i.e. ~/.local/share/rebench_gym/runs.db)",
    )


# ----- argument types --------------------------------------------------------------------------
def task_option(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE``; VALUE is read as JSON when it parses (numbers, true), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


def time_limit(text: str) -> float | None:
    """Seconds, or ``whole`` (no limit)."""
    if text.strip().lower() in ("whole", "none", "full"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds or 'whole'"
        ) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def positive_int(text: str) -> int:
    """An integer above 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value
