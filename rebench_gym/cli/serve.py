"""``rebench serve ID``: the env as an OpenEnv server (over :func:`rebench_gym.serve.serve`)."""

from __future__ import annotations

import argparse

from rebench_gym.cli._common import (
    Subparsers,
    add_command,
    add_db,
    add_id,
    add_sandbox,
    add_scale,
    add_task_option,
    positive_float,
    positive_int,
    say,
    task_options,
)
from rebench_gym.errors import UsageError


def command(args: argparse.Namespace) -> int:
    """Serve an environment to RL trainers over OpenEnv (WebSocket sessions at /ws): one env
    and sandbox per session, every episode recorded in the run store. Binds 127.0.0.1 unless
    told otherwise; any other address requires $REBENCH_SERVE_TOKEN on every request (clients
    connect to http://rebench:TOKEN@HOST:PORT). Runs until interrupted."""
    try:
        from rebench_gym.serve import serve
    except ImportError as e:
        raise UsageError(
            f"rebench serve needs openenv-core ({e}): pip install 'rebench-gym[serve]'"
        ) from None
    from rebench_gym.runs import RunOptions

    options = RunOptions(
        env_id=args.id,
        agent=args.agent,
        scale=args.scale,
        sandbox=args.sandbox,
        hidden_score=args.hidden_score,
        time_budget=args.time_budget,
        task_options=task_options(args),
        db=args.db,
        run_id=args.run_id,
    )
    serve(
        options,
        host=args.host,
        port=args.port,
        max_sessions=args.max_sessions,
        idle_timeout=None if args.idle_timeout == 0 else args.idle_timeout,
        progress=say,
    )
    return 0


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1-65535)")
    return value


def _idle(text: str) -> float:
    return 0.0 if text.strip() in ("0", "none") else positive_float(text)


def register(sub: Subparsers) -> None:
    p = add_command(sub, "serve", command, "serve an env over OpenEnv (WebSocket sessions)")
    add_id(p)
    add_scale(p, "full")
    add_sandbox(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; any non-loopback address, 0.0.0.0 included, "
        "needs $REBENCH_SERVE_TOKEN)",
    )
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    p.add_argument(
        "--max-sessions",
        type=positive_int,
        default=8,
        metavar="N",
        help="sessions at a time, each with its own env and sandbox; more are refused (default 8)",
    )
    p.add_argument(
        "--idle-timeout",
        type=_idle,
        default=600.0,
        metavar="SECONDS",
        help="close a session whose client sent nothing for this long (a step in progress "
        "counts as activity); 0 or none: never (default 600)",
    )
    p.add_argument(
        "--hidden-score",
        action="store_true",
        help="the hidden_score variant (score calls report validity only)",
    )
    p.add_argument(
        "--time-budget",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="end each episode (truncated, final state scored) after this much wall-clock time",
    )
    add_task_option(p)
    p.add_argument(
        "--agent",
        default="openenv",
        metavar="LABEL",
        help="the agent name the episodes are recorded under (default: openenv)",
    )
    p.add_argument("--run-id", default=None, help="a name for the server's run in the store")
    add_db(p)
