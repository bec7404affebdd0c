"""``rebench check ID``: Gymnasium's env checker on one id."""

from __future__ import annotations

import argparse

from rebench_gym.cli._common import Subparsers, add_command, add_id, add_sandbox, add_scale, emit


def command(args: argparse.Namespace) -> int:
    """Run Gymnasium's env checker on an id (mini scale by default) and report."""
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import rebench_gym  # noqa: F401 - registers ids
    from rebench_gym.envs.registration import task_name

    task_name(args.id)  # a usage error for unknown ids
    env = gym.make(args.id, scale=args.scale, sandbox=args.sandbox)
    try:
        check_env(env.unwrapped)
    finally:
        env.close()
    emit({"id": args.id, "ok": True}, args.json, f"{args.id}: check_env passed")
    return 0


def register(sub: Subparsers) -> None:
    p = add_command(sub, "check", command, "run Gymnasium's env checker on an id")
    add_id(p)
    add_scale(p, "mini")
    add_sandbox(p)
