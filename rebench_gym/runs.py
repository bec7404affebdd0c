"""Recorded runs: an agent played for a number of episodes, every episode kept in the run store.

:func:`run` is what ``rebench run`` does, as a library function taking a :class:`RunOptions`.
It checks everything first (:func:`check_run`: the id, the agent, the task options, the flags
that go together), so a run that cannot start leaves nothing in the store; then it opens (or,
with ``resume``, continues) the run and plays its pending episodes, one at a time in this
process or ``num_envs`` at a time over a vector env (local worker processes, or Ray actors with
``ray``). Both go through one loop, :class:`EpisodeLog`, that announces each episode, records
its row as it starts and its outcome as it ends, and hands each result to ``on_result``.

Example::

    from rebench_gym.runs import RunOptions, run

    results = run(RunOptions("RE-Bench/OptimizeKernel-v0", "noop", scale="mini", episodes=2))
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from rebench_gym.errors import SandboxUnavailableError, UsageError
from rebench_gym.results.recording import RunRecording
from rebench_gym.results.store import EpisodeSpec, RunStore, StoreRecorder, default_db_path
from rebench_gym.rollout import EpisodeResult, rollout

#: ``(episode index, or env index in a vector run) -> agent``
AgentFactory = Callable[[int], Any]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    """Everything a recorded run is made of (the ``rebench run`` flags, typed).

    Attributes:
        env_id: The registered id, e.g. ``RE-Bench/OptimizeKernel-v0``.
        agent: The agent's name (``reference``, ``noop``, ``random``, ``react``, ``aide``), or
            the label of the agent a caller of :func:`run` builds itself (``make_agent``).
        scale: ``"full"`` or ``"mini"``.
        episodes: How many episodes the run has in all.
        sandbox: The sandbox provider (``None``: the default, bwrap).
        hidden_score: The hidden-score variant.
        max_steps: Submit after this many steps of an episode.
        seed: Seed of env and agent.
        time_budget: Wall-clock seconds per episode (:class:`~rebench_gym.wrappers.TimeBudget`).
        token_budget: Tokens per episode (:class:`~rebench_gym.wrappers.TokenBudget`).
        record: A JSONL trajectory file (one env only).
        task_options: The env's ``task_options``; only names the task declares are accepted.
        make_kwargs: More ``gym.make`` arguments (e.g. ``anchors``); recorded with the run.
        num_envs: Episodes at a time; above 1, each env runs in its own worker process.
        ray: Run the envs as Ray actors: a cluster address, ``"auto"`` or ``"local"``.
        ray_node_ip: The address this process registers as a Ray node.
        ray_cpus_per_env: Ray CPUs each env's actor asks for.
        model: ``react``/``aide``: the model name.
        base_url: ``react``/``aide``: an OpenAI-compatible API root.
        llm_log: ``react``/``aide``: a JSONL file of model requests.
        journal: ``aide``: where to save the search journal (``-epN`` added per episode).
        db: The run store (default: :func:`~rebench_gym.results.store.default_db_path`).
        resume: Continue the latest run with the same settings (or ``run_id``).
        run_id: The run's name in the store.
    """

    env_id: str
    agent: str
    scale: str = "full"
    episodes: int = 1
    sandbox: str | None = None
    hidden_score: bool = False
    max_steps: int | None = None
    seed: int | None = None
    time_budget: float | None = None
    token_budget: int | None = None
    record: str | None = None
    task_options: Mapping[str, Any] = field(default_factory=dict)
    make_kwargs: Mapping[str, Any] = field(default_factory=dict)
    num_envs: int = 1
    ray: str | None = None
    ray_node_ip: str | None = None
    ray_cpus_per_env: float | None = None
    model: str | None = None
    base_url: str | None = None
    llm_log: str | None = None
    journal: str | None = None
    db: str | os.PathLike[str] | None = None
    resume: bool = False
    run_id: str | None = None

    @property
    def vector(self) -> bool:
        """Whether the episodes run over a vector env (local workers or Ray actors)."""
        return self.num_envs > 1 or self.ray is not None

    def env_kwargs(self) -> dict[str, Any]:
        """The ``gym.make`` arguments of every episode's env (recorded with the run)."""
        kwargs: dict[str, Any] = {
            "scale": self.scale,
            "sandbox": self.sandbox,
            "hidden_score": self.hidden_score,
        }
        if self.task_options:
            kwargs["task_options"] = dict(self.task_options)
        kwargs.update(self.make_kwargs)
        return kwargs

    def budgets(self) -> dict[str, Any]:
        """The budgets recorded with every episode (``None``: unlimited)."""
        return {
            "time_budget_s": self.time_budget,
            "token_budget": self.token_budget,
            "max_steps": self.max_steps,
        }

    def db_path(self) -> Path:
        """The run store's file."""
        return Path(self.db) if self.db is not None else default_db_path()


# ----- checks before anything is written -------------------------------------------------------
def accepted_task_options(env_id: str) -> frozenset[str]:
    """The ``task_options`` names the task behind ``env_id`` reads (its ``task_options``)."""
    from rebench_gym.envs.registration import task_name
    from rebench_gym.tasks import get_task

    task = get_task(task_name(env_id))
    return frozenset(getattr(task, "task_options", frozenset()))


def check_task_options(env_id: str, options: Mapping[str, Any]) -> None:
    """Refuse ``task_options`` names the task does not read.

    Raises:
        UsageError: a name is unknown (the message lists the accepted ones).
    """
    if not options:
        return
    accepted = accepted_task_options(env_id)
    unknown = sorted(set(options) - accepted)
    if not unknown:
        return
    names = ", ".join(repr(k) for k in unknown)
    takes = f"it takes {', '.join(sorted(accepted))}" if accepted else "it takes none"
    hint = ""
    if any("key" in k and not k.endswith("_env") for k in unknown):
        hint = "; API keys go only in environment variables, named by an option ending in _env"
    raise UsageError(f"{env_id} has no task option {names}; {takes}{hint}")


def check_run(options: RunOptions, *, own_agent: bool = False) -> str | None:
    """Check a run's options before anything is recorded; returns the agent's label, if any.

    The label of ``react``/``aide`` is ``agent:model`` (so runs of different models are
    separate leaderboard rows); other agents have none (their name is used). ``own_agent``:
    the caller builds the agents, so ``options.agent`` is only a label.

    Raises:
        UsageError: an unknown id or agent, a task option the task does not take, an
            incomplete LLM endpoint, flags that do not go together.
    """
    from rebench_gym.agents import AGENTS, LLM_AGENTS
    from rebench_gym.envs.registration import task_name

    task_name(options.env_id)  # a usage error for unknown ids
    if options.episodes < 1 or options.num_envs < 1:
        raise UsageError("episodes and num_envs must be at least 1")
    if options.record is not None and options.num_envs > 1:
        raise UsageError("--record writes one trajectory file: use it with --num-envs 1")
    if options.ray_cpus_per_env is not None and options.ray is None:
        raise UsageError("--ray-cpus-per-env needs --ray ADDRESS")
    if options.ray_node_ip is not None and options.ray is None:
        raise UsageError("--ray-node-ip needs --ray ADDRESS")
    label = None
    if not own_agent:
        if options.agent not in AGENTS:
            raise UsageError(f"unknown agent {options.agent!r}; agents: {', '.join(AGENTS)}")
        if options.agent in LLM_AGENTS:
            from rebench_gym.llm.client import resolve_config

            config = resolve_config(options.model, options.base_url)  # a usage error if not set
            label = f"{options.agent}:{config.model}"
    check_task_options(options.env_id, options.task_options)
    check_sandbox(options.env_id, options.scale, options.sandbox)
    return label


def check_sandbox(env_id: str, scale: str, sandbox: str | None) -> None:
    """Refuse, before anything is recorded, a docker run whose task image is not built.

    Raises:
        SandboxUnavailableError: no Docker engine, or no image (the message names the command
            that builds it).
    """
    if sandbox != "docker":
        return
    from rebench_gym.envs.registration import task_name
    from rebench_gym.sandbox.docker_images import find_image

    if find_image(task_name(env_id), scale) is None:
        raise SandboxUnavailableError(
            f"no Docker image is built for {env_id} at scale {scale!r}: build it with "
            f"`rebench image build {env_id} --scale {scale}` (or every task's: `rebench image "
            f"build --all --scale {scale}`)"
        )


def build_agent(options: RunOptions, index: int) -> Any:
    """The agent ``options.agent`` for episode (or vector env) ``index``."""
    from rebench_gym import agents

    kwargs: dict[str, Any] = {}
    if options.agent in agents.LLM_AGENTS:
        kwargs = {"model": options.model, "base_url": options.base_url}
        if options.llm_log is not None:
            kwargs["llm_log"] = options.llm_log
        if options.agent == "aide" and options.journal is not None:
            path = Path(options.journal)
            if options.episodes > 1:
                path = path.with_name(f"{path.stem}-ep{index + 1}{path.suffix}")
            kwargs["journal_path"] = str(path)
    return agents.make(options.agent, env_id=options.env_id, scale=options.scale, **kwargs)


# ----- the run ---------------------------------------------------------------------------------
def run(
    options: RunOptions,
    *,
    make_agent: AgentFactory | None = None,
    progress: Progress | None = None,
    on_result: Callable[[EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Play and record the run ``options`` describes; returns the results of this call's episodes.

    Args:
        options: The run.
        make_agent: Builds the agent for episode ``i`` (serial) or env ``i`` (vector); default:
            the agent named ``options.agent``.
        progress: Called with one line per event (recording, each episode's start or failure).
        on_result: Called with each episode's result as soon as it is recorded.

    Raises:
        UsageError: see :func:`check_run`; also a store that cannot be used
            (:class:`~rebench_gym.results.store.RunStoreError`) or a run being resumed by another
            process (:class:`~rebench_gym.results.store.RunInUseError`). Nothing is recorded.
        RayClusterError: ``ray``'s cluster cannot be reached or cannot run the envs (checked
            before anything is recorded).
    """
    label = check_run(options, own_agent=make_agent is not None)
    factory = make_agent or functools.partial(build_agent, options)
    from rebench_gym.vector.runner import ray_session

    # Ray first: a cluster that cannot run the envs records nothing.
    with (
        ray_session(options.ray, node_ip=options.ray_node_ip, sandbox=options.sandbox),
        open_recording(options, label, progress) as recording,
    ):
        log = EpisodeLog(recording, options, progress=progress, on_result=on_result)
        if options.vector:
            return _play_vector(options, log, factory, label)
        return _play_serial(options, log, factory, label)


def open_recording(
    options: RunOptions, label: str | None = None, progress: Progress | None = None
) -> RunRecording:
    """Start (or, with ``options.resume``, continue) recording the run in the run store."""
    spec = EpisodeSpec.for_env(
        options.env_id,
        label or options.agent,
        make_kwargs=options.env_kwargs(),
        budgets=options.budgets(),
        seed=options.seed,
    )
    db = options.db_path()
    recording = RunRecording.start(
        db, spec, options.episodes, resume=options.resume, run_id=options.run_id
    )
    if progress is not None:
        done = options.episodes - len(recording.pending)
        note = (
            f"; resuming, {done} of {options.episodes} episode(s) already done"
            if options.resume
            else ""
        )
        progress(f"recording to {db} (run {recording.run_id}{note})")
    return recording


class EpisodeLog:
    """The one way a run's episodes are announced, recorded and reported, serial or vector.

    :meth:`begin` inserts the episode's ``running`` row and announces it; :meth:`anchors`
    records the anchors its env resolved; :meth:`end` records the outcome (``finished``, or
    ``failed`` with the error) and hands a result to ``on_result``; :meth:`abort` marks every
    episode still open ``failed`` (an exception or an interrupt ended the run).
    """

    def __init__(
        self,
        recording: RunRecording,
        options: RunOptions,
        *,
        progress: Progress | None = None,
        on_result: Callable[[EpisodeResult], None] | None = None,
    ) -> None:
        self.recording = recording
        self.store: RunStore = recording.store
        self.options = options
        self.progress = progress or (lambda _line: None)
        self.on_result = on_result
        self.results: list[EpisodeResult] = []
        self._open: dict[int, int] = {}  # episode index -> episode id

    def begin(self, episode: int) -> int:
        """Record episode ``episode`` as running and announce it; returns its episode id."""
        o = self.options
        eid = self.store.begin_episode(self.recording.run_id, episode, self.recording.spec)
        self._open[episode] = eid
        where = f", {o.num_envs} envs" if o.vector else ""
        self.progress(
            f"episode {episode + 1}/{o.episodes}: {o.agent} on {o.env_id} ({o.scale}){where}"
        )
        return eid

    def anchors(self, episode: int, info: Mapping[str, Any]) -> None:
        """Record the anchors of the env's reset ``info``."""
        anchors = info.get("anchors")
        self.store.set_anchors(self._open[episode], anchors if isinstance(anchors, dict) else None)

    def end(self, episode: int, result: EpisodeResult | None, error: str | None = None) -> None:
        """Record how episode ``episode`` ended: its result, or (``result`` None) its error."""
        eid = self._open.pop(episode)
        if result is None:
            self.store.fail_episode(eid, error or "the env failed")
            self.progress(f"episode {episode + 1} failed: {error}")
            return
        try:
            self.store.finish_episode(eid, result, trajectory_path=self.options.record)
        except BaseException as e:
            self.store.fail_episode(eid, f"{type(e).__name__}: {e}")
            raise
        self.results.append(result)
        if self.on_result is not None:
            self.on_result(result)

    def abort(self, error: BaseException) -> None:
        """Mark every open episode ``failed`` with ``error``."""
        for eid in self._open.values():
            self.store.fail_episode(eid, f"{type(error).__name__}: {error}")
        self._open.clear()


def _play_serial(
    options: RunOptions, log: EpisodeLog, make: AgentFactory, label: str | None
) -> list[EpisodeResult]:
    """The pending episodes one after another, each in its own env in this process."""
    for episode in log.recording.pending:
        env = gym.make(options.env_id, **options.env_kwargs())
        try:
            env = wrap_budgets(env, options)
            agent = make(episode)
            env = StoreRecorder(env, log.store, log.begin(episode))  # anchors, live score rows
            result = rollout(
                env, agent, max_steps=options.max_steps, seed=options.seed, agent_name=label
            )
        except BaseException as e:
            log.abort(e)
            raise
        finally:
            env.close()
        log.end(episode, result)
    return log.results


def _play_vector(
    options: RunOptions, log: EpisodeLog, make: AgentFactory, label: str | None
) -> list[EpisodeResult]:
    """The pending episodes ``num_envs`` at a time over a vector env."""
    from rebench_gym.vector.rollout import vector_rollout
    from rebench_gym.vector.runner import budget_wrappers, make_vector_env

    pending = list(log.recording.pending)
    if not pending:
        return []
    actor_options = None
    if options.ray_cpus_per_env is not None:
        actor_options = {"num_cpus": options.ray_cpus_per_env}
    make_kwargs = options.env_kwargs()
    if options.ray in (None, "local"):  # workers on this machine keep solutions beside the store
        from rebench_gym.results.solutions import keeper_for_store

        make_kwargs["keep_solutions"] = str(keeper_for_store(log.store.path).root)
    envs = make_vector_env(
        options.env_id,
        min(options.num_envs, len(pending)),
        ray_address=options.ray,
        make_kwargs=make_kwargs,
        wrappers=budget_wrappers(options.time_budget, options.token_budget),
        actor_options=actor_options,
        ray_node_ip=options.ray_node_ip,
    )

    def on_start(episode: int, info: dict[str, Any]) -> None:
        log.begin(episode)
        log.anchors(episode, info)

    try:
        vector_rollout(
            envs,
            make,
            pending,
            max_steps=options.max_steps,
            seed=options.seed,
            agent_name=label,
            on_start=on_start,
            on_end=log.end,
        )
    except BaseException as e:
        log.abort(e)
        raise
    finally:
        envs.close()
    return log.results


# ----- envs ------------------------------------------------------------------------------------
def wrap_budgets(env: gym.Env[Any, Any], options: RunOptions) -> gym.Env[Any, Any]:
    """``env`` in the budgets and the trajectory recorder ``options`` ask for."""
    from rebench_gym.wrappers import RecordTrajectory, TimeBudget, TokenBudget

    if options.time_budget is not None:
        env = TimeBudget(env, options.time_budget)
    if options.token_budget is not None:
        env = TokenBudget(env, max_tokens=options.token_budget)
    if options.record is not None:
        env = RecordTrajectory(env, options.record)  # outermost: records budget state too
    return env


def stderr_progress(line: str) -> None:
    """A ``progress`` for :func:`run` that prints ``[rebench] LINE`` to stderr."""
    print(f"[rebench] {line}", file=sys.stderr, flush=True)


__all__ = [
    "EpisodeLog",
    "RunOptions",
    "accepted_task_options",
    "build_agent",
    "check_run",
    "check_task_options",
    "open_recording",
    "run",
    "stderr_progress",
    "wrap_budgets",
]
