"""The ``rebench`` command: a thin layer over rebench_gym's public functions.

Exit codes: 0 success, 1 failure of the work itself, 2 usage errors (bad ids, flags, values).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from rebench_gym.errors import ReBenchError, UsageError

EPILOG = "Run `rebench COMMAND --help` for a command's options."


def _emit(data: Any, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if as_json else text)


def cmd_list(args: argparse.Namespace) -> int:
    """List the environment ids, their tasks and whether they are built."""
    from rebench_gym.envs.registration import ENV_IDS
    from rebench_gym.tasks import get_task, is_built

    rows = []
    for env_id, name in ENV_IDS.items():
        row: dict[str, Any] = {"id": env_id, "task": name, "built": is_built(name)}
        if is_built(name):
            spec = get_task(name).spec
            row.update(
                title=spec.title,
                original=spec.original,
                scales=sorted(spec.scales),
                higher_is_better=spec.higher_is_better,
            )
        rows.append(row)
    lines = [f"{'id':34} {'built':6} scales"]
    for r in rows:
        lines.append(
            f"{r['id']:34} {'yes' if r['built'] else 'no':6} "
            f"{', '.join(r.get('scales', [])) or '-'}"
        )
    _emit(rows, args.json, "\n".join(lines))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
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
    _emit({"id": args.id, "ok": True}, args.json, f"{args.id}: check_env passed")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Roll out an agent for a number of episodes and print each result."""
    import gymnasium as gym

    from rebench_gym import agents, rollout
    from rebench_gym.envs.registration import task_name

    task_name(args.id)  # a usage error for unknown ids
    results = []
    for episode in range(args.episodes):
        env = gym.make(
            args.id, scale=args.scale, sandbox=args.sandbox, hidden_score=args.hidden_score
        )
        try:
            agent = agents.make(args.agent, env_id=args.id, scale=args.scale)
            print(
                f"[rebench] episode {episode + 1}/{args.episodes}: {args.agent} on {args.id} "
                f"({args.scale})",
                file=sys.stderr,
                flush=True,
            )
            result = rollout(env, agent, max_steps=args.max_steps, seed=args.seed)
        finally:
            env.close()
        results.append(result)
        if not args.json:
            raw = "n/a" if result.raw_score is None else f"{result.raw_score:.4f}"
            print(
                f"{result.env_id} agent={result.agent} normalized_score="
                f"{result.normalized_score:.3f} raw_score={raw} steps={result.steps} "
                f"wall_time={result.wall_time_s:.1f}s"
            )
    if args.json:
        from dataclasses import asdict

        print(json.dumps([asdict(r) for r in results], indent=2, default=str))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Measure the start and reference anchors on this machine and cache them."""
    from rebench_gym.calibration import calibrate
    from rebench_gym.envs.registration import task_name
    from rebench_gym.tasks import get_task

    task = get_task(task_name(args.id))
    task.check_hardware(args.scale)
    paper = task.paper_anchors("full")

    anchors = calibrate(task, args.scale, repeats=args.repeats, progress=True)
    data = {
        "id": args.id,
        "scale": args.scale,
        "calibrated": anchors.to_dict(),
        "paper_full_scale": paper.to_dict() if paper else None,
    }
    text = (
        f"{args.id} ({args.scale}): start {anchors.start:.4f}, reference "
        f"{anchors.reference:.4f} (calibrated; {anchors.details})"
    )
    if paper:
        text += (
            f"\npaper anchors (full scale, H100): start {paper.start}, reference {paper.reference}"
        )
    _emit(data, args.json, text)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the performance benchmarks (step overhead against a raw shell round trip)."""
    from rebench_gym.bench import run_benchmarks

    report = run_benchmarks(sandboxes=args.sandbox or None, repeats=args.repeats)
    _emit(report, args.json, report["text"])
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``rebench``."""
    from rebench_gym.envs.registration import ENV_IDS
    from rebench_gym.sandbox import PROVIDERS

    parser = argparse.ArgumentParser(
        prog="rebench",
        description="RE-Bench's seven ML research-engineering tasks as Gymnasium environments.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=fn.__doc__)
        p.set_defaults(func=fn)
        p.add_argument("--json", action="store_true", help="print machine-readable JSON")
        return p

    def add_id(p: argparse.ArgumentParser) -> None:
        p.add_argument("id", help=f"environment id, one of: {', '.join(ENV_IDS)}")

    def add_scale(p: argparse.ArgumentParser, default: str) -> None:
        p.add_argument(
            "--scale",
            choices=("mini", "full"),
            default=default,
            help=f"task scale (default: {default}; mini runs on 2 CPU cores)",
        )

    add("list", cmd_list, "list the environment ids")

    p = add("check", cmd_check, "run Gymnasium's env checker on an id")
    add_id(p)
    add_scale(p, "mini")
    p.add_argument(
        "--sandbox",
        choices=PROVIDERS,
        default=None,
        help="sandbox provider (default: the safest available)",
    )

    p = add("run", cmd_run, "roll out an agent")
    add_id(p)
    p.add_argument("--agent", required=True, help="agent name: reference, noop or random")
    add_scale(p, "full")
    p.add_argument(
        "--sandbox",
        choices=PROVIDERS,
        default=None,
        help="sandbox provider (default: the safest available)",
    )
    p.add_argument("--episodes", type=_positive_int, default=1, help="episodes to run")
    p.add_argument(
        "--max-steps", type=_positive_int, default=None, help="submit after this many steps"
    )
    p.add_argument("--seed", type=int, default=None, help="seed for env and agent")
    p.add_argument(
        "--hidden-score",
        action="store_true",
        help="the hidden_score variant (score calls report validity only)",
    )

    p = add("calibrate", cmd_calibrate, "measure start/reference anchors on this machine")
    add_id(p)
    add_scale(p, "mini")
    p.add_argument(
        "--repeats",
        type=_positive_int,
        default=3,
        help="score runs of each solution (the median is kept)",
    )

    p = add("bench", cmd_bench, "run the performance benchmarks")
    p.add_argument(
        "--sandbox",
        choices=("local", "bwrap"),
        action="append",
        help="sandbox to measure (repeatable; default: all available)",
    )
    p.add_argument("--repeats", type=_positive_int, default=200, help="timed steps per case")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


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


if __name__ == "__main__":
    sys.exit(main())
