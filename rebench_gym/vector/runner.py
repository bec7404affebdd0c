"""``rebench run ... --num-envs N [--ray ADDRESS]``: a recorded run over a vector env.

Episodes run ``N`` at a time, each env starting the next pending episode when its last one ends;
every episode is recorded in the run store as it starts and ends (an env failure marks its
episode ``failed``, so ``--resume`` runs it again).
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

from rebench_gym.errors import UsageError
from rebench_gym.rollout import EpisodeResult


def budget_wrappers(
    time_budget: float | None, token_budget: int | None
) -> list[Callable[[Any], Any]]:
    """Picklable wrapper constructors for the budgets (applied to each env where it runs)."""
    from rebench_gym.wrappers import TimeBudget, TokenBudget

    out: list[Callable[[Any], Any]] = []
    if time_budget is not None:
        out.append(functools.partial(TimeBudget, seconds=time_budget))
    if token_budget is not None:
        out.append(functools.partial(TokenBudget, max_tokens=token_budget))
    return out


@contextlib.contextmanager
def ray_session(args: Any) -> Iterator[None]:
    """Join the Ray cluster of ``--ray`` (and check its nodes) for the ``with`` block.

    ``rebench run`` enters this before it records anything, so a cluster that cannot be reached
    or cannot run rebench_gym is a usage error that leaves no run behind. On exit this process
    leaves the session it joined (an existing cluster keeps running; a local session started
    here stops). Without ``--ray`` it does nothing.

    Raises:
        RayClusterError: the cluster cannot be reached or a node cannot run the envs.
    """
    if getattr(args, "ray", None) is None:
        yield
        return
    from rebench_gym.vector.ray_cluster import connect, ray_module

    joined = connect(
        None if args.ray == "local" else args.ray,
        node_ip_address=getattr(args, "ray_node_ip", None),
        sandbox=getattr(args, "sandbox", None),
    )
    try:
        yield
    finally:
        if joined:
            ray_module().shutdown()


def make_vector_env(
    env_id: str,
    num_envs: int,
    *,
    ray_address: str | None,
    make_kwargs: dict[str, Any],
    wrappers: list[Callable[[Any], Any]],
    actor_options: dict[str, Any] | None = None,
    ray_node_ip: str | None = None,
) -> Any:
    """A :class:`RayVectorEnv` or a local spawn-context async vector env.

    ``ray_address``: ``None`` for local worker processes; ``"local"`` for a Ray session on this
    machine (the running one, or a new one on ``127.0.0.1``); else the address of the cluster to
    join (see :func:`~rebench_gym.vector.ray_cluster.connect`). ``ray_node_ip``: the address
    this process registers as a Ray node.
    """
    if ray_address is not None:
        from rebench_gym.vector.ray_env import RayVectorEnv

        return RayVectorEnv(
            env_id,
            num_envs,
            address=None if ray_address == "local" else ray_address,
            node_ip_address=ray_node_ip,
            actor_options=actor_options,
            wrappers=wrappers,
            **make_kwargs,
        )
    from rebench_gym.vector.local import make_vec

    return make_vec(env_id, num_envs, "async", wrappers=wrappers, **make_kwargs)


def check_vector_args(args: Any) -> None:
    """Usage errors of the vector flags, before anything is recorded."""
    if getattr(args, "record", None) is not None and args.num_envs > 1:
        raise UsageError("--record writes one trajectory file: use it with --num-envs 1")
    if getattr(args, "ray_cpus_per_env", None) is not None and args.ray is None:
        raise UsageError("--ray-cpus-per-env needs --ray ADDRESS")
    if getattr(args, "ray_node_ip", None) is not None and args.ray is None:
        raise UsageError("--ray-node-ip needs --ray ADDRESS")


def run_vector(
    args: Any,
    recording: Any,
    make_agent: Callable[[int], Any],
    *,
    make_kwargs: dict[str, Any] | None = None,
) -> list[EpisodeResult]:
    """Run the pending episodes of ``recording`` over ``args.num_envs`` envs; print each result.

    ``args`` holds the ``rebench run`` flags; ``make_agent(i)`` builds env ``i``'s agent;
    ``make_kwargs`` adds ``gym.make`` arguments to those the flags give.
    """
    from rebench_gym.vector.rollout import vector_rollout

    check_vector_args(args)
    pending = list(recording.pending)
    if not pending:
        return []
    kwargs = {"scale": args.scale, "sandbox": args.sandbox, "hidden_score": args.hidden_score}
    kwargs.update(make_kwargs or {})
    options = None
    if getattr(args, "ray_cpus_per_env", None) is not None:
        options = {"num_cpus": args.ray_cpus_per_env}
    envs = make_vector_env(
        args.id,
        min(args.num_envs, len(pending)),
        ray_address=args.ray,
        make_kwargs=kwargs,
        wrappers=budget_wrappers(
            getattr(args, "time_budget", None), getattr(args, "token_budget", None)
        ),
        actor_options=options,
        ray_node_ip=getattr(args, "ray_node_ip", None),
    )
    episode_ids: dict[int, int] = {}

    def on_start(episode: int, info: dict[str, Any]) -> None:
        episode_ids[episode] = recording.store.begin_episode(
            recording.run_id, episode, recording.spec
        )
        anchors = info.get("anchors")
        recording.store.set_anchors(
            episode_ids[episode], anchors if isinstance(anchors, dict) else None
        )
        print(
            f"[rebench] episode {episode + 1}/{args.episodes}: {args.agent} on {args.id} "
            f"({args.scale}), {args.num_envs} envs",
            file=sys.stderr,
            flush=True,
        )

    def on_end(episode: int, result: EpisodeResult | None, error: str | None) -> None:
        eid = episode_ids.pop(episode)
        if result is None:
            recording.store.fail_episode(eid, error or "the env failed")
            print(f"[rebench] episode {episode + 1} failed: {error}", file=sys.stderr)
            return
        recording.store.finish_episode(eid, result)
        if not args.json:
            raw = "n/a" if result.raw_score is None else f"{result.raw_score:.4f}"
            print(
                f"{result.env_id} agent={result.agent} normalized_score="
                f"{result.normalized_score:.3f} raw_score={raw} steps={result.steps} "
                f"wall_time={result.wall_time_s:.1f}s",
                flush=True,
            )

    try:
        results = vector_rollout(
            envs,
            make_agent,
            pending,
            max_steps=args.max_steps,
            seed=args.seed,
            agent_name=getattr(args, "agent_label", None),
            on_start=on_start,
            on_end=on_end,
        )
    except BaseException as e:
        for eid in episode_ids.values():
            recording.store.fail_episode(eid, f"{type(e).__name__}: {e}")
        raise
    finally:
        envs.close()
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2, default=str))
    return results
