"""Rehearsal: a task's full-scale code path, run on CPU with tiny stand-ins in the real formats.

``rehearse(env_id)`` asks the task folder's ``rehearse.py`` for its stand-ins (``stand_ins(root,
progress) -> StandIns``: files in the formats of the real full-scale inputs, written under an
empty temporary directory, and overrides of the full-scale parameters that only shrink sizes and
switch the device to CPU), derives the task with those overrides, prepares its full-scale assets
from the stand-ins into a temporary cache, and runs an episode at scale ``"full"`` in the default
sandbox: instructions rendered, workspace built, the starting solution scored, the reference
solution (``reference/full/``, through the task's reference actions) run and scored again.

It passes (``ok``) when both scores are valid and the reference beats the start in the task's
direction. Everything temporary is removed afterwards. ``rebench rehearse ID [--json]`` calls it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rebench_gym.errors import ReBenchError, UsageError
from rebench_gym.sandbox.resources import machine_cpus
from rebench_gym.scoring import ScoreResult
from rebench_gym.tasks.base import Task

ProgressFn = Callable[[str], None]

#: the fields of a ScaleSpec an override may replace directly (everything else is a param)
#: the most memory and workspace disk (GiB) a rehearsal's sandbox gets (full scale declares the
#: paper's 100-400 GB, which this machine does not have)
REHEARSAL_LIMITS = {"memory_gb": 12.0, "disk_gb": 20.0}
_SPEC_FIELDS = ("resources", "time_budget_s", "score_timeout_s", "anchors")


class RehearsalError(ReBenchError, RuntimeError):
    """A rehearsal could not run to its end (a stand-in, asset build or reference step failed)."""


class RehearsalUnavailable(RehearsalError):
    """This machine lacks what the task's full scale needs to run at all (a library stack, a
    checkout, CUDA); the message names each missing part. Nothing was scored."""


@dataclass
class StandIns:
    """What a task's ``rehearse.stand_ins`` returns.

    Attributes:
        source: the ``--source DIR`` of the task's full-scale asset build, in the real formats
            (None: the task builds its full-scale assets without one).
        params: overrides of the task's full-scale params (device ``"cpu"``, small sizes,
            ``gpus`` 0, ...); the keys ``hardware``, ``time_budget_s``, ``score_timeout_s`` and
            ``anchors`` replace those fields of the scale, ``gpus`` the hardware's GPU count.
        task_options: the env's ``task_options`` (e.g. a local OpenAI-API endpoint).
        closers: called after the rehearsal (stop servers the stand-ins started).
        not_comparable: why the reference cannot be expected to beat the start on CPU (e.g.
            Triton kernels run in Triton's interpreter, which emulates a GPU in Python); then
            ``ok`` needs only both scores valid, and the report says so under ``note``. Empty
            (the default): the reference must beat the start.
    """

    source: Path | None = None
    params: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)
    not_comparable: str = ""


def write_openwebtext(source: Path, train_docs: int, val_docs: int) -> int:
    """OpenWebText stand-ins: ``source/openwebtext/{train,val}.bin`` in nanoGPT's format.

    Flat uint16 token ids, as nanoGPT's ``prepare.py`` writes them; the text is the package's
    synthetic corpus (which has structure a model can learn) in its word vocabulary rather than
    GPT-2's BPE. Returns the vocabulary size (every id is below it).
    """
    from rebench_gym.lmkit.corpus import documents
    from rebench_gym.lmkit.data import write_tokens
    from rebench_gym.lmkit.tokenizer import WordTokenizer

    tok = WordTokenizer.default()
    out = source / "openwebtext"
    out.mkdir(parents=True, exist_ok=True)
    write_tokens(out / "train.bin", tok.encode_documents(documents(train_docs, 101)))
    write_tokens(out / "val.bin", tok.encode_documents(documents(val_docs, 102)))
    return int(tok.vocab_size)


def derive_task(task: Task, changes: dict[str, Any]) -> Task:
    """``task`` with its full-scale spec changed by ``changes`` (the rehearsal's overrides).

    Uses ``Task.with_params`` where the task class has it; otherwise copies the task and
    replaces its full :class:`~rebench_gym.tasks.base.ScaleSpec`. A rehearsal runs on CPU, on
    this machine: no GPU, and memory and disk within :data:`REHEARSAL_LIMITS`.
    """
    changes = dict(changes)
    spec = task.spec.scale("full")
    resources = dataclasses.replace(
        spec.resources,
        gpus=int(changes.pop("gpus", 0)),
        cpus=min(spec.resources.cpus, float(len(machine_cpus()))),
        memory_gb=min(spec.resources.memory_gb, REHEARSAL_LIMITS["memory_gb"]),
        disk_gb=min(spec.resources.disk_gb, REHEARSAL_LIMITS["disk_gb"]),
    )
    changes["resources"] = resources
    with_params = getattr(task, "with_params", None)
    if callable(with_params):
        derived = with_params("full", **changes)
        if not isinstance(derived, Task):  # pragma: no cover - a contract violation
            raise UsageError(f"{type(task).__name__}.with_params returned no Task")
        return derived
    fields = {k: changes.pop(k) for k in _SPEC_FIELDS if k in changes}
    unknown = sorted(set(changes) - set(spec.params))
    if unknown:
        raise UsageError(f"{task.spec.env_id} has no full-scale parameter(s) {', '.join(unknown)}")
    new_scale = dataclasses.replace(spec, params={**spec.params, **changes}, **fields)
    derived = _shallow_copy(task)
    derived.spec = dataclasses.replace(task.spec, scales={**task.spec.scales, "full": new_scale})
    return derived


def _shallow_copy(task: Task) -> Task:
    new = object.__new__(type(task))
    new.__dict__.update(task.__dict__)
    return new


def _stand_ins_module(task: Task) -> Any:
    package = type(task).__module__.rpartition(".")[0]
    name = f"{package}.rehearse"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise
        raise UsageError(
            f"{task.spec.env_id} has no rehearsal yet (no {name.replace('.', '/')}.py)"
        ) from None


def _task_for(env_id: str) -> Task:
    from rebench_gym import ENV_IDS
    from rebench_gym.tasks import get_task

    if env_id not in ENV_IDS:
        raise UsageError(f"unknown env id {env_id!r}; known: {', '.join(sorted(ENV_IDS))}")
    return get_task(ENV_IDS[env_id])


def _row(result: ScoreResult, normalized: float | None, seconds: float) -> dict[str, Any]:
    raw = None if math.isnan(result.raw) else float(result.raw)
    return {
        "raw": raw,
        "normalized": normalized,
        "valid": bool(result.valid),
        "message": result.message,
        "seconds": round(seconds, 2),
    }


def rehearse(
    env_id: str,
    *,
    progress: ProgressFn | None = None,
    workdir: Path | None = None,
    sandbox: str | None = None,
) -> dict[str, Any]:
    """Run ``env_id``'s full-scale code path on CPU with tiny stand-ins; see the module docstring.

    Args:
        env_id: a ``RE-Bench/*-v0`` id.
        progress: called with one line per stage (and the asset builders' progress).
        workdir: where the temporary directory goes (default: the system's).
        sandbox: the env's sandbox (default: the env's default); ``"docker"`` runs the
            episode in the task's full-scale image (``rebench image build ID --scale full``),
            with no GPU.

    Returns:
        ``{"id", "task", "start": {raw, normalized, valid, message, seconds}, "reference":
        {...}, "reference_better", "ok", "seconds"}`` (and ``note`` where the stand-ins say
        the two are not comparable on CPU); ``ok`` is True when both are valid and the
        reference is better than the start in the task's direction (or not comparable).

    Raises:
        UsageError: unknown id, or the task has no ``rehearse.py``.
        RehearsalError: a stage failed (its message says which and why).
    """
    say = progress or (lambda _m: None)
    base = _task_for(env_id)
    module = _stand_ins_module(base)
    began = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="rebench-rehearse-", dir=workdir))
    stand: StandIns | None = None
    try:
        root = tmp / "stand_ins"
        root.mkdir()
        say(f"{env_id}: writing stand-ins")
        try:
            stand = module.stand_ins(root, progress)
        except ReBenchError:
            raise
        except Exception as e:
            raise RehearsalError(
                f"{env_id}: building the stand-ins failed: {type(e).__name__}: {e}"
            ) from e
        assert stand is not None
        task = derive_task(base, stand.params)
        cache = tmp / "cache"
        cache.mkdir()
        say(f"{env_id}: preparing full-scale assets from the stand-ins")
        kwargs: dict[str, Any] = {"progress": progress}
        if stand.source is not None:
            if "source" not in inspect.signature(task.prepare_assets).parameters:
                raise UsageError(f"{env_id} takes no source for its full-scale assets")
            kwargs["source"] = stand.source
        try:
            task.prepare_assets("full", cache, **kwargs)
        except ReBenchError:
            raise
        except Exception as e:
            raise RehearsalError(
                f"{env_id}: preparing the full-scale assets failed: {type(e).__name__}: {e}"
            ) from e
        report = _episode(env_id, task, cache, stand, say, sandbox)
        report["seconds"] = round(time.monotonic() - began, 1)
        return report
    finally:
        for close in reversed(stand.closers if stand is not None else []):
            with contextlib.suppress(Exception):
                close()
        shutil.rmtree(tmp, ignore_errors=True)


def _episode(
    env_id: str,
    task: Task,
    cache: Path,
    stand: StandIns,
    say: ProgressFn,
    sandbox: str | None = None,
) -> dict[str, Any]:
    from rebench_gym.env import ReBenchEnv

    # Normalized against the task's fixed full-scale anchors where it has them (a comparison
    # only: the stand-ins are not the real inputs); time-based anchors are not calibrated here.
    fixed = task.paper_anchors("full")
    env = ReBenchEnv(
        task=task,
        scale="full",
        cache_dir=str(cache),
        task_options=stand.task_options,
        anchors=None if fixed is not None else (0.0, 1.0),
        sandbox=sandbox,
    )
    try:
        say(f"{env_id}: building the workspace and rendering the instructions")
        obs, _info = env.reset()
        left = _unfilled(task, obs["terminal"])
        if not obs["terminal"].strip() or left:
            raise RehearsalError(f"{env_id}: the instructions did not render ({left} left)")
        say(f"{env_id}: scoring the starting solution")
        t0 = time.monotonic()
        start = env.score_now()
        start_row = _row(start, _normalized(env, fixed), time.monotonic() - t0)
        say(f"{env_id}: start {start_row['raw']} ({start.message})")
        say(f"{env_id}: running the full-scale reference solution")
        t0 = time.monotonic()
        for action in task.reference_actions("full"):
            _obs, _r, _term, _trunc, info = env.step(action)
            failed = info.get("action_error") or info.get("timed_out") or info.get("exit_code")
            if failed:
                raise RehearsalError(
                    f"{env_id}: a reference step failed ({_describe(action)}): "
                    + _obs["terminal"][-2000:]
                )
        ref = env.score_now()
        ref_row = _row(ref, _normalized(env, fixed), time.monotonic() - t0)
        say(f"{env_id}: reference {ref_row['raw']} ({ref.message})")
    finally:
        env.close()
    better = False
    if start.valid and ref.valid:
        better = ref.raw > start.raw if task.spec.higher_is_better else ref.raw < start.raw
    report: dict[str, Any] = {
        "id": env_id,
        "task": task.spec.name,
        "start": start_row,
        "reference": ref_row,
        "reference_better": better,
        "ok": bool(start.valid and ref.valid and (better or stand.not_comparable)),
    }
    if stand.not_comparable:
        report["note"] = f"start and reference not compared: {stand.not_comparable}"
    return report


def _normalized(env: Any, fixed: Any) -> float | None:
    """The last score row's normalized score, or None without fixed anchors."""
    return None if fixed is None else env.score_log.rows[-1].normalized


def _unfilled(task: Task, text: str) -> str:
    """The task's ``$name`` placeholders left in rendered instructions ('' if none)."""
    names = {*task.spec.scale("full").params, "scale", "time_budget_h", "score_timeout"}
    return " ".join(f"${n}" for n in sorted(names) if f"${n}" in text or f"${{{n}}}" in text)


def _describe(action: str) -> str:
    """A short description of a reference action for an error message."""
    with contextlib.suppress(ValueError):
        data = json.loads(action)
        if isinstance(data, dict):
            if "path" in data:
                return f"{data.get('tool', 'write_file')} {data['path']}"
            if "command" in data:
                return f"bash {str(data['command'])[:200]}"
    return action[:200]
