"""Score kept solutions again (``rebench rescore``), without running the agent again.

After a scorer fix, or once a machine's anchors are measured again, the solutions an agent
produced can be scored again: every score call of a recorded run kept the exact ``solution/``
it scored (:mod:`rebench_gym.results.solutions`), and :func:`rescore_run` scores each of them
with the current scorer and the chosen anchors.

How a kept solution is scored: a new env of the episode's task is made with the episode's
recorded ``gym.make`` arguments (scale, task options, timeouts), in a fresh sandbox of the chosen
provider (bwrap by default, whatever the run used), and reset; the kept solution is written as
the workspace's ``solution/`` and the env's own score call scores it. So a rescore takes the
path a live score call takes: the snapshot with its checks, the task's scorer in the task's
sandbox and resources, the task's services. The env is reset before each kept solution, so
nothing a solution's run leaves behind meets the next one.

The results go to the store's ``rescores`` table beside the original score rows, never over
them, each marked with the :func:`scorer_version` that produced it, the anchors, the sandbox
and this machine's hardware fingerprint. :func:`rescored_episodes` turns the latest rescore of
each episode into episode records the leaderboard reads (``rebench leaderboard --rescored``).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import gymnasium as gym

from rebench_gym.errors import UsageError
from rebench_gym.results.solutions import SolutionKeeper, keeper_for_store
from rebench_gym.results.store import EpisodeRecord, RescoreRecord, RunStore, ScoreRowRecord
from rebench_gym.scoring import Anchors
from rebench_gym.tasks import Scale, Task

if TYPE_CHECKING:
    from rebench_gym.env import ReBenchEnv

AnchorsChoice = Literal["calibrate", "paper"]
ANCHOR_CHOICES: tuple[AnchorsChoice, ...] = ("calibrate", "paper")


def scorer_version(task: Task) -> str:
    """The version of ``task``'s scorer: ``TASK_VERSION/PACKAGE_VERSION/CODE_HASH``.

    The task's version (``task.yaml``), rebench_gym's version, and the first 12 hex digits of
    :meth:`Task.fingerprint`, a hash of every file of the task's package (scorer, runner,
    ``task.yaml``), so an edit to the scoring code changes it even when no version was bumped.
    Shared code outside the task's package (the sandbox, the LM kit) is covered by the package
    version only.
    """
    from rebench_gym import __version__

    return f"{task.spec.version}/{__version__}/{task.fingerprint()[:12]}"


def rescore_anchors(
    task: Task, scale: Scale, choice: AnchorsChoice, cache_dir: Path | None = None
) -> Anchors:
    """The anchors a rescore normalizes with.

    ``calibrate``: what a new episode on this machine gets (:func:`get_anchors`: the machine's
    calibrated anchors, measured now when the task needs them and none are cached, else the
    task's fixed ones). ``paper``: the task's fixed anchors for ``scale`` (task.yaml's paper
    numbers or documented constants, or the kernel task's ``paper_anchors``).

    Raises:
        UsageError: ``paper`` for a task and scale without fixed anchors.
    """
    if choice == "calibrate":
        from rebench_gym.calibration import get_anchors

        return get_anchors(task, scale, cache_dir=cache_dir)
    if choice != "paper":
        raise UsageError(f"--anchors must be one of {ANCHOR_CHOICES}, not {choice!r}")
    fixed = task.paper_anchors(scale)
    if fixed is not None:
        return fixed
    extra = getattr(task.params(scale), "paper_anchors", None)
    if isinstance(extra, dict) and "start" in extra and "reference" in extra:
        return Anchors(float(extra["start"]), float(extra["reference"]), "paper")
    raise UsageError(
        f"{task.spec.env_id} has no paper anchors at scale {scale!r}: its anchors are measured "
        "on the machine; use --anchors calibrate"
    )


@dataclasses.dataclass(frozen=True)
class RescoredRow:
    """One kept solution scored again, with the row it was first scored in."""

    episode_index: int
    original: ScoreRowRecord
    rescore: RescoreRecord


def _score_kept(
    env: gym.Env[Any, Any], keeper: SolutionKeeper, solution_id: str
) -> tuple[float, float, bool, str]:
    """Reset ``env``, put the kept solution in as ``solution/`` and score it."""
    base = cast("ReBenchEnv", env.unwrapped)
    env.reset()
    solution = base.workspace / "solution"
    if solution.is_dir() and not solution.is_symlink():
        shutil.rmtree(solution)
    elif solution.exists() or solution.is_symlink():
        solution.unlink()
    keeper.materialize(solution_id, solution)
    base.score_now()
    row = base.score_log.rows[-1]
    return row.raw, row.normalized, row.valid, row.message


def rescore_episode(
    store: RunStore,
    episode: EpisodeRecord,
    *,
    anchors: AnchorsChoice = "calibrate",
    sandbox: str | None = None,
    task_options: dict[str, Any] | None = None,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[RescoredRow]:
    """Score the kept solutions of ``episode`` again and store the results (one transaction).

    Rows whose solution was not kept (none, too large, recorded before solutions were kept)
    are skipped; a kept solution that is missing or damaged in the keeper raises
    :class:`~rebench_gym.results.solutions.SolutionStoreError` before anything is stored.
    """
    from rebench_gym.calibration import hardware_fingerprint
    from rebench_gym.envs.registration import task_name
    from rebench_gym.sandbox import default_sandbox_name
    from rebench_gym.tasks import get_task

    say = progress or (lambda _line: None)
    keeper = keeper_for_store(store.path)
    kept = [r for r in episode.score_rows if r.solution_id is not None]
    for r in kept:  # every kept solution must be readable before any is scored
        keeper.manifest(str(r.solution_id))
    if not kept:
        return []
    task = get_task(task_name(episode.env_id))
    scale: Scale = "mini" if episode.scale == "mini" else "full"
    chosen = rescore_anchors(task, scale, anchors, cache_dir)
    provider = sandbox or default_sandbox_name()
    kwargs = dict(episode.make_kwargs)
    kwargs.update(sandbox=provider, anchors=(chosen.start, chosen.reference))
    if cache_dir is not None:
        kwargs["cache_dir"] = str(cache_dir)
    if task_options:
        kwargs["task_options"] = {**dict(kwargs.get("task_options") or {}), **task_options}
    version = scorer_version(task)
    hardware = hardware_fingerprint()
    when = time.time()
    out: list[RescoredRow] = []
    env = gym.make(episode.env_id, **kwargs)
    try:
        for row in kept:
            say(
                f"episode {episode.episode_index} of run {episode.run_id}: scoring the kept "
                f"solution of score call {row.seq} ({provider})"
            )
            raw, normalized, valid, message = _score_kept(env, keeper, str(row.solution_id))
            record = RescoreRecord(
                episode_id=episode.episode_id,
                seq=row.seq,
                rescored_at=when,
                scorer_version=version,
                anchors=chosen.to_dict(),
                sandbox=provider,
                raw=raw if math.isfinite(raw) else None,
                normalized=normalized,
                valid=valid,
                message=message,
                hardware=hardware,
            )
            out.append(RescoredRow(episode.episode_index, row, record))
    finally:
        env.close()
    store.add_rescores([r.rescore for r in out])
    return out


def rescore_run(
    store: RunStore,
    run_id: str,
    *,
    episode: int | None = None,
    anchors: AnchorsChoice = "calibrate",
    sandbox: str | None = None,
    task_options: dict[str, Any] | None = None,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[RescoredRow]:
    """Rescore the finished episodes of ``run_id`` (or only its episode index ``episode``).

    ``run_id`` may also be a unique prefix of a run id, or ``latest``, as in ``rebench view``.

    Raises:
        UsageError: no such run, or no finished episode with that index.
    """
    from rebench_gym.results.transcript import find_run

    run_id = find_run(store, run_id)
    episodes = [
        ep
        for ep in store.episodes(status="finished", run_id=run_id)
        if episode is None or ep.episode_index == episode
    ]
    if not episodes:
        which = f"episode {episode} of run {run_id!r}" if episode is not None else run_id
        raise UsageError(f"no finished episode to rescore: {which} in {store.path}")
    out: list[RescoredRow] = []
    for ep in episodes:
        out += rescore_episode(
            store,
            ep,
            anchors=anchors,
            sandbox=sandbox,
            task_options=task_options,
            cache_dir=cache_dir,
            progress=progress,
        )
    return out


def latest_rescores(rescores: Sequence[RescoreRecord]) -> dict[int, list[RescoreRecord]]:
    """Each episode's most recent rescore (its rows, by score call)."""
    latest: dict[int, float] = {}
    for r in rescores:
        latest[r.episode_id] = max(latest.get(r.episode_id, r.rescored_at), r.rescored_at)
    out: dict[int, list[RescoreRecord]] = {}
    for r in sorted(rescores, key=lambda r: (r.episode_id, r.seq)):
        if r.rescored_at == latest[r.episode_id]:
            out.setdefault(r.episode_id, []).append(r)
    return out


def rescored_episodes(
    episodes: Sequence[EpisodeRecord], rescores: Sequence[RescoreRecord]
) -> tuple[list[EpisodeRecord], list[str]]:
    """The episodes as their latest rescore scored them, for the leaderboard; and warnings.

    An episode's score rows become its rescored rows (with the original times, so score over
    time still reads), its score the task's aggregation of them (best valid, or last valid for
    ScalingLaw); a score call whose solution was not kept counts as invalid. Task version,
    hardware and anchors become the rescore's (scorer version, this machine, chosen anchors),
    so the leaderboard never merges them with original scores. Episodes without a rescore are
    left out (a warning counts them).
    """
    latest = latest_rescores(rescores)
    out: list[EpisodeRecord] = []
    missing = 0
    for ep in episodes:
        rows = latest.get(ep.episode_id)
        if not rows:
            if ep.status == "finished":
                missing += 1
            continue
        by_seq = {r.seq: r for r in rows}
        new_rows: list[ScoreRowRecord] = []
        for orig in ep.score_rows:
            r = by_seq.get(orig.seq)
            new_rows.append(
                dataclasses.replace(
                    orig,
                    raw=r.raw if r is not None else None,
                    normalized=r.normalized if r is not None else 0.0,
                    valid=r.valid if r is not None else False,
                    message=r.message if r is not None else "not kept: not rescored",
                )
            )
        valid = [r for r in new_rows if r.valid]
        counting = (
            None
            if not valid
            else valid[-1]
            if ep.aggregation == "last"
            else max(valid, key=lambda r: r.normalized)
        )
        out.append(
            dataclasses.replace(
                ep,
                score_rows=tuple(new_rows),
                normalized_score=counting.normalized if counting is not None else 0.0,
                raw_score=counting.raw if counting is not None else None,
                task_version=rows[0].scorer_version,
                hardware=rows[0].hardware or ep.hardware,
                anchors=rows[0].anchors,
            )
        )
    warnings = []
    if missing:
        warnings.append(
            f"{missing} finished episode(s) have no rescore and are left out of the rescored "
            "leaderboard (`rebench rescore RUN` scores them again)"
        )
    return out, warnings


__all__ = [
    "ANCHOR_CHOICES",
    "AnchorsChoice",
    "RescoredRow",
    "latest_rescores",
    "rescore_anchors",
    "rescore_episode",
    "rescore_run",
    "rescored_episodes",
    "scorer_version",
]
