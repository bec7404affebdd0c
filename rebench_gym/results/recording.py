"""Recording a multi-episode run into the run store, with resumption: what ``rebench run`` uses.

Typical use::

    with RunRecording.start(db, spec, episodes=5, resume=True) as recording:
        for index in recording.pending:
            env = recording.wrap(gym.make(spec.env_id, **spec.make_kwargs), index)
            try:
                result = rollout(env, agent)
            except BaseException as e:
                recording.fail(e)
                raise
            finally:
                env.close()
            recording.finish(result)
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym

from rebench_gym.results.store import EpisodeSpec, RunStore, StoreRecorder


class RunRecording:
    """One run being written to a :class:`RunStore`: which episodes to run, and their rows.

    Args:
        store: The open store (closed by :meth:`close`).
        spec: The spec every episode of the run shares.
        run_id: The run's id (from :meth:`RunStore.open_run`).
        pending: Episode indices still to run.
    """

    def __init__(self, store: RunStore, spec: EpisodeSpec, run_id: str, pending: list[int]):
        self.store = store
        self.spec = spec
        self.run_id = run_id
        self.pending = pending
        self._episode_id: int | None = None

    @classmethod
    def start(
        cls,
        db: str | os.PathLike[str],
        spec: EpisodeSpec,
        episodes: int,
        *,
        resume: bool = False,
        run_id: str | None = None,
    ) -> RunRecording:
        """Open the store at ``db`` and start (or, with ``resume``, continue) a run."""
        store = RunStore(db)
        try:
            rid = store.open_run(spec, episodes, resume=resume, run_id=run_id)
            pending = store.pending_episodes(rid, episodes)
        except BaseException:
            store.close()
            raise
        return cls(store, spec, rid, pending)

    def __enter__(self) -> RunRecording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def begin(self, index: int) -> int:
        """Insert episode ``index``'s row with status ``running``; returns its episode id."""
        self._episode_id = self.store.begin_episode(self.run_id, index, self.spec)
        return self._episode_id

    def wrap(self, env: gym.Env[Any, Any], index: int) -> gym.Env[Any, Any]:
        """Begin episode ``index`` and wrap ``env`` to record its anchors and score rows."""
        return StoreRecorder(env, self.store, self.begin(index))

    def finish(self, result: Any, *, trajectory_path: str | None = None) -> None:
        """Record the current episode's result (an :class:`~rebench_gym.EpisodeResult`)."""
        if self._episode_id is None:
            raise RuntimeError("wrap() an env before finish()")
        self.store.finish_episode(self._episode_id, result, trajectory_path=trajectory_path)
        self._episode_id = None

    def fail(self, error: BaseException | str) -> None:
        """Mark the current episode failed (no-op when none is open)."""
        if self._episode_id is None:
            return
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.store.fail_episode(self._episode_id, text or "failed")
        self._episode_id = None

    def close(self) -> None:
        """Close the store."""
        self.store.close()
