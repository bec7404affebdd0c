"""Many episodes over a vector env: one agent per env, each env starting its next episode when
its last one ends, until the wanted number of episodes has run.

Works with any vector env that autoresets on the next step (Gymnasium's default, and
:class:`~rebench_gym.vector.RayVectorEnv`). With a :class:`RayVectorEnv`, each env is stepped on
its own (``send``/``recv``), so an agent never waits for another env's long command.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from rebench_gym.rollout import EpisodeResult

#: what an idle env is stepped with while other envs finish (a batch step needs every env)
IDLE_ACTION = "true"


def env_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """Env ``i``'s own ``info`` out of a vector env's batched info dict."""
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}")
        if mask is not None and not bool(mask[i]):
            continue
        out[key] = env_info(value, i) if isinstance(value, dict) else _plain(value[i])
    return out


def env_obs(obs: dict[str, Any], i: int) -> dict[str, str]:
    """Env ``i``'s observation out of a batched ``Dict`` of texts."""
    return {key: str(value[i]) for key, value in obs.items()}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class _Slot:
    """The episode one env is playing."""

    agent: Any
    episode: int | None = None
    steps: int = 0
    total: float = 0.0
    started: float = 0.0
    starting: bool = False  # the env's next result is the reset that starts an episode
    start_info: dict[str, Any] = field(default_factory=dict)


def vector_rollout(
    envs: gym.vector.VectorEnv[Any, Any, Any],
    make_agent: Callable[[int], Any],
    episodes: list[int] | int,
    *,
    max_steps: int | None = None,
    seed: int | None = None,
    agent_name: str | None = None,
    on_start: Callable[[int, dict[str, Any]], None] | None = None,
    on_end: Callable[[int, EpisodeResult | None, str | None], None] | None = None,
) -> list[EpisodeResult]:
    """Run ``episodes`` (a count, or the episode indices to run) across the envs of ``envs``.

    Args:
        envs: a vector env with next-step autoreset.
        make_agent: builds the agent for env ``i`` (one agent per env).
        episodes: how many episodes, or their indices (as ``RunRecording.pending``).
        max_steps: submit after this many steps of an episode.
        seed: seeds the envs' first reset (``seed + i``) and the agents (``seed + episode``).
        agent_name: the name in the results (default: the agent's ``name``).
        on_start: called with ``(episode, reset_info)`` when an episode starts.
        on_end: called with ``(episode, result, None)`` when it ends, or ``(episode, None,
            error)`` when its env failed (``info["env_failed"]``; the env restarts and the
            episode is not retried).

    Returns:
        The results of the episodes that finished, in the order they finished.
    """
    queue = list(range(episodes)) if isinstance(episodes, int) else list(episodes)
    n = envs.num_envs
    slots = [_Slot(make_agent(i)) for i in range(n)]
    results: list[EpisodeResult] = []
    obs, infos = envs.reset(seed=seed)

    def begin(i: int, info: dict[str, Any]) -> None:
        slot = slots[i]
        slot.episode = queue.pop(0) if queue else None
        slot.steps, slot.total, slot.starting = 0, 0.0, False
        if slot.episode is None:
            return
        slot.agent.reset(seed=None if seed is None else seed + slot.episode)
        slot.started = time.monotonic()
        slot.start_info = info
        if on_start is not None:
            on_start(slot.episode, info)

    def advance(i: int, o: dict[str, str], r: float, term: bool, trunc: bool, info: Any) -> str:
        """Take env ``i``'s result; return its next action."""
        slot = slots[i]
        if slot.starting:
            begin(i, info)
        elif slot.episode is not None:
            slot.total += float(r)
            slot.steps += 1
            if term or trunc:
                _finish(slot, info, term, trunc)
                slot.starting = True  # the next step resets the env
                return IDLE_ACTION
        return act(i, o, info)

    def act(i: int, o: dict[str, str], info: dict[str, Any]) -> str:
        slot = slots[i]
        if slot.episode is None:
            return IDLE_ACTION
        if max_steps is not None and slot.steps >= max_steps:
            return "submit"
        return str(slot.agent.act(o, info))

    def _finish(slot: _Slot, info: dict[str, Any], term: bool, trunc: bool) -> None:
        assert slot.episode is not None
        if info.get("env_failed"):
            if on_end is not None:
                on_end(slot.episode, None, str(info.get("error", "the env failed")))
        else:
            result = _result(envs, slot, info, term, trunc, agent_name)
            results.append(result)
            if on_end is not None:
                on_end(slot.episode, result, None)
        slot.episode = None

    for i in range(n):
        begin(i, env_info(infos, i))
    actions = [act(i, env_obs(obs, i), env_info(infos, i)) for i in range(n)]

    def active() -> bool:  # an episode runs, or one more starts on an env's next step
        return any(s.episode is not None or (s.starting and queue) for s in slots)

    send = getattr(envs, "send", None)
    recv = getattr(envs, "recv", None)
    if send is not None and recv is not None:  # each env on its own
        live = [i for i in range(n) if slots[i].episode is not None]
        send([actions[i] for i in live], live)
        while getattr(envs, "busy", live):
            ids, outs = recv(1)
            again: list[tuple[int, str]] = []
            for i, (o, r, term, trunc, info) in zip(ids.tolist(), outs, strict=True):
                action = advance(i, o, r, term, trunc, info)
                if slots[i].episode is not None or (slots[i].starting and queue):
                    again.append((i, action))
            if again:
                send([a for _, a in again], [i for i, _ in again])
        return results
    while active():
        obs, rewards, terms, truncs, infos = envs.step(actions)
        actions = [
            advance(
                i,
                env_obs(obs, i),
                float(rewards[i]),
                bool(terms[i]),
                bool(truncs[i]),
                env_info(infos, i),
            )
            for i in range(n)
        ]
    return results


def _result(
    envs: Any,
    slot: _Slot,
    info: dict[str, Any],
    terminated: bool,
    truncated: bool,
    agent_name: str | None,
) -> EpisodeResult:
    normalized = info.get("final_normalized", info.get("best_normalized"))
    usage = getattr(slot.agent, "usage", None)
    spec = getattr(envs, "spec", None)
    env_id = str(info.get("task") or getattr(envs, "env_id", None) or getattr(spec, "id", ""))
    return EpisodeResult(
        env_id=env_id,
        agent=str(agent_name or getattr(slot.agent, "name", type(slot.agent).__name__)),
        total_reward=slot.total,
        normalized_score=float(normalized or 0.0),
        raw_score=info.get("final_raw"),
        steps=slot.steps,
        wall_time_s=time.monotonic() - slot.started,
        terminated=terminated,
        truncated=truncated,
        score_log=list(info.get("score_log") or []),
        tokens=dict(usage) if isinstance(usage, dict) else {},
        end_reason=str(info.get("end_reason", "")),
    )
