"""The vector env of a recorded run (``rebench run ... --num-envs N [--ray ADDRESS]``).

:func:`rebench_gym.runs.run` plays the run's episodes ``N`` at a time over the env
:func:`make_vector_env` builds (local spawn-context worker processes, or Ray actors), each env
wrapped in the budgets of :func:`budget_wrappers` where it runs; :func:`ray_session` joins the
Ray cluster for the run. The loop that announces and records the episodes is
:class:`rebench_gym.runs.EpisodeLog`, the same for serial and vector runs.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any


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
    """A :class:`~rebench_gym.vector.RayVectorEnv` or a local spawn-context async vector env.

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


@contextlib.contextmanager
def ray_session(
    address: str | None, *, node_ip: str | None = None, sandbox: str | None = None
) -> Iterator[None]:
    """Join the Ray cluster at ``address`` (and check its nodes) for the ``with`` block.

    :func:`rebench_gym.runs.run` enters this before it records anything, so a cluster that
    cannot be reached or cannot run rebench_gym is an error that leaves no run behind. On exit
    this process leaves the session it joined (an existing cluster keeps running; a local
    session started here stops). With ``address`` None it does nothing.

    Raises:
        RayClusterError: the cluster cannot be reached or a node cannot run the envs.
    """
    if address is None:
        yield
        return
    from rebench_gym.vector.ray_cluster import connect, ray_module

    joined = connect(
        None if address == "local" else address, node_ip_address=node_ip, sandbox=sandbox
    )
    try:
        yield
    finally:
        if joined:
            ray_module().shutdown()
