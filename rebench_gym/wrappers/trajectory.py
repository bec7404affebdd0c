"""RecordTrajectory: a crash-safe JSONL log of every step, and :func:`read_trajectory` to load it.

File format (schema version :data:`SCHEMA_VERSION`), one JSON object per line, UTF-8:

* a **reset** line per episode: ``{"schema": "rebench_gym.trajectory", "version": 1, "type":
  "reset", "episode_id", "episode", "time", "env_id", "env_kwargs", "seed", "options",
  "observation", "info"}``;
* a **step** line per step: ``{"schema", "version", "type": "step", "episode_id", "step",
  "time", "action", "observation", "reward", "terminated", "truncated", "timings": {"since_reset_s",
  "think_s", "step_s"}, "tokens", "new_score_rows", "info"}``. ``think_s`` is the time between the
  previous step's return and this call (the agent's thinking), ``step_s`` the time the step took;
  ``tokens`` is a :class:`~rebench_gym.wrappers.TokenBudget`'s state when one is inside this
  wrapper (else ``null``); ``new_score_rows`` are the score-log rows this step added; ``info`` is
  the step's ``info`` without the (cumulative) ``score_log``.

``time`` is a Unix timestamp. Lines are appended: several episodes (and several runs) can share a
file; ``episode_id`` links steps to their reset line. Each line is flushed and ``fsync``'d before
``step`` returns, so a crash (even ``SIGKILL`` or a power cut) loses at most the step in flight;
:func:`read_trajectory` skips a torn (half-written) line.

Wrap it outermost (around the budget wrappers) so it records what the agent saw, budget state and
``truncated_by`` included.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import uuid
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import gymnasium as gym

from rebench_gym.errors import UsageError

SCHEMA = "rebench_gym.trajectory"
#: version of the line format written; :func:`read_trajectory` reads this version and older
SCHEMA_VERSION = 1


def _jsonable(value: Any) -> Any:
    """Fallback for :func:`json.dumps`: numpy values, paths, dataclasses, else ``repr``."""
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return repr(value)


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, default=_jsonable)


class RecordTrajectory(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """Append one JSONL line per reset and per step to ``path``, durably.

    See the module docstring for the line format. The file is created (with its parent
    directories) on the first ``reset`` and appended to, never truncated; ``close`` closes it.
    """

    def __init__(self, env: gym.Env[Any, Any], path: str | os.PathLike[str], fsync: bool = True):
        """Record ``env``'s episodes to ``path``.

        Args:
            env: the environment.
            path: the JSONL file (appended to).
            fsync: ``os.fsync`` after every line (crash-safe; costs a few milliseconds a step).

        Raises:
            UsageError: ``path`` is not a path or names a directory.
        """
        if not isinstance(path, str | os.PathLike) or not os.fspath(path):
            raise UsageError(f"path must be a file path, not {path!r}")
        target = Path(os.fspath(path))
        if target.is_dir():
            raise UsageError(f"path {str(target)!r} is a directory; give a file name")
        gym.utils.RecordConstructorArgs.__init__(self, path=os.fspath(path), fsync=fsync)
        gym.Wrapper.__init__(self, env)
        self.path = target
        self.fsync = bool(fsync)
        self._file: IO[str] | None = None
        self._episode_id: str | None = None
        self._episodes = 0
        self._steps = 0
        self._reset_at = 0.0
        self._last_return = 0.0
        self._score_rows = 0

    # ----- writing ------------------------------------------------------------------------------
    def _open(self) -> IO[str]:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            f = self.path.open("a", encoding="utf-8")
            if not created and self.path.stat().st_size > 0:
                with self.path.open("rb") as check:
                    check.seek(-1, os.SEEK_END)
                    if check.read(1) != b"\n":  # a torn line from a crashed run: end it
                        f.write("\n")
            self._file = f
            if created and self.fsync:
                dir_fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        return self._file

    def _write(self, record: dict[str, Any]) -> None:
        f = self._open()
        f.write(_dumps(record) + "\n")
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())

    # ----- gym API ------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env and write the episode's reset line."""
        obs, info = self.env.reset(seed=seed, options=options)
        now = time.monotonic()
        self._episode_id = uuid.uuid4().hex
        self._episodes += 1
        self._steps = 0
        self._reset_at = self._last_return = now
        self._score_rows = len(info.get("score_log") or ())
        spec = self.env.spec
        self._write(
            {
                "schema": SCHEMA,
                "version": SCHEMA_VERSION,
                "type": "reset",
                "episode_id": self._episode_id,
                "episode": self._episodes,
                "time": time.time(),
                "env_id": spec.id if spec is not None else None,
                "env_kwargs": dict(spec.kwargs) if spec is not None else {},
                "seed": seed,
                "options": options,
                "observation": obs,
                "info": info,
            }
        )
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """Step the env and write the step's line before returning."""
        called = time.monotonic()
        obs, reward, terminated, truncated, info = self.env.step(action)
        returned = time.monotonic()
        if self._episode_id is None:  # the env stepped without our reset: nothing to attach to
            return obs, reward, terminated, truncated, info
        self._steps += 1
        rows = info.get("score_log")
        new_rows: list[Any] = []
        if isinstance(rows, list):
            new_rows = rows[self._score_rows :]
            self._score_rows = len(rows)
        self._write(
            {
                "schema": SCHEMA,
                "version": SCHEMA_VERSION,
                "type": "step",
                "episode_id": self._episode_id,
                "step": self._steps,
                "time": time.time(),
                "action": action,
                "observation": obs,
                "reward": float(reward),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
                "timings": {
                    "since_reset_s": round(returned - self._reset_at, 6),
                    "think_s": round(called - self._last_return, 6),
                    "step_s": round(returned - called, 6),
                },
                "tokens": info.get("token_budget"),
                "new_score_rows": new_rows,
                "info": {k: v for k, v in info.items() if k != "score_log"},
            }
        )
        self._last_return = time.monotonic()
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        """Close the file, then the env (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


# ----- reading ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordedEpisode:
    """One episode read back from a trajectory file: its reset line and its step lines."""

    header: dict[str, Any]
    steps: tuple[dict[str, Any], ...]

    @property
    def episode_id(self) -> str:
        """The id linking the episode's lines."""
        return str(self.header["episode_id"])

    @property
    def ended(self) -> bool:
        """Whether the last recorded step terminated or truncated the episode."""
        return bool(self.steps) and bool(
            self.steps[-1]["terminated"] or self.steps[-1]["truncated"]
        )

    @property
    def total_reward(self) -> float:
        """Sum of the recorded rewards."""
        return math.fsum(float(s["reward"]) for s in self.steps)

    @property
    def actions(self) -> list[Any]:
        """The actions in order."""
        return [s["action"] for s in self.steps]


def _lines(text: str) -> Iterable[tuple[int, str, bool]]:
    """``(line number, line, is_last)`` for each non-empty line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for i, line in enumerate(lines):
        if line.strip():
            yield i + 1, line, i == len(lines) - 1


def read_trajectory(path: str | os.PathLike[str]) -> list[RecordedEpisode]:
    """Load the episodes of a trajectory file written by :class:`RecordTrajectory`.

    A torn last line (the step in flight when the writer crashed) is dropped silently; a torn
    line elsewhere (a crashed run followed by an appending one) is dropped with a warning.

    Raises:
        UsageError: the file does not exist, is not a rebench_gym trajectory, was written by a
            newer schema version, or has step lines without their reset line.
    """
    file = Path(os.fspath(path))
    if not file.is_file():
        raise UsageError(f"no trajectory file at {str(file)!r}")
    text = file.read_bytes().decode("utf-8", errors="replace")
    headers: dict[str, dict[str, Any]] = {}
    steps: dict[str, list[dict[str, Any]]] = {}
    order: list[str] = []
    for number, line, is_last in _lines(text):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError:
            if not is_last:
                warnings.warn(
                    f"{file}:{number}: skipped a torn or corrupt line", UserWarning, stacklevel=2
                )
            continue
        if record.get("schema") != SCHEMA:
            raise UsageError(f"{file}:{number} is not a rebench_gym trajectory line")
        version = record.get("version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise UsageError(
                f"{file}:{number} has schema version {version!r}; this rebench_gym reads up to "
                f"{SCHEMA_VERSION}: upgrade rebench_gym"
            )
        episode_id = str(record.get("episode_id"))
        if record.get("type") == "reset":
            headers[episode_id] = record
            steps[episode_id] = []
            order.append(episode_id)
        elif record.get("type") == "step":
            if episode_id not in steps:
                raise UsageError(
                    f"{file}:{number}: a step of episode {episode_id} without its reset"
                )
            steps[episode_id].append(record)
        else:
            raise UsageError(f"{file}:{number}: unknown line type {record.get('type')!r}")
    return [RecordedEpisode(headers[e], tuple(steps[e])) for e in order]
