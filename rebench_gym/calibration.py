"""Anchors for time-based tasks, measured on this machine and cached.

``calibrate`` scores the starting and the reference solution a few times with the task's own
scorer and keeps the medians. The cache key holds the task fingerprint (version and files), the
scale and a hardware fingerprint, so other machines or task versions never reuse the numbers.
Paper anchors are kept beside calibrated ones and reported in ``info["anchors"]``.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import secrets
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rebench_gym.cache import cache_root, file_lock, read_json, write_json_atomic
from rebench_gym.errors import AssetsError
from rebench_gym.sandbox import make_sandbox
from rebench_gym.sandbox.leftovers import scratch_dir
from rebench_gym.scoring import Anchors
from rebench_gym.tasks import Scale, ScoreContext, Task


def hardware_fingerprint() -> str:
    """CPU model, core count, memory and GPU names: what timing anchors depend on."""
    parts = [platform.machine(), str(os.cpu_count())]
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                parts.append(line.split(":", 1)[1].strip())
                break
    except OSError:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            parts += [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:
        pass
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def anchors_path(task: Task, scale: Scale, cache: Path) -> Path:
    key = f"{task.spec.name}-{scale}-{task.fingerprint()}-{hardware_fingerprint()}.json"
    return cache / "anchors" / key


def load_calibrated(task: Task, scale: Scale, cache: Path) -> Anchors | None:
    data = read_json(anchors_path(task, scale, cache))
    if not isinstance(data, dict):
        return None
    try:
        return Anchors(
            float(data["start"]),
            float(data["reference"]),
            "calibrated",
            str(data.get("details", "")),
        )
    except (KeyError, TypeError, ValueError):
        return None


def score_files(
    task: Task,
    scale: Scale,
    files: dict[str, bytes],
    *,
    sandbox: str = "local",
    cache: Path | None = None,
    options: dict[str, Any] | None = None,
) -> float:
    """Score a solution given as files (paths relative to ``solution/``); NaN if invalid.

    ``options`` are the env's ``task_options`` (e.g. the LLM endpoint of RustCodecontests).
    """
    root = scratch_dir("calib")
    try:
        solution = root / "solution"
        workspace = root / "workspace"
        work = root / "work"
        for d in (solution, workspace, work):
            d.mkdir()
        for rel, data in files.items():
            (solution / rel).parent.mkdir(parents=True, exist_ok=True)
            (solution / rel).write_bytes(data)
        # the task's resources: a scored run gets the memory limit and CPU set it gets in an
        # episode, so the anchors are measured as episodes are scored
        sb = make_sandbox(sandbox, workspace, resources=task.spec.scale(scale).resources)
        try:
            result = task.score(
                ScoreContext(
                    solution=solution,
                    sandbox=sb,
                    scale=scale,
                    timeout_s=task.spec.scale(scale).score_timeout_s,
                    seed=secrets.randbits(63),
                    work_dir=work,
                    cache=cache_root(cache),
                    options=dict(options or {}),
                )
            )
        finally:
            sb.close()
        return result.raw if result.valid else math.nan
    finally:
        shutil.rmtree(root, ignore_errors=True)


#: how often the start is scored when task.yaml fixes the reference (such scorers are
#: deterministic on one machine; they differ between CPUs)
FIXED_REFERENCE_REPEATS = 2


def calibrate(
    task: Task,
    scale: Scale,
    *,
    repeats: int = 5,
    cache_dir: Path | None = None,
    progress: bool = True,
    options: dict[str, Any] | None = None,
) -> Anchors:
    """Measure start and reference ``repeats`` times each (interleaved) and cache the medians.

    A progress bar goes to stderr unless ``progress`` is False. ``options`` (the env's
    ``task_options``, e.g. an LLM endpoint) are passed to the scorer; anchors measured with
    options are returned but not cached, since the cache key does not hold them.
    """
    cache = cache_root(cache_dir)
    start_files = task.starting_files(scale, cache)
    ref_files = task.reference_files(scale)
    starts: list[float] = []
    refs: list[float] = []
    fixed_reference = task.fixed_reference_anchor(scale)
    if fixed_reference is not None:  # only the start is measured (see the task.yaml)
        repeats = min(repeats, FIXED_REFERENCE_REPEATS)
    with tqdm(
        total=(1 if fixed_reference is not None else 2) * repeats,
        desc=f"calibrating {task.spec.env_id} ({scale})",
        unit="score",
        file=sys.stderr,
        disable=not progress,
    ) as bar:
        for _ in range(repeats):
            starts.append(score_files(task, scale, start_files, cache=cache, options=options))
            bar.update()
            if fixed_reference is None:
                refs.append(score_files(task, scale, ref_files, cache=cache, options=options))
                bar.update()
    if fixed_reference is not None:
        refs = [fixed_reference]
    if any(math.isnan(v) for v in starts + refs):
        raise AssetsError(
            f"calibration of {task.spec.env_id} failed: start {starts}, reference {refs} "
            "(NaN = the scorer rejected the solution)"
        )
    anchors = Anchors(
        statistics.median(starts),
        statistics.median(refs),
        "calibrated",
        f"median of {repeats}: start {starts}, reference {refs}"
        if fixed_reference is None
        else f"start: median of {repeats} on this machine {starts}; reference: task.yaml's "
        f"constant {fixed_reference}",
    )
    if options:
        return anchors
    write_json_atomic(
        anchors_path(task, scale, cache),
        {
            "start": anchors.start,
            "reference": anchors.reference,
            "details": anchors.details,
            "hardware": hardware_fingerprint(),
            "task_version": task.spec.version,
        },
    )
    return anchors


def get_anchors(
    task: Task,
    scale: Scale,
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> Anchors:
    """The anchors an episode uses: calibrated where cached or required, else the fixed ones.

    Tasks whose anchors are time-based at this scale are calibrated on first use (once per
    machine and task version; concurrent processes wait for one another).
    """
    cache = cache_root(cache_dir)
    found = load_calibrated(task, scale, cache)
    if found is not None:
        return found
    fixed = task.paper_anchors(scale)
    if fixed is not None:
        return fixed
    with file_lock(cache / "anchors" / f".{task.spec.name}-{scale}.lock"):
        found = load_calibrated(task, scale, cache)
        if found is not None:
            return found
        return calibrate(task, scale, cache_dir=cache, progress=progress)
