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
    llm_label = _check_llm_agent(args)
    _remove_dead_drivers_leftovers()
    from rebench_gym.vector.runner import check_vector_args, ray_session, run_vector

    check_vector_args(args)  # the vector and Ray flags' usage errors, also with one env
    if args.num_envs > 1 or args.ray is not None:  # a vector env: local workers or Ray actors
        # --ray: join and check the cluster first, so an unusable one records nothing
        with ray_session(args), _open_recording(args) as recording:
            run_vector(
                args,
                recording,
                lambda i: agents.make(
                    args.agent, env_id=args.id, scale=args.scale, **_llm_agent_kwargs(args, i)
                ),
                make_kwargs=_task_options_kwargs(args),
            )
        return 0
    recording = _open_recording(args)
    results = []
    for episode in recording.pending:
        env = gym.make(
            args.id,
            scale=args.scale,
            sandbox=args.sandbox,
            hidden_score=args.hidden_score,
            **_task_options_kwargs(args),
        )
        try:
            env = _wrap_budgets(env, args)
            agent = agents.make(
                args.agent, env_id=args.id, scale=args.scale, **_llm_agent_kwargs(args, episode)
            )
            print(
                f"[rebench] episode {episode + 1}/{args.episodes}: {args.agent} on {args.id} "
                f"({args.scale})",
                file=sys.stderr,
                flush=True,
            )
            env = recording.wrap(env, episode)
            result = rollout(
                env, agent, max_steps=args.max_steps, seed=args.seed, agent_name=llm_label
            )
        except BaseException as e:
            recording.fail(e)
            raise
        finally:
            env.close()
        recording.finish(result, trajectory_path=_trajectory_path(args, episode))
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
    recording.close()
    return 0


def _open_recording(args: argparse.Namespace) -> Any:
    """Start (or, with ``--resume``, continue) recording this ``rebench run`` in the run store."""
    from rebench_gym.results.recording import RunRecording
    from rebench_gym.results.store import EpisodeSpec, default_db_path

    make_kwargs = {
        "scale": args.scale,
        "sandbox": args.sandbox,
        "hidden_score": args.hidden_score,
        **_task_options_kwargs(args),
    }
    budgets = {
        "time_budget_s": getattr(args, "time_budget", None),
        "token_budget": getattr(args, "token_budget", None),
        "max_steps": args.max_steps,
    }
    agent = getattr(args, "agent_label", None) or args.agent
    spec = EpisodeSpec.for_env(
        args.id, agent, make_kwargs=make_kwargs, budgets=budgets, seed=args.seed
    )
    db = args.db or default_db_path()
    recording = RunRecording.start(db, spec, args.episodes, resume=args.resume, run_id=args.run_id)
    done = args.episodes - len(recording.pending)
    note = f"; resuming, {done} of {args.episodes} episode(s) already done" if args.resume else ""
    print(f"[rebench] recording to {db} (run {recording.run_id}{note})", file=sys.stderr)
    return recording


def _trajectory_path(args: argparse.Namespace, episode: int) -> str | None:
    record = getattr(args, "record", None)
    return None if record is None else str(record)


def _wrap_budgets(env: Any, args: argparse.Namespace) -> Any:
    """Wrap ``env`` in the budgets and the trajectory recorder that the flags ask for."""
    from rebench_gym.wrappers import RecordTrajectory, TimeBudget, TokenBudget

    if getattr(args, "time_budget", None) is not None:
        env = TimeBudget(env, args.time_budget)
    if getattr(args, "token_budget", None) is not None:
        env = TokenBudget(env, max_tokens=args.token_budget)
    if getattr(args, "record", None) is not None:
        env = RecordTrajectory(env, args.record)  # outermost: records budget state too
    return env


def _task_options_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``{"task_options": {...}}`` from repeated ``--task-option KEY=VALUE`` flags (or nothing)."""
    options = getattr(args, "task_option", None) or []
    return {"task_options": dict(options)} if options else {}


def _task_option(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE``; VALUE is read as JSON when it parses (numbers, true), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


def _check_llm_agent(args: argparse.Namespace) -> str | None:
    """For ``react``/``aide``: check the endpoint settings; return the label ``agent:model``.

    The label names the model, so runs of different models are separate leaderboard rows.
    """
    from rebench_gym.agents import LLM_AGENTS

    if args.agent not in LLM_AGENTS:
        return None
    from rebench_gym.llm.client import resolve_config

    config = resolve_config(args.model, args.base_url)  # a usage error if incomplete
    args.agent_label = f"{args.agent}:{config.model}"
    return str(args.agent_label)


def _llm_agent_kwargs(args: argparse.Namespace, episode: int) -> dict[str, Any]:
    """The ``agents.make`` arguments of the LLM agents from the ``--model``... flags."""
    from rebench_gym.agents import LLM_AGENTS

    if args.agent not in LLM_AGENTS:
        return {}
    kwargs: dict[str, Any] = {"model": args.model, "base_url": args.base_url}
    if args.llm_log is not None:
        kwargs["llm_log"] = args.llm_log
    if args.agent == "aide" and args.journal is not None:
        from pathlib import Path

        path = Path(args.journal)
        if args.episodes > 1:
            path = path.with_name(f"{path.stem}-ep{episode + 1}{path.suffix}")
        kwargs["journal_path"] = str(path)
    return kwargs


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Compute the leaderboard of the run store as Markdown, JSON or a self-contained HTML page.

    Per agent and task: runs, mean normalized score with a bootstrap interval, score@k at
    per-run time limits, score over time; and the average over tasks.
    """
    from pathlib import Path

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
    with RunStore(db) as store:
        episodes = store.episodes()
    board = build_leaderboard(
        episodes,
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
        print(f"[rebench] wrote the {fmt} leaderboard to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Measure the start and reference anchors on this machine and cache them."""
    from rebench_gym.calibration import calibrate
    from rebench_gym.envs.registration import task_name
    from rebench_gym.tasks import get_task

    task = get_task(task_name(args.id))
    task.check_hardware(args.scale)
    paper = task.paper_anchors("full")

    options = _task_options_kwargs(args).get("task_options")
    anchors = calibrate(task, args.scale, repeats=args.repeats, progress=True, options=options)
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

    report = run_benchmarks(
        sandboxes=args.sandbox or None, repeats=args.repeats, extended=not args.quick
    )
    _emit(report, args.json, report["text"])
    return 0


def cmd_assets(args: argparse.Namespace) -> int:
    """Build a task's hidden assets (models, data) into the cache, with progress shown.

    Mini scale generates everything locally. Full scale reads the original assets from
    ``--source DIR`` (for FixEmbedding: ``gpt2-xl/`` and ``gpt2/`` Hugging Face checkpoints and
    ``openwebtext/train.bin``, ``val.bin`` in nanoGPT's format).
    """
    import inspect
    from pathlib import Path

    from rebench_gym.cache import cache_root
    from rebench_gym.envs.registration import task_name
    from rebench_gym.tasks import get_task

    task = get_task(task_name(args.id))
    cache = cache_root()

    def say(message: str) -> None:
        print(f"[rebench] {message}", file=sys.stderr, flush=True)

    kwargs: dict[str, Any] = {"progress": say}
    if args.source is not None:
        if "source" not in inspect.signature(task.prepare_assets).parameters:
            raise UsageError(f"{args.id} takes no --source: its assets are generated locally")
        kwargs["source"] = Path(args.source)
    task.prepare_assets(args.scale, cache, **kwargs)
    _emit(
        {"id": args.id, "scale": args.scale, "cache": str(cache)},
        args.json,
        f"{args.id} ({args.scale}): assets ready in {cache}",
    )
    return 0


def cmd_image_build(args: argparse.Namespace) -> int:
    """Build a task's Docker image for the docker sandbox (skipped when it is up to date)."""
    from pathlib import Path

    from rebench_gym.sandbox.docker_images import build_image

    def log(line: str) -> None:
        if not args.json:
            print(line, file=sys.stderr)

    tag = build_image(
        args.id,
        args.scale,
        base_image=args.base_image,
        wheels=Path(args.wheels) if args.wheels else None,
        force=args.force,
        log=log,
    )
    _emit({"image": tag}, args.json, tag)
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


def cmd_sandbox_cleanup(args: argparse.Namespace) -> int:
    """Remove what dead rebench_gym drivers left behind: containers (when Docker answers),
    workspaces and score copies under the temp dir, shared-memory directories in /dev/shm.
    A running driver's are kept (containers too, unless --all)."""
    from rebench_gym.sandbox.leftovers import remove_leftovers

    containers: list[str] = []
    try:
        from rebench_gym.sandbox.docker_provider import cleanup_containers

        containers = cleanup_containers(all_sessions=args.all)
    except Exception as e:  # no docker SDK or no engine: the host's leftovers still go
        print(f"[cleanup] containers skipped: {e}", file=sys.stderr)
    dirs = [str(p) for p in remove_leftovers()]
    _emit(
        {"removed": containers, "directories": dirs},
        args.json,
        f"removed {len(containers)} container(s) and {len(dirs)} director(y/ies)",
    )
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

    def add_task_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--task-option",
            type=_task_option,
            action="append",
            metavar="KEY=VALUE",
            help="a task setting passed as gym.make(task_options=...), repeatable; e.g. the LLM "
            "endpoint of RustCodecontests: --task-option base_url=URL --task-option model=NAME "
            "(API keys only through environment variables)",
        )

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
        help="sandbox provider (default: bwrap; local only when named)",
    )

    p = add("run", cmd_run, "roll out an agent")
    add_id(p)
    p.add_argument(
        "--agent",
        required=True,
        help="agent name: reference, noop, random, react or aide (react and aide call a model)",
    )
    add_scale(p, "full")
    p.add_argument(
        "--sandbox",
        choices=PROVIDERS,
        default=None,
        help="sandbox provider (default: bwrap; local only when named)",
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
    p.add_argument(
        "--time-budget",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="end each episode (truncated, final state scored) after this much wall-clock time, "
        "agent thinking included",
    )
    p.add_argument(
        "--token-budget",
        type=_positive_int,
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
        type=_positive_int,
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
        type=_positive_float,
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
    _add_db(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the latest run with the same settings (or --run-id) in the store: "
        "episodes already finished are skipped, interrupted ones run again",
    )
    p.add_argument("--run-id", default=None, help="name of the run in the store (default: new)")

    p = add("leaderboard", cmd_leaderboard, "leaderboards of the runs in the store")
    _add_db(p)
    p.add_argument(
        "--format",
        choices=("md", "json", "html"),
        default="md",
        help="Markdown, JSON, or one self-contained HTML page with plots (default: md)",
    )
    p.add_argument("--out", default=None, help="write to this file instead of stdout")
    p.add_argument(
        "--time-limit",
        type=_time_limit,
        action="append",
        help="per-run time limit in seconds for score@k, or 'whole' (repeatable; default: "
        "the time budgets the runs ran under)",
    )
    p.add_argument("--k", type=_positive_int, action="append", help="k of score@k (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    p.add_argument(
        "--resamples", type=_positive_int, default=2000, help="bootstrap resamples (default: 2000)"
    )

    p = add("calibrate", cmd_calibrate, "measure start/reference anchors on this machine")
    add_id(p)
    add_scale(p, "mini")
    add_task_option(p)
    p.add_argument(
        "--repeats",
        type=_positive_int,
        default=5,
        help="score runs of each solution (the median is kept)",
    )

    p = add("bench", cmd_bench, "run the performance benchmarks")
    p.add_argument(
        "--sandbox",
        choices=("local", "bwrap", "docker"),
        action="append",
        help="sandbox to measure (repeatable; default: all available)",
    )
    p.add_argument("--repeats", type=_positive_int, default=200, help="timed steps per case")
    p.add_argument(
        "--quick",
        action="store_true",
        help="only step overhead and reset (skip vector, memory and score-call benchmarks)",
    )

    image = sub.add_parser("image", help="Docker images of the tasks").add_subparsers(
        dest="image_command", required=True, metavar="IMAGE_COMMAND"
    )
    p = image.add_parser("build", help="build a task's image", description=cmd_image_build.__doc__)
    p.set_defaults(func=cmd_image_build)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_id(p)
    add_scale(p, "mini")
    p.add_argument("--base-image", default=None, help="the FROM image (must be present locally)")
    p.add_argument("--wheels", default=None, help="a directory of wheels to install offline")
    p.add_argument("--force", action="store_true", help="rebuild even if up to date")

    assets = sub.add_parser("assets", help="task assets (models, data)").add_subparsers(
        dest="assets_command", required=True, metavar="ASSETS_COMMAND"
    )
    p = assets.add_parser(
        "prepare", help="build a task's assets into the cache", description=cmd_assets.__doc__
    )
    p.set_defaults(func=cmd_assets)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_id(p)
    add_scale(p, "mini")
    p.add_argument(
        "--source",
        default=None,
        help="full scale: a directory with the original assets (see the task's documentation)",
    )

    sandbox = sub.add_parser("sandbox", help="sandbox maintenance").add_subparsers(
        dest="sandbox_command", required=True, metavar="SANDBOX_COMMAND"
    )
    p = sandbox.add_parser(
        "cleanup",
        help="remove dead runs' leftovers (containers, workspaces, shared memory)",
        description=cmd_sandbox_cleanup.__doc__,
    )
    p.set_defaults(func=cmd_sandbox_cleanup)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument(
        "--all", action="store_true", help="also remove the containers of running rollouts"
    )
    return parser


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        default=None,
        help="the SQLite run store (default: $REBENCH_DB, else "
        "$XDG_DATA_HOME/rebench_gym/runs.db, i.e. ~/.local/share/rebench_gym/runs.db)",
    )


def _time_limit(text: str) -> float | None:
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


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


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
