"""The run store: every episode of ``rebench run`` in an embedded SQLite database.

The store is written as a run goes, in short transactions committed at once (WAL mode), so a
killed run keeps everything that finished:

* ``runs``: one row per run (a ``rebench run`` invocation, or the run it resumed): run id, the
  run key (a hash of what makes episodes interchangeable), the number of episodes planned.
* ``episodes``: one row per episode attempt, inserted with status ``running`` before the env is
  reset and updated to ``finished`` (with scores, steps, wall time, tokens, cost, trajectory
  path) or ``failed`` (with the error). It records the episode's full spec: env id, make
  kwargs, task version, package version, hardware fingerprint, anchors (the env's
  ``info["anchors"]``), agent name, budgets, seed.
* ``score_rows``: the episode's score log (timestamp, elapsed seconds, raw and normalized score,
  validity, message, and the id of the kept solution it scored, see
  :mod:`rebench_gym.results.solutions`), inserted as each score call happens.
* ``rescores``: kept solutions scored again by ``rebench rescore`` (scorer version, anchors,
  sandbox, raw and normalized score, validity, message), one row per score row and rescore;
  never written over ``score_rows``, so the original and every later score stay side by side.

Resumption: a run is identified by its run id. ``open_run(..., resume=True)`` continues the
given run id, or else the most recent run with the same run key (same env id, make kwargs,
agent, budgets, seed, max steps, task version and hardware). Episode indices ``0..N-1`` that
already have a ``finished`` row are skipped; a ``running`` row left by a process that no longer
exists (on this host) is marked ``failed`` ("interrupted") and its index is run again.

One process at a time: :meth:`RunStore.open_run` claims the run for the calling process in the
same transaction that finds or creates it (``run_claims``), so of two ``rebench run --resume``
started together one gets the run and the other a :class:`RunInUseError`. A claim of a process
that no longer exists is taken over; :meth:`RunStore.close` releases this process's claims.

A file that is not a readable SQLite store raises :class:`RunStoreError` (a usage error: the
message names the file and what to do), never a raw ``sqlite3`` error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym

from rebench_gym import procs
from rebench_gym.errors import UsageError

SCHEMA_VERSION = 1
EpisodeStatus = Literal["running", "finished", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    run_key TEXT NOT NULL,
    created_at REAL NOT NULL,
    env_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    episodes_planned INTEGER NOT NULL,
    spec_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_key ON runs (run_key, created_at);
CREATE TABLE IF NOT EXISTS episodes (
    episode_id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    episode_index INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
    env_id TEXT NOT NULL,
    task_version TEXT NOT NULL,
    scale TEXT NOT NULL,
    hidden_score INTEGER NOT NULL,
    aggregation TEXT NOT NULL,
    agent TEXT NOT NULL,
    make_kwargs_json TEXT NOT NULL,
    package_version TEXT NOT NULL,
    hardware TEXT NOT NULL,
    budgets_json TEXT NOT NULL,
    seed INTEGER,
    anchors_json TEXT,
    resources_json TEXT,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    normalized_score REAL,
    raw_score REAL,
    total_reward REAL,
    steps INTEGER,
    wall_time_s REAL,
    terminated INTEGER,
    truncated INTEGER,
    end_reason TEXT,
    tokens_json TEXT,
    cost_usd REAL,
    trajectory_path TEXT,
    error TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS one_finished_per_index
    ON episodes (run_id, episode_index) WHERE status = 'finished';
CREATE TABLE IF NOT EXISTS score_rows (
    episode_id INTEGER NOT NULL REFERENCES episodes (episode_id),
    seq INTEGER NOT NULL,
    timestamp REAL NOT NULL,
    elapsed_s REAL NOT NULL,
    raw REAL,
    normalized REAL NOT NULL,
    valid INTEGER NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (episode_id, seq)
);
CREATE TABLE IF NOT EXISTS rescores (
    episode_id INTEGER NOT NULL REFERENCES episodes (episode_id),
    seq INTEGER NOT NULL,
    rescored_at REAL NOT NULL,
    scorer_version TEXT NOT NULL,
    anchors_json TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    raw REAL,
    normalized REAL NOT NULL,
    valid INTEGER NOT NULL,
    message TEXT NOT NULL,
    hardware TEXT,
    PRIMARY KEY (episode_id, seq, rescored_at)
);
CREATE TABLE IF NOT EXISTS run_claims (
    run_id TEXT PRIMARY KEY REFERENCES runs (run_id),
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    claimed_at REAL NOT NULL
);
"""


class RunStoreError(UsageError):
    """The run store file cannot be used (not a SQLite database, damaged, locked, unwritable)."""


class RunInUseError(UsageError):
    """Another live process is running (or resuming) the run; it was not touched."""


def _live_elsewhere(host: str, pid: int) -> bool:
    """Whether ``(host, pid)`` names a live process other than this one.

    A process on another host counts as gone: SQLite's WAL mode works only when every process
    using the file runs on one host, so rows of another host come from a store that was moved.
    """
    return host == socket.gethostname() and pid != os.getpid() and procs.pid_alive(pid)


def default_db_path() -> Path:
    """Where the store lives by default: ``$REBENCH_DB``, else the user data dir.

    The user data dir is ``$XDG_DATA_HOME/rebench_gym/runs.db`` (``~/.local/share/...``), so
    runs from any working directory accumulate in one place.
    """
    if os.environ.get("REBENCH_DB"):
        return Path(os.environ["REBENCH_DB"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rebench_gym" / "runs.db"


@dataclass(frozen=True)
class EpisodeSpec:
    """Everything that defines an episode's conditions, recorded with every episode.

    Attributes:
        env_id: The registered id, e.g. ``RE-Bench/OptimizeKernel-v0``.
        agent: The agent's name.
        task_version: The task's version (``task.yaml``).
        scale: ``"full"`` or ``"mini"``.
        hidden_score: Whether the score call reported validity only.
        aggregation: ``"best"`` or ``"last"`` (ScalingLaw): how the score log counts.
        package_version: ``rebench_gym.__version__``.
        hardware: The hardware fingerprint (:func:`rebench_gym.calibration.hardware_fingerprint`).
        make_kwargs: The kwargs given to ``gym.make``.
        budgets: Budgets the episode ran under (``time_budget_s``, ``token_budget``,
            ``max_steps``); ``None`` values mean unlimited.
        seed: The seed of env and agent, if any.
    """

    env_id: str
    agent: str
    task_version: str
    scale: str
    hidden_score: bool
    aggregation: str
    package_version: str
    hardware: str
    make_kwargs: dict[str, Any] = field(default_factory=dict)
    budgets: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    @classmethod
    def for_env(
        cls,
        env_id: str,
        agent: str,
        *,
        make_kwargs: dict[str, Any],
        budgets: dict[str, Any] | None = None,
        seed: int | None = None,
    ) -> EpisodeSpec:
        """Build the spec of ``env_id`` on this machine (task version, hardware, package)."""
        from rebench_gym import __version__
        from rebench_gym.calibration import hardware_fingerprint
        from rebench_gym.envs.registration import task_name
        from rebench_gym.tasks import get_task

        task = get_task(task_name(env_id))
        hidden = bool(make_kwargs.get("hidden_score")) or task.spec.always_hidden
        return cls(
            env_id=env_id,
            agent=agent,
            task_version=str(task.spec.version),
            scale=str(make_kwargs.get("scale", "full")),
            hidden_score=hidden,
            aggregation=task.spec.aggregation,
            package_version=__version__,
            hardware=hardware_fingerprint(),
            make_kwargs=dict(make_kwargs),
            budgets=dict(budgets or {}),
            seed=seed,
        )

    def run_key(self) -> str:
        """A hash of what must match for episodes to belong to the same run on resume."""
        data = {
            "env_id": self.env_id,
            "agent": self.agent,
            "task_version": self.task_version,
            "hardware": self.hardware,
            "make_kwargs": self.make_kwargs,
            "budgets": self.budgets,
            "seed": self.seed,
        }
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ScoreRowRecord:
    """One stored score log row."""

    timestamp: float
    elapsed_s: float
    raw: float | None
    normalized: float
    valid: bool
    message: str
    #: the kept solution the row scored (:mod:`rebench_gym.results.solutions`); None when it
    #: was not kept (no solution, too large, or a run recorded before solutions were kept)
    solution_id: str | None = None
    seq: int = 0


@dataclass(frozen=True)
class RescoreRecord:
    """One kept solution scored again (``rebench rescore``), stored beside its score row.

    Attributes:
        episode_id: The episode.
        seq: The score row (its number in the episode's score log) whose solution was scored.
        rescored_at: When (Unix time); one rescore of an episode stores all its rows with the
            same time.
        scorer_version: :func:`rebench_gym.rescore.scorer_version` of the scorer that ran.
        anchors: The anchors the raw score was normalized with (``Anchors.to_dict``).
        sandbox: The sandbox provider the solution ran in.
        raw: The raw score (None when invalid).
        normalized: The normalized score (0 when invalid).
        valid: Whether the scorer accepted the solution.
        message: The scorer's message.
        hardware: The hardware fingerprint of the machine that rescored.
    """

    episode_id: int
    seq: int
    rescored_at: float
    scorer_version: str
    anchors: dict[str, Any]
    sandbox: str
    raw: float | None
    normalized: float
    valid: bool
    message: str
    hardware: str = ""


@dataclass(frozen=True)
class EpisodeRecord:
    """One stored episode: its spec, its outcome and its score log."""

    episode_id: int
    run_id: str
    episode_index: int
    status: EpisodeStatus
    env_id: str
    agent: str
    task_version: str
    scale: str
    hidden_score: bool
    aggregation: str
    package_version: str
    hardware: str
    make_kwargs: dict[str, Any]
    budgets: dict[str, Any]
    seed: int | None
    anchors: dict[str, Any] | None
    #: the resources the episode's sandbox had and how each was enforced (``info["resources"]``)
    resources: dict[str, Any] | None
    started_at: float
    finished_at: float | None
    normalized_score: float | None
    raw_score: float | None
    total_reward: float | None
    steps: int | None
    wall_time_s: float | None
    end_reason: str | None
    tokens: dict[str, int]
    cost_usd: float | None
    trajectory_path: str | None
    error: str | None
    score_rows: tuple[ScoreRowRecord, ...] = ()

    @property
    def time_budget_s(self) -> float | None:
        """The per-run time budget the episode ran under (None: unlimited)."""
        value = self.budgets.get("time_budget_s")
        return None if value is None else float(value)


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class RunStore:
    """The SQLite run store (WAL mode, short transactions, safe across processes).

    Use as a context manager or call :meth:`close`.

    Args:
        path: The database file; created with its parent directories when missing.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._claims: set[str] = set()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise RunStoreError(
                f"cannot open the run store {self.path}: {e}; pass --db PATH"
            ) from e
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)
            self._add_missing_columns()
            with self._tx() as c:
                c.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                row = c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.Error as e:
            self.close()
            raise self._unusable(e) from None
        if int(row["value"]) != SCHEMA_VERSION:
            raise UsageError(
                f"{self.path} has schema version {row['value']}, this rebench_gym reads "
                f"{SCHEMA_VERSION}; use another --db file"
            )

    #: columns added to schema version 1 since it was first written (nullable, so older stores
    #: are brought up to date in place and older readers ignore them)
    _ADDED_COLUMNS = (
        ("episodes", "resources_json", "TEXT"),
        ("score_rows", "solution_id", "TEXT"),
        ("rescores", "hardware", "TEXT"),
    )

    def _add_missing_columns(self) -> None:
        for table, column, kind in self._ADDED_COLUMNS:
            have = {r["name"] for r in self._conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    # ----- plumbing --------------------------------------------------------------------------
    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release this store's run claims and close the connection (idempotent)."""
        for run_id in list(self._claims):
            with contextlib.suppress(sqlite3.Error):
                self.release_run(run_id)
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

    def _unusable(self, error: sqlite3.Error) -> RunStoreError:
        """The usage error for a store file SQLite refuses, naming the file and the way out."""
        text = str(error)
        if "locked" in text or "busy" in text:
            return RunStoreError(
                f"the run store {self.path} stayed locked by another process for 30 s ({text}); "
                "try again when it is done, or pass --db PATH to use another file"
            )
        return RunStoreError(
            f"the run store {self.path} cannot be read ({text}): it is not a rebench_gym run "
            f"store or it is damaged. Move it aside (mv {self.path} {self.path}.bad) to start "
            "a new store there, or pass --db PATH to use another file"
        )

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Turn SQLite's errors while reading into a :class:`RunStoreError`."""
        try:
            yield
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from None

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, committed when the block ends."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # ----- runs ------------------------------------------------------------------------------
    def open_run(
        self,
        spec: EpisodeSpec,
        episodes: int,
        *,
        resume: bool = False,
        run_id: str | None = None,
    ) -> str:
        """Start a run, or find the run to resume; returns its run id.

        Args:
            spec: The episodes' spec.
            episodes: How many episodes the run should have in all.
            resume: Continue ``run_id`` (or, without it, the latest run with the same run key)
                instead of starting a new run. Without such a run a new one starts.
            run_id: A name for the run; a new run with an existing id is a usage error.
        """
        key = spec.run_key()
        with self._tx() as c:
            existing: sqlite3.Row | None = None
            if run_id is not None:
                existing = c.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                if existing is not None and not resume:
                    raise UsageError(
                        f"run id {run_id!r} exists in {self.path}; pass --resume to continue it "
                        "or choose another id"
                    )
                if existing is not None and existing["run_key"] != key:
                    raise UsageError(
                        f"run {run_id!r} was started with other settings (env, agent, budgets, "
                        "seed, task version or hardware differ); start a new run instead"
                    )
            elif resume:
                existing = c.execute(
                    "SELECT * FROM runs WHERE run_key = ? ORDER BY created_at DESC LIMIT 1",
                    (key,),
                ).fetchone()
            if existing is not None:
                rid = str(existing["run_id"])
                self._claim(c, rid)
                if episodes > int(existing["episodes_planned"]):
                    c.execute(
                        "UPDATE runs SET episodes_planned = ? WHERE run_id = ?", (episodes, rid)
                    )
                return rid
            rid = run_id or f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
            c.execute(
                "INSERT INTO runs (run_id, run_key, created_at, env_id, agent, episodes_planned,"
                " spec_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    rid,
                    key,
                    time.time(),
                    spec.env_id,
                    spec.agent,
                    episodes,
                    json.dumps(asdict(spec), sort_keys=True, default=str),
                ),
            )
            self._claim(c, rid)
            return rid

    def _claim(self, c: sqlite3.Connection, run_id: str) -> None:
        """Claim ``run_id`` for this process inside the caller's write transaction.

        Raises:
            RunInUseError: a live process on this host holds the claim.
        """
        row = c.execute(
            "SELECT host, pid, claimed_at FROM run_claims WHERE run_id = ?", (run_id,)
        ).fetchone()
        if row is not None and _live_elsewhere(str(row["host"]), int(row["pid"])):
            since = time.strftime("%H:%M:%S", time.localtime(float(row["claimed_at"])))
            raise RunInUseError(
                f"run {run_id!r} in {self.path} is being run or resumed elsewhere (process "
                f"{row['pid']} on this host, since {since}); wait for it to end, then "
                "--resume again, or start a new run without --resume"
            )
        c.execute(
            "INSERT OR REPLACE INTO run_claims (run_id, host, pid, claimed_at) VALUES (?, ?, ?, ?)",
            (run_id, socket.gethostname(), os.getpid(), time.time()),
        )
        self._claims.add(run_id)

    def release_run(self, run_id: str) -> None:
        """Give up this process's claim on ``run_id`` (no-op when it holds none)."""
        self._claims.discard(run_id)
        with self._tx() as c:
            c.execute(
                "DELETE FROM run_claims WHERE run_id = ? AND host = ? AND pid = ?",
                (run_id, socket.gethostname(), os.getpid()),
            )

    def pending_episodes(self, run_id: str, episodes: int) -> list[int]:
        """Episode indices of ``0..episodes-1`` that still have to run in ``run_id``.

        Finished indices are skipped. A ``running`` row whose process is gone (same host, dead
        pid, or another host) is marked ``failed`` with an "interrupted" error and its index is
        pending again; an index still running in a live process on this host is skipped.
        """
        host = socket.gethostname()
        with self._tx() as c:
            finished = {
                int(r["episode_index"])
                for r in c.execute(
                    "SELECT episode_index FROM episodes WHERE run_id = ? AND status = 'finished'",
                    (run_id,),
                )
            }
            busy: set[int] = set()
            for r in c.execute(
                "SELECT episode_id, episode_index, host, pid FROM episodes "
                "WHERE run_id = ? AND status = 'running'",
                (run_id,),
            ).fetchall():
                alive = r["host"] == host and procs.pid_alive(int(r["pid"]))
                if alive and int(r["pid"]) != os.getpid():
                    busy.add(int(r["episode_index"]))
                else:
                    c.execute(
                        "UPDATE episodes SET status = 'failed', finished_at = ?, error = ? "
                        "WHERE episode_id = ?",
                        (time.time(), "interrupted: the process running it ended", r[0]),
                    )
        return [i for i in range(episodes) if i not in finished and i not in busy]

    # ----- episodes --------------------------------------------------------------------------
    def begin_episode(self, run_id: str, index: int, spec: EpisodeSpec) -> int:
        """Insert an episode row with status ``running``; returns its episode id."""
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO episodes (run_id, episode_index, status, env_id, task_version, "
                "scale, hidden_score, aggregation, agent, make_kwargs_json, package_version, "
                "hardware, budgets_json, seed, host, pid, started_at) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    index,
                    spec.env_id,
                    spec.task_version,
                    spec.scale,
                    int(spec.hidden_score),
                    spec.aggregation,
                    spec.agent,
                    json.dumps(spec.make_kwargs, sort_keys=True, default=str),
                    spec.package_version,
                    spec.hardware,
                    json.dumps(spec.budgets, sort_keys=True, default=str),
                    spec.seed,
                    socket.gethostname(),
                    os.getpid(),
                    time.time(),
                ),
            )
            return int(cur.lastrowid or 0)

    def set_anchors(
        self,
        episode_id: int,
        anchors: dict[str, Any] | None,
        resources: dict[str, Any] | None = None,
    ) -> None:
        """Record the anchors the episode's env resolved and the resources its sandbox had
        (its ``info["anchors"]`` and ``info["resources"]`` at reset)."""

        def as_json(value: dict[str, Any] | None) -> str | None:
            return None if value is None else json.dumps(value, sort_keys=True)

        with self._tx() as c:
            c.execute(
                "UPDATE episodes SET anchors_json = ?, resources_json = ? WHERE episode_id = ?",
                (as_json(anchors), as_json(resources), episode_id),
            )

    def add_score_rows(
        self, episode_id: int, rows: Sequence[dict[str, Any]], *, start_seq: int = 0
    ) -> None:
        """Insert score log rows (dicts as in ``ScoreRow.to_dict``) numbered from ``start_seq``.

        Rows already stored under the same number are left as they are.
        """
        if not rows:
            return
        with self._tx() as c:
            c.executemany(
                "INSERT OR IGNORE INTO score_rows (episode_id, seq, timestamp, elapsed_s, raw, "
                "normalized, valid, message, solution_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        episode_id,
                        start_seq + i,
                        float(r.get("timestamp") or 0.0),
                        float(r.get("elapsed_s") or 0.0),
                        _finite_or_none(r.get("raw")),
                        float(r.get("normalized") or 0.0),
                        int(bool(r.get("valid"))),
                        str(r.get("message") or ""),
                        _solution_id(r.get("solution_id")),
                    )
                    for i, r in enumerate(rows)
                ],
            )

    def finish_episode(
        self,
        episode_id: int,
        result: Any,
        *,
        cost_usd: float | None = None,
        trajectory_path: str | None = None,
    ) -> None:
        """Record an episode's outcome (an :class:`~rebench_gym.EpisodeResult`) as finished.

        Score log rows of ``result.score_log`` that are not stored yet are added in the same
        transaction.
        """
        tokens = dict(getattr(result, "tokens", {}) or {})
        if cost_usd is None and "cost_usd" in tokens:
            cost_usd = float(tokens.pop("cost_usd"))
        rows = list(getattr(result, "score_log", []) or [])
        with self._tx() as c:
            c.executemany(
                "INSERT OR IGNORE INTO score_rows (episode_id, seq, timestamp, elapsed_s, raw, "
                "normalized, valid, message, solution_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        episode_id,
                        i,
                        float(r.get("timestamp") or 0.0),
                        float(r.get("elapsed_s") or 0.0),
                        _finite_or_none(r.get("raw")),
                        float(r.get("normalized") or 0.0),
                        int(bool(r.get("valid"))),
                        str(r.get("message") or ""),
                        _solution_id(r.get("solution_id")),
                    )
                    for i, r in enumerate(rows)
                ],
            )
            c.execute(
                "UPDATE episodes SET status = 'finished', finished_at = ?, normalized_score = ?, "
                "raw_score = ?, total_reward = ?, steps = ?, wall_time_s = ?, terminated = ?, "
                "truncated = ?, end_reason = ?, tokens_json = ?, cost_usd = ?, "
                "trajectory_path = ? WHERE episode_id = ?",
                (
                    time.time(),
                    float(result.normalized_score),
                    _finite_or_none(result.raw_score),
                    float(result.total_reward),
                    int(result.steps),
                    float(result.wall_time_s),
                    int(bool(result.terminated)),
                    int(bool(result.truncated)),
                    str(getattr(result, "end_reason", "") or ""),
                    json.dumps(tokens, sort_keys=True),
                    cost_usd,
                    trajectory_path,
                    episode_id,
                ),
            )

    def fail_episode(self, episode_id: int, error: str) -> None:
        """Mark an episode ``failed`` (an infrastructure fault or an interrupt)."""
        with self._tx() as c:
            c.execute(
                "UPDATE episodes SET status = 'failed', finished_at = ?, error = ? "
                "WHERE episode_id = ?",
                (time.time(), error, episode_id),
            )

    # ----- reading ---------------------------------------------------------------------------
    def episodes(
        self,
        *,
        status: EpisodeStatus | None = None,
        run_id: str | None = None,
        with_score_rows: bool = True,
    ) -> list[EpisodeRecord]:
        """Stored episodes, oldest first, optionally filtered by status and run id."""
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        sql = "SELECT * FROM episodes"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY episode_id"
        with self._reading():
            rows = self._conn.execute(sql, params).fetchall()
            score_rows: dict[int, list[ScoreRowRecord]] = {}
            if with_score_rows and rows:
                for r in self._conn.execute("SELECT * FROM score_rows ORDER BY episode_id, seq"):
                    score_rows.setdefault(int(r["episode_id"]), []).append(
                        ScoreRowRecord(
                            timestamp=float(r["timestamp"]),
                            elapsed_s=float(r["elapsed_s"]),
                            raw=r["raw"],
                            normalized=float(r["normalized"]),
                            valid=bool(r["valid"]),
                            message=str(r["message"]),
                            solution_id=r["solution_id"],
                            seq=int(r["seq"]),
                        )
                    )
        return [_record(r, tuple(score_rows.get(int(r["episode_id"]), ()))) for r in rows]

    # ----- rescores --------------------------------------------------------------------------
    def add_rescores(self, rows: Sequence[RescoreRecord]) -> None:
        """Store rescored rows (one transaction); a row for an (episode, seq, time) already
        stored is an error, so nothing is ever written over."""
        if not rows:
            return
        with self._tx() as c:
            c.executemany(
                "INSERT INTO rescores (episode_id, seq, rescored_at, scorer_version, "
                "anchors_json, sandbox, raw, normalized, valid, message, hardware) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.episode_id,
                        r.seq,
                        r.rescored_at,
                        r.scorer_version,
                        json.dumps(r.anchors, sort_keys=True),
                        r.sandbox,
                        _finite_or_none(r.raw),
                        float(r.normalized),
                        int(bool(r.valid)),
                        r.message,
                        r.hardware,
                    )
                    for r in rows
                ],
            )

    def rescores(
        self, *, episode_id: int | None = None, run_id: str | None = None
    ) -> list[RescoreRecord]:
        """Stored rescores, by episode, then time, then score row; optionally of one episode
        or one run."""
        sql = "SELECT s.* FROM rescores s"
        params: list[Any] = []
        where: list[str] = []
        if run_id is not None:
            sql += " JOIN episodes e ON e.episode_id = s.episode_id"
            where.append("e.run_id = ?")
            params.append(run_id)
        if episode_id is not None:
            where.append("s.episode_id = ?")
            params.append(episode_id)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY s.episode_id, s.rescored_at, s.seq"
        with self._reading():
            rows = self._conn.execute(sql, params).fetchall()
        return [
            RescoreRecord(
                episode_id=int(r["episode_id"]),
                seq=int(r["seq"]),
                rescored_at=float(r["rescored_at"]),
                scorer_version=str(r["scorer_version"]),
                anchors=json.loads(r["anchors_json"]),
                sandbox=str(r["sandbox"]),
                raw=r["raw"],
                normalized=float(r["normalized"]),
                valid=bool(r["valid"]),
                message=str(r["message"]),
                hardware=str(r["hardware"] or ""),
            )
            for r in rows
        ]

    def runs(self) -> list[dict[str, Any]]:
        """All runs with their planned and finished episode counts, oldest first."""
        with self._reading():
            rows = self._conn.execute(
                "SELECT r.run_id, r.env_id, r.agent, r.created_at, r.episodes_planned, "
                "SUM(e.status = 'finished') AS finished, SUM(e.status = 'failed') AS failed, "
                "SUM(e.status = 'running') AS running FROM runs r LEFT JOIN episodes e "
                "ON e.run_id = r.run_id GROUP BY r.run_id ORDER BY r.created_at"
            ).fetchall()
        return [{k: (r[k] if r[k] is not None else 0) for k in r.keys()} for r in rows]  # noqa: SIM118


def _solution_id(value: Any) -> str | None:
    """A score row's solution id as stored: a sha256 hex string or NULL."""
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value
    return None


def _record(r: sqlite3.Row, score_rows: tuple[ScoreRowRecord, ...]) -> EpisodeRecord:
    return EpisodeRecord(
        episode_id=int(r["episode_id"]),
        run_id=str(r["run_id"]),
        episode_index=int(r["episode_index"]),
        status=r["status"],
        env_id=str(r["env_id"]),
        agent=str(r["agent"]),
        task_version=str(r["task_version"]),
        scale=str(r["scale"]),
        hidden_score=bool(r["hidden_score"]),
        aggregation=str(r["aggregation"]),
        package_version=str(r["package_version"]),
        hardware=str(r["hardware"]),
        make_kwargs=json.loads(r["make_kwargs_json"]),
        budgets=json.loads(r["budgets_json"]),
        seed=r["seed"],
        anchors=None if r["anchors_json"] is None else json.loads(r["anchors_json"]),
        resources=None if r["resources_json"] is None else json.loads(r["resources_json"]),
        started_at=float(r["started_at"]),
        finished_at=r["finished_at"],
        normalized_score=r["normalized_score"],
        raw_score=r["raw_score"],
        total_reward=r["total_reward"],
        steps=r["steps"],
        wall_time_s=r["wall_time_s"],
        end_reason=r["end_reason"],
        tokens=json.loads(r["tokens_json"]) if r["tokens_json"] else {},
        cost_usd=r["cost_usd"],
        trajectory_path=r["trajectory_path"],
        error=r["error"],
        score_rows=score_rows,
    )


class StoreRecorder(gym.Wrapper[Any, Any, Any, Any]):
    """Copies an episode's anchors and score log rows into a :class:`RunStore` as they happen.

    Wrap the env (outermost, over any budget wrappers) before :func:`rebench_gym.rollout`. On
    ``reset`` it stores ``info["anchors"]`` and ``info["resources"]``; after every ``step`` it
    stores the score log rows added since the last step (read from the unwrapped env, so
    hidden-score runs keep their real numbers in the store while the agent sees validity only).

    It also gives the env the store's :class:`~rebench_gym.results.solutions.SolutionKeeper`
    (``<store>.solutions/``), so every score call keeps the solution it scored and its row
    names it (``rebench rescore`` scores it again later).

    Args:
        env: The env to record.
        store: The store to write to.
        episode_id: The episode row (from :meth:`RunStore.begin_episode`).
        keep_solutions: Give the env the store's solution keeper.
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        store: RunStore,
        episode_id: int,
        *,
        keep_solutions: bool = True,
    ) -> None:
        super().__init__(env)
        self.store = store
        self.episode_id = episode_id
        self._stored = 0
        if keep_solutions and hasattr(env.unwrapped, "solution_keeper"):
            from rebench_gym.results.solutions import keeper_for_store

            env.unwrapped.solution_keeper = keeper_for_store(store.path)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._stored = 0
        anchors = info.get("anchors")
        resources = info.get("resources")
        self.store.set_anchors(
            self.episode_id,
            anchors if isinstance(anchors, dict) else None,
            resources if isinstance(resources, dict) else None,
        )
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        out = self.env.step(action)
        self._flush()
        return out

    def _flush(self) -> None:
        log = getattr(self.env.unwrapped, "score_log", None)
        rows = getattr(log, "rows", None)
        if rows is None or len(rows) <= self._stored:
            return
        new = [r.to_dict() for r in rows[self._stored :]]
        self.store.add_score_rows(self.episode_id, new, start_seq=self._stored)
        self._stored = len(rows)
