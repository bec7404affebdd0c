"""``rebench run ID --agent NAME``: a recorded run (a shell over :func:`rebench_gym.runs.run`)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from rebench_gym.rollout import EpisodeResult
    from rebench_gym.runs import RunOptions


def options_from(args: argparse.Namespace) -> RunOptions:
    """The :class:`~rebench_gym.runs.RunOptions` of the ``rebench run`` flags."""
    from rebench_gym.runs import RunOptions

    return RunOptions(
        env_id=args.id,
        agent=args.agent,
        scale=args.scale,
        episodes=args.episodes,
        sandbox=args.sandbox,
        hidden_score=args.hidden_score,
        max_steps=args.max_steps,
        seed=args.seed,
        time_budget=args.time_budget,
        token_budget=args.token_budget,
        record=args.record,
        task_options=task_options(args),
        num_envs=args.num_envs,
        ray=args.ray,
        ray_node_ip=args.ray_node_ip,
        ray_cpus_per_env=args.ray_cpus_per_env,
        model=args.model,
        base_url=args.base_url,
        llm_log=args.llm_log,
        journal=args.journal,
        db=args.db,
        resume=args.resume,
        run_id=args.run_id,
    )


def result_line(result: EpisodeResult) -> str:
    """One episode's result as ``rebench run`` prints it."""
    raw = "n/a" if result.raw_score is None else f"{result.raw_score:.4f}"
    return (
        f"{result.env_id} agent={result.agent} normalized_score={result.normalized_score:.3f} "
        f"raw_score={raw} steps={result.steps} wall_time={result.wall_time_s:.1f}s"
    )


def command(args: argparse.Namespace) -> int:
    """Roll out an agent for a number of episodes, record each in the run store, print each
    result (one line per episode, or one JSON list with --json)."""
    from rebench_gym.runs import check_run, run

    options = options_from(args)
    check_run(options)  # every usage error before anything is written
    _remove_dead_drivers_leftovers()

    def on_result(result: EpisodeResult) -> None:
        if not args.json:
            print(result_line(result), flush=True)

    results = run(options, progress=say, on_result=on_result)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2, default=str))
    return 0


def _remove_dead_drivers_leftovers() -> None:
    """Remove the scratch directories of drivers that died before this process started."""
    from rebench_gym.sandbox.leftovers import remove_leftovers_at_start

    removed = remove_leftovers_at_start()
    if removed:
        print(
            f"[rebench] removed {len(removed)} leftover director(y/ies) of dead runs",
            file=sys.stderr,
        )


def register(sub: Subparsers) -> None:
    p = add_command(sub, "run", command, "roll out an agent")
    add_id(p)
    p.add_argument(
        "--agent",
        required=True,
        help="agent name: reference, noop, random, react or aide (react and aide call a model)",
    )
    add_scale(p, "full")
    add_sandbox(p)
    p.add_argument("--episodes", type=positive_int, default=1, help="episodes to run")
    p.add_argument(
        "--max-steps", type=positive_int, default=None, help="submit after this many steps"
    )
    p.add_argument("--seed", type=int, default=None, help="seed for env and agent")
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
        help="end each episode (truncated, final state scored) after this much wall-clock time, "
        "agent thinking included",
    )
    p.add_argument(
        "--token-budget",
        type=positive_int,
        default=None,
        metavar="N",
        help="end each episode after the agent spent N tokens (reported by LLM agents, else "
        "estimated at ~4 characters per token of actions and observations)",
    )
    p.add_argument(
        "--record",
        default=None,
        metavar="PATH",
        help="append each step to this JSONL trajectory file (crash-safe)",
    )
    add_task_option(p)
    p.add_argument(
        "--num-envs",
        type=positive_int,
        default=1,
        metavar="N",
        help="run N episodes at a time, each env in its own worker process (or Ray actor)",
    )
    p.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run the envs as Ray actors on this cluster: the head node's HOST:PORT (`ray start "
        "--head --port PORT`), 'auto' (the one `ray start` runs here) or 'local' (a new session "
        "on 127.0.0.1); placed by the task's GPUs and CPUs. An unreachable cluster, or a node "
        "without rebench_gym, is a usage error (exit 2) and records nothing",
    )
    p.add_argument(
        "--ray-node-ip",
        default=None,
        metavar="IP",
        help="the address this machine registers as a Ray node (default: 127.0.0.1 for 'local' "
        "or a head on loopback, else Ray's choice); on a multi-node cluster, this machine's "
        "address on the cluster network",
    )
    p.add_argument(
        "--ray-cpus-per-env",
        type=positive_float,
        default=None,
        metavar="CPUS",
        help="Ray CPUs each env's actor asks for (default: the task's CPUs at its scale)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="react/aide: the model name (default: $REBENCH_MODEL, then $OPENAI_MODEL); the API "
        "key comes only from $REBENCH_API_KEY or $OPENAI_API_KEY",
    )
    p.add_argument(
        "--base-url",
        default=None,
        metavar="URL",
        help="react/aide: an OpenAI-compatible API root ending in /v1 (default: "
        "$REBENCH_BASE_URL, then $OPENAI_BASE_URL, then OpenAI's API)",
    )
    p.add_argument(
        "--llm-log",
        default=None,
        metavar="PATH",
        help="react/aide: append one JSON line per model request to this file",
    )
    p.add_argument(
        "--journal",
        default=None,
        metavar="PATH",
        help="aide: save the search journal (JSON) here (-epN added with several episodes)",
    )
    add_db(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the latest run with the same settings (or --run-id) in the store: "
        "episodes already finished are skipped, interrupted ones run again; a run another "
        "live process is running or resuming is refused (exit 2)",
    )
    p.add_argument("--run-id", default=None, help="name of the run in the store (default: new)")
