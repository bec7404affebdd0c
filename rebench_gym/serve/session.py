"""One ``rebench serve`` session: an OpenEnv ``Environment`` over one :class:`ReBenchEnv`.

Each WebSocket session of the OpenEnv server gets its own :class:`ReBenchOpenEnv`, which owns
one Gymnasium env (its own sandbox and workspace) driven through
:class:`~rebench_gym.aio.AsyncReBenchEnv`, so a session's 10-minute command never blocks the
server's event loop or another session. The env is the one ``rebench run`` plays: built with
``gym.make``, wrapped in the run's budgets (:func:`~rebench_gym.runs.wrap_budgets`) and in
:class:`~rebench_gym.results.store.StoreRecorder`, and recorded by :class:`ServedEpisodes` in the
server's run: every reset begins an episode row, the episode's end (``submit``, a budget)
finishes it, and a reset or a disconnect before the end marks it ``failed`` with the reason.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, SupportsFloat

import gymnasium as gym
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import EnvironmentMetadata

from rebench_gym.aio import AsyncReBenchEnv
from rebench_gym.results.recording import RunRecording
from rebench_gym.results.store import EpisodeSpec, RunStore, StoreRecorder
from rebench_gym.rollout import EpisodeResult
from rebench_gym.runs import RunOptions, open_recording, wrap_budgets
from rebench_gym.serve.models import ReBenchAction, ReBenchObservation, ReBenchState


@dataclass
class ServedRun:
    """The server's run in the run store, and what each session's env is made of.

    Attributes:
        options: The env id, scale, sandbox, budgets, agent label and store of the run.
        recording: The run, opened when the server starts (claimed by this process).
    """

    options: RunOptions
    recording: RunRecording
    _indices: itertools.count[int] = field(default_factory=itertools.count)
    _closed: bool = False

    @classmethod
    def open(cls, options: RunOptions, progress: Any = None) -> ServedRun:
        """Start the run in the store (prints where with ``progress``)."""
        return cls(options, open_recording(options, options.agent, progress))

    @property
    def run_id(self) -> str:
        return self.recording.run_id

    @property
    def spec(self) -> EpisodeSpec:
        return self.recording.spec

    def next_index(self) -> int:
        """The next episode index of the run (episodes are numbered as sessions reset)."""
        return next(self._indices)

    def build_env(self) -> ServedEpisodes:
        """A session's env stack; called on the session env's own thread, so its store
        connection (SQLite's connections are bound to a thread) is opened there."""
        o = self.options
        env = wrap_budgets(gym.make(o.env_id, **o.env_kwargs()), o)
        store = RunStore(o.db_path())
        return ServedEpisodes(StoreRecorder(env, store, episode_id=0), self)

    def close(self) -> None:
        """Release the run's claim and close its store (idempotent)."""
        if not self._closed:
            self._closed = True
            self.recording.close()


class ServedEpisodes(gym.Wrapper[Any, Any, Any, Any]):
    """Records each episode a client plays in the server's run, like ``rebench run`` does.

    Args:
        env: The env in a :class:`StoreRecorder` (which stores anchors and score rows live).
        run: The server's run.
    """

    def __init__(self, env: StoreRecorder, run: ServedRun) -> None:
        super().__init__(env)
        self.recorder = env
        self.run = run
        self.episode_id: int | None = None  # the open episode's row
        self._total = 0.0
        self._steps = 0
        self._started = 0.0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        self._abandon("the client reset before the episode ended")
        store = self.recorder.store
        eid = store.begin_episode(self.run.run_id, self.run.next_index(), self.run.spec)
        self.recorder.episode_id = eid
        try:
            obs, info = self.env.reset(seed=seed, options=options)
        except BaseException as e:
            store.fail_episode(eid, f"{type(e).__name__}: {e}")
            raise
        self.episode_id = eid
        self._total = 0.0
        self._steps = 0
        self._started = time.monotonic()  # after reset, as in rollout
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        try:
            obs, reward, terminated, truncated, info = self.env.step(action)
        except BaseException as e:
            self._abandon(f"{type(e).__name__}: {e}")
            raise
        if self.episode_id is not None:
            self._total += float(reward)
            self._steps += 1
            if terminated or truncated:
                self._finish(terminated, truncated, info)
        return obs, reward, terminated, truncated, info

    def _finish(self, terminated: bool, truncated: bool, info: dict[str, Any]) -> None:
        eid, self.episode_id = self.episode_id, None
        assert eid is not None
        log = self.env.unwrapped.score_log  # type: ignore[attr-defined] # real rows, hidden too
        result = EpisodeResult.from_score_log(
            log,
            env_id=self.run.options.env_id,
            agent=self.run.spec.agent,
            total_reward=self._total,
            steps=self._steps,
            started=self._started,
            terminated=terminated,
            truncated=truncated,
            info=info,
        )
        self.recorder.store.finish_episode(eid, result)

    def _abandon(self, reason: str) -> None:
        """Mark the open episode (if any) failed with ``reason``."""
        eid, self.episode_id = self.episode_id, None
        if eid is not None:
            self.recorder.store.fail_episode(eid, reason)

    def close(self) -> None:
        try:
            self._abandon(
                "the session ended before the episode did (client gone, idle or shutdown)"
            )
            super().close()
        finally:
            self.recorder.store.close()


class ReBenchOpenEnv(Environment[ReBenchAction, ReBenchObservation, ReBenchState]):
    """OpenEnv's ``Environment`` for one session: reset/step/state over one RE-Bench env.

    Built cheaply (OpenEnv builds one for ``/metadata`` and closes it): the env, its sandbox and
    its store connection come at the first reset, on the session env's own thread. The async
    methods are what the server calls; the sync ones serve in-process use.
    """

    SUPPORTS_CONCURRENT_SESSIONS = True  # each session has its own env, sandbox and workspace

    def __init__(self, run: ServedRun) -> None:
        super().__init__()
        self._run = run
        self._env = AsyncReBenchEnv(run.build_env)
        self._state = ReBenchState(env_id=run.options.env_id, run_id=run.run_id)

    @property
    def busy(self) -> bool:
        """Whether a reset or step is running (the server keeps such a session alive)."""
        return self._env.busy

    # ----- OpenEnv API -----------------------------------------------------------------------
    async def reset_async(
        self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any
    ) -> ReBenchObservation:
        """Start an episode (``episode_id`` is ignored: the run store numbers episodes)."""
        _check_seed(seed)
        return self._reset_done(*(await self._env.areset(seed=seed)))

    async def step_async(
        self, action: ReBenchAction, timeout_s: float | None = None, **kwargs: Any
    ) -> ReBenchObservation:
        """Take the action (a shell command's own timeout applies, not ``timeout_s``)."""
        return self._step_done(*(await self._env.astep(action.to_env_action())))

    def reset(
        self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any
    ) -> ReBenchObservation:
        _check_seed(seed)
        return self._reset_done(*self._env.submit(lambda env: env.reset(seed=seed)).result())

    def step(
        self, action: ReBenchAction, timeout_s: float | None = None, **kwargs: Any
    ) -> ReBenchObservation:
        text = action.to_env_action()
        return self._step_done(*self._env.submit(lambda env: env.step(text)).result())

    @property
    def state(self) -> ReBenchState:
        return self._state

    def get_metadata(self) -> EnvironmentMetadata:
        from rebench_gym import __version__

        o = self._run.options
        return EnvironmentMetadata(
            name=o.env_id,
            description=f"RE-Bench task {o.env_id} at scale {o.scale!r}, served by rebench_gym",
            version=__version__,
        )

    def close(self) -> None:
        """Close the env: sandbox processes and containers go, an unfinished episode is
        recorded as failed.

        OpenEnv closes a session when its client is gone or the server stops, so a command
        still running has no one to report to: the sandbox's processes are killed first, and
        the call ends now instead of at its timeout.
        """
        if self._env.busy:
            self._interrupt()
        self._env.close()

    def _interrupt(self) -> None:
        try:
            sandbox = self._env.unwrapped.sandbox
        except RuntimeError:  # not built or not reset yet: nothing runs in a sandbox
            return
        with contextlib.suppress(Exception):  # best effort; close() kills everything anyway
            sandbox.kill_all()

    # ----- helpers ---------------------------------------------------------------------------
    def _reset_done(self, obs: dict[str, str], info: dict[str, Any]) -> ReBenchObservation:
        recorder: ServedEpisodes = self._env.env  # type: ignore[assignment]
        self._state = ReBenchState(
            env_id=self._run.options.env_id,
            run_id=self._run.run_id,
            episode_id=str(recorder.episode_id),
            step_count=0,
            best_normalized=info.get("best_normalized"),
        )
        return ReBenchObservation(
            terminal=obs["terminal"], files=obs["files"], info=info, reward=0.0, done=False
        )

    def _step_done(
        self,
        obs: dict[str, str],
        reward: SupportsFloat,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
    ) -> ReBenchObservation:
        done = bool(terminated or truncated)
        self._state = self._state.model_copy(
            update={
                "step_count": self._state.step_count + 1,
                "done": done,
                "best_normalized": info.get("best_normalized"),
            }
        )
        info = {**info, "terminated": bool(terminated), "truncated": bool(truncated)}
        return ReBenchObservation(
            terminal=obs["terminal"],
            files=obs["files"],
            info=info,
            reward=float(reward),
            done=done,
        )


def _check_seed(seed: Any) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or null, not {seed!r}")


__all__ = ["ReBenchOpenEnv", "ServedEpisodes", "ServedRun"]
