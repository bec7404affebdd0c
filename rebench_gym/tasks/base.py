"""The Task protocol: a task is data (``task.yaml``, instructions, files) plus small hooks.

Each task subpackage holds ``task.yaml``, ``instructions.md``, ``workspace/`` (the starting files,
copied into the agent's workspace), ``reference/<scale>/`` (the reference solution, never put in
the workspace) and a :class:`Task` subclass that scores.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import hashlib
import logging
import shutil
import string
import subprocess
import sys
import time
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import yaml

from rebench_gym.cache import COMPLETE, build_once
from rebench_gym.errors import AssetsError, HardwareError, UsageError
from rebench_gym.sandbox.base import Bind, Sandbox
from rebench_gym.sandbox.resources import Resources
from rebench_gym.scoring import Aggregation, Anchors, ScoreResult

_log = logging.getLogger(__name__)

Scale = Literal["full", "mini"]
SCALES: tuple[Scale, ...] = ("full", "mini")
ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class TaskParams(Mapping[str, Any]):
    """Base of a task's typed parameters for one scale (the scale's task-specific keys in
    ``task.yaml``).

    A task declares one frozen dataclass per scale that derives from this and lists
    :attr:`Task.params_types`; ``task.yaml`` is validated against it (unknown keys, missing
    keys and wrong types are errors naming the file and the key). Read fields as attributes;
    the mapping interface (``params["x"]``) serves generic code (instructions templates).
    """

    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def parse(cls, data: Mapping[str, Any], where: str) -> TaskParams:
        """Validate ``data`` (a scale's task-specific keys) into an instance.

        Raises:
            UsageError: ``{where}: unknown key 'x'``, ``missing key``, or a wrong type.
        """
        hints = typing.get_type_hints(cls)
        declared = {f.name: f for f in fields(cls)}
        for key in data:
            if key not in declared:
                known = ", ".join(sorted(declared)) or "none"
                raise UsageError(f"{where}: unknown key {key!r} (known: {known})")
        values: dict[str, Any] = {}
        for name, f in declared.items():
            if name not in data:
                if f.default is MISSING and f.default_factory is MISSING:
                    raise UsageError(f"{where}: missing key {name!r}")
                continue
            values[name] = _check_type(data[name], hints[name], f"{where}: key {name!r}")
        return cls(**values)


def _check_type(value: Any, hint: Any, where: str) -> Any:
    """``value`` if it has the type ``hint`` (ints are accepted for floats), else UsageError."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _check_type(value, option, where)
            except UsageError:
                continue
        raise UsageError(f"{where}: {value!r} is not {hint}")
    if hint is Any:
        return value
    if hint is type(None):
        if value is None:
            return value
        raise UsageError(f"{where}: expected null, got {value!r}")
    base = origin or hint
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is int and isinstance(value, bool):
        raise UsageError(f"{where}: expected an integer, got {value!r}")
    if base in (list, tuple) and isinstance(value, list | tuple):
        return value
    if isinstance(base, type) and isinstance(value, base):
        return value
    name = getattr(base, "__name__", str(base))
    raise UsageError(f"{where}: expected {name}, got {type(value).__name__} {value!r}")


#: the keys every scale of every task has (``ScaleSpec`` fields); the rest are the task's params
SCALE_KEYS = (
    "resources",
    "time_budget_s",
    "score_timeout_s",
    "anchors",
    "max_solution_bytes",
    "reference_score_calls",
)
TASK_KEYS = (
    "name",
    "env_id",
    "version",
    "title",
    "original",
    "higher_is_better",
    "aggregation",
    "always_hidden",
    "scales",
)


@dataclass(frozen=True)
class ScaleSpec:
    """What one scale of a task needs and how it is scored.

    Attributes:
        resources: what the sandbox may use (``cpus``, ``memory_gb``, ``disk_gb``, ``gpus``,
            ``gpu_kind``), enforced by every provider (:mod:`rebench_gym.sandbox.resources`).
        time_budget_s: the agent's time budget.
        score_timeout_s: the limit of one score call.
        anchors: ``{"start", "reference", "source"}``, or ``"calibrate"``.
        max_solution_bytes: the largest ``solution/`` a score call copies (bigger is invalid).
        reference_score_calls: how many times the ``reference`` agent scores before submitting.
        params: the task's own parameters (its :attr:`Task.params_types` dataclass).
    """

    resources: Resources
    time_budget_s: float
    score_timeout_s: float
    anchors: dict[str, Any] | str
    #: the task's ``mini_params``/``full_params`` instance (typed ``Any``: it depends on the task)
    params: Any = field(default_factory=TaskParams)
    max_solution_bytes: int = 500 * 1024**2
    reference_score_calls: int = 1

    @property
    def gpus(self) -> int:
        return self.resources.gpus

    @classmethod
    def parse(cls, data: Any, params_type: type[TaskParams], where: str) -> ScaleSpec:
        """Validate one scale's mapping from ``task.yaml``; errors start with ``where``."""
        if not isinstance(data, Mapping):
            raise UsageError(f"{where}: must be a mapping")
        for key in ("resources", "time_budget_s", "score_timeout_s", "anchors"):
            if key not in data:
                raise UsageError(f"{where}: missing key {key!r}")
        resources = data["resources"]
        if not isinstance(resources, Resources):
            resources = Resources.parse(resources, f"{where}: key 'resources'")
        anchors = _check_type(data["anchors"], dict | str, f"{where}: key 'anchors'")
        if isinstance(anchors, str) and anchors != "calibrate":
            raise UsageError(f"{where}: key 'anchors' must be a mapping or 'calibrate'")
        common: dict[str, Any] = {}
        for key in ("max_solution_bytes", "reference_score_calls"):
            if key in data:
                common[key] = _check_type(data[key], int, f"{where}: key {key!r}")
        return cls(
            resources=resources,
            time_budget_s=_check_type(
                data["time_budget_s"], float, f"{where}: key 'time_budget_s'"
            ),
            score_timeout_s=_check_type(
                data["score_timeout_s"], float, f"{where}: key 'score_timeout_s'"
            ),
            anchors=anchors,
            params=params_type.parse({k: v for k, v in data.items() if k not in SCALE_KEYS}, where),
            **common,
        )

    def as_yaml(self) -> dict[str, Any]:
        """This scale as the mapping ``task.yaml`` would hold."""
        out: dict[str, Any] = {k: getattr(self, k) for k in SCALE_KEYS}
        out["resources"] = {
            k: v for k, v in self.resources.to_dict().items() if k in Resources.KEYS
        }
        out.update({f.name: getattr(self.params, f.name) for f in fields(self.params)})
        return out


@dataclass(frozen=True)
class TaskSpec:
    """The contents of a task's ``task.yaml``, validated."""

    name: str
    env_id: str
    version: str
    title: str
    original: str
    higher_is_better: bool
    aggregation: Aggregation
    always_hidden: bool
    scales: dict[str, ScaleSpec]
    #: the file it was read from (named in every error)
    path: Path = field(default=Path("task.yaml"), compare=False)

    @classmethod
    def load(
        cls, path: Path, params_type: Callable[[str], type[TaskParams]] | None = None
    ) -> TaskSpec:
        """Read and validate ``path`` against the task's per-scale parameter types.

        Raises:
            UsageError: unknown or missing keys, wrong types; the message names the file and
                the key (``.../task.yaml: scales.mini: unknown key 'lenght'``).
        """
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise UsageError(f"{path}: cannot read: {e}") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path}: must be a mapping")
        for key in data:
            if key not in TASK_KEYS:
                raise UsageError(f"{path}: unknown key {key!r} (known: {', '.join(TASK_KEYS)})")
        for key in TASK_KEYS:
            if key not in data:
                raise UsageError(f"{path}: missing key {key!r}")
        raw_scales = _check_type(data.pop("scales"), dict, f"{path}: key 'scales'")
        scales = {}
        for scale, s in raw_scales.items():
            if scale not in SCALES:
                raise UsageError(f"{path}: scales: unknown scale {scale!r} (known: full, mini)")
            scales[scale] = ScaleSpec.parse(
                s,
                params_type(scale) if params_type else TaskParams,
                f"{path}: scales.{scale}",
            )
        for key in ("name", "env_id", "version", "title", "original"):
            _check_type(data[key], str, f"{path}: key {key!r}")
        for key in ("higher_is_better", "always_hidden"):
            _check_type(data[key], bool, f"{path}: key {key!r}")
        if data["aggregation"] not in typing.get_args(Aggregation):
            raise UsageError(
                f"{path}: key 'aggregation' must be one of {typing.get_args(Aggregation)}"
            )
        return cls(scales=scales, path=path, **data)

    def scale(self, scale: str) -> ScaleSpec:
        if scale not in self.scales:
            raise UsageError(f"scale must be one of {sorted(self.scales)}, not {scale!r}")
        return self.scales[scale]

    def with_scale(
        self, scale: Scale, params_type: type[TaskParams], changes: Mapping[str, Any]
    ) -> TaskSpec:
        """This spec with ``changes`` applied to ``scale``'s keys, validated as task.yaml is."""
        raw = {**self.scale(scale).as_yaml(), **changes}
        where = f"{self.path}: scales.{scale} (with changes {', '.join(sorted(changes))})"
        new = ScaleSpec.parse(raw, params_type, where)
        return dataclasses.replace(self, scales={**self.scales, scale: new})


@dataclass(frozen=True)
class ScoreContext:
    """Everything a scorer gets for one score call.

    Attributes:
        solution: a private host copy of the agent's ``solution/`` taken when score was called.
        sandbox: the episode's sandbox, used to :meth:`~Sandbox.spawn` the solution isolated.
        scale: "full" or "mini".
        timeout_s: the whole score call must finish within this.
        seed: fresh entropy for this call's random inputs.
        work_dir: a private host scratch directory, removed after the call.
        cache: the asset cache (hidden assets live under it).
        options: the env's ``task_options`` (e.g. an LLM endpoint for the scored run).
        episode: what the scorer keeps between the episode's score calls (None: nothing).
    """

    solution: Path
    sandbox: Sandbox
    scale: Scale
    timeout_s: float
    seed: int
    work_dir: Path
    cache: Path
    options: dict[str, Any] = field(default_factory=dict)
    episode: EpisodeStore | None = None


class EpisodeStore:
    """What a scorer keeps from one score call of an episode to the next (a warm process that
    imported torch once), by name. The env closes everything in it when the episode ends (at
    ``reset`` and ``close``); where a :class:`ScoreContext` has no store (calibration,
    rescoring) a scorer starts afresh on every call.

    Attributes:
        root: a private host directory for the kept things' files, removed with the store.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._items: dict[str, Any] = {}

    def get(self, name: str) -> Any | None:
        return self._items.get(name)

    def put(self, name: str, item: Any) -> None:
        """Keep ``item`` (which has ``close()``), closing what was kept under ``name``."""
        self.discard(name)
        self._items[name] = item

    def discard(self, name: str) -> None:
        item = self._items.pop(name, None)
        if item is not None:
            item.close()

    def close(self) -> None:
        """Close everything kept and remove :attr:`root`; idempotent."""
        for name in list(self._items):
            try:
                self.discard(name)
            except Exception:  # one failing close must not keep the others open
                _log.exception("closing the kept %s failed", name)
        shutil.rmtree(self.root, ignore_errors=True)


#: where a scorer's binds appear inside the sandbox (``Bind(host, f"{SCORE_ROOT}/solution")``)
SCORE_ROOT = "/rbscore"


@dataclass(frozen=True)
class SandboxRun:
    """How a process run by :func:`run_until_deadline` ended.

    Attributes:
        returncode: its exit status (negative: a signal); None when it was stopped at the
            deadline.
        timed_out: it was still running at the deadline and was stopped.
        seconds: from the spawn to its exit (to the deadline when it timed out).
        log: the file that holds its stdout and stderr.
    """

    returncode: int | None
    timed_out: bool
    seconds: float
    log: Path

    @property
    def ok(self) -> bool:
        """It exited with status 0 before the deadline."""
        return not self.timed_out and self.returncode == 0

    def log_tail(self, limit: int = 3000) -> str:
        """The last ``limit`` bytes of its output, as text."""
        from rebench_gym import procs

        return procs.log_tail(self.log, limit)


def run_until_deadline(
    ctx: ScoreContext,
    argv: Sequence[str],
    *,
    binds: Sequence[Bind],
    cwd: str,
    env: Mapping[str, str],
    deadline: float,
    log: Path,
    max_pids: int = 256,
    min_wait_s: float = 0.1,
) -> SandboxRun:
    """Run ``argv`` in the score call's sandbox (:meth:`Sandbox.spawn`) until it exits or the
    monotonic ``deadline`` passes, then stop it and everything it started.

    Its stdout and stderr go to ``log``. Nothing it started outlives this call (background work
    would otherwise finish after the clock stopped). At least ``min_wait_s`` is waited even when
    the deadline has passed already.
    """
    from rebench_gym import procs
    from rebench_gym.tasks import phases

    with open(log, "wb") as out:
        start = time.monotonic()
        proc = ctx.sandbox.spawn(
            list(argv),
            binds=list(binds),
            cwd=cwd,
            env=dict(env),
            stdout=out.fileno(),
            max_pids=max_pids,
        )
    timed_out = False
    try:
        proc.wait(timeout=max(min_wait_s, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        seconds = time.monotonic() - start
        phases.add("sandboxed run", seconds)
        with phases.phase("teardown"):
            procs.stop_scoring_process(proc)
    return SandboxRun(
        returncode=None if timed_out else proc.returncode,
        timed_out=timed_out,
        seconds=seconds,
        log=log,
    )


class EpisodeService(Protocol):
    """A helper a task runs beside the sandbox for one episode (an LLM proxy, a judge).

    The env starts services at ``reset`` (after the workspace is populated), closes them at the
    next ``reset`` and at ``close``, and puts each service's :meth:`info` under
    ``info[service.name]`` on every step.
    """

    #: key of this service's state in the env's ``info``
    name: str

    def info(self) -> dict[str, Any]:
        """The service's machine-readable state (usage, budget left); JSON-serializable."""
        ...

    def close(self) -> None:
        """Stop the service; idempotent."""
        ...


class Task(abc.ABC):
    """Base class of the seven tasks."""

    #: directory of the task's folder (task.yaml, instructions.md, workspace/, reference/);
    #: defaults to the folder of the module that defines the subclass
    package_dir: Path
    #: the typed parameters of each scale: task.yaml's task-specific keys of ``scales.mini``
    #: and ``scales.full`` are validated against them (the default takes none)
    mini_params: ClassVar[type[TaskParams]] = TaskParams
    full_params: ClassVar[type[TaskParams]] = TaskParams

    @classmethod
    def params_type(cls, scale: str) -> type[TaskParams]:
        """The parameters dataclass of ``scale``."""
        return cls.mini_params if scale == "mini" else cls.full_params

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "package_dir" not in cls.__dict__:
            module = sys.modules.get(cls.__module__)
            file = getattr(module, "__file__", None)
            if file:
                cls.package_dir = Path(file).resolve().parent

    def __init__(self) -> None:
        self.spec = TaskSpec.load(self.package_dir / "task.yaml", self.params_type)

    def params(self, scale: Scale) -> Any:
        """The typed parameters of ``scale`` (an instance of ``params_types[scale]``)."""
        return self.spec.scale(scale).params

    def with_params(self, scale: Scale, **changes: Any) -> Task:
        """A copy of this task whose ``scale`` uses ``changes`` (scale keys as in task.yaml:
        ``resources``, ``time_budget_s``, ..., or the task's own parameters), validated as
        task.yaml is.

        Raises:
            UsageError: an unknown key or a wrong type, naming the key.
        """
        derived = copy.copy(self)
        derived.spec = self.spec.with_scale(scale, self.params_type(scale), changes)
        return derived

    # ----- data ------------------------------------------------------------------------------
    def instructions(self, scale: Scale) -> str:
        """The task prompt for ``scale`` (``$name`` placeholders filled from task.yaml)."""
        text = (self.package_dir / "instructions.md").read_text()
        params = {k: str(v) for k, v in self.spec.scale(scale).params.items()}
        spec = self.spec.scale(scale)
        params.update(
            scale=scale,
            time_budget_h=f"{spec.time_budget_s / 3600:g}",
            score_timeout=f"{spec.score_timeout_s:g}",
        )
        return string.Template(text).safe_substitute(params)

    def populate_workspace(self, dest: Path, scale: Scale, cache: Path) -> None:
        """Copy the starting files (and any prepared assets from ``cache``) into the workspace."""
        src = self.package_dir / "workspace"
        if src.is_dir():
            shutil.copytree(
                src, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        (dest / "instructions.md").write_text(self.instructions(scale))

    def starting_files(self, scale: Scale, cache: Path | None = None) -> dict[str, bytes]:
        """The starting ``solution/`` as relative paths and contents: ``workspace/<scale>/
        solution`` where the task has one, else ``workspace/solution``. Tasks whose starting
        solution includes prepared assets add them from ``cache`` (calibration scores this)."""
        root = self.package_dir / "workspace" / scale / "solution"
        if not root.is_dir():
            root = self.package_dir / "workspace" / "solution"
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        }

    def reference_files(self, scale: Scale) -> dict[str, bytes]:
        """The reference solution as workspace-relative paths and contents (for the agent)."""
        root = self.package_dir / "reference" / scale
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        }

    def reference_actions(self, scale: Scale) -> list[str]:
        """Actions the ``reference`` agent takes before it scores and submits."""
        from rebench_gym import actions

        return [
            actions.write_file(f"solution/{path}", content.decode())
            for path, content in self.reference_files(scale).items()
        ]

    def fingerprint(self) -> str:
        """A hash of the task's version and files; keys caches of assets and anchors."""
        h = hashlib.sha256(self.spec.version.encode())
        for p in sorted(self.package_dir.rglob("*")):
            # the command menu is for agents, not part of the task: editing it keeps the caches
            if p.is_file() and "__pycache__" not in p.parts and p.name != "menu.yaml":
                h.update(str(p.relative_to(self.package_dir)).encode())
                h.update(p.read_bytes())
        return h.hexdigest()[:16]

    # ----- hooks -----------------------------------------------------------------------------
    def check_hardware(self, scale: Scale) -> None:
        """Raise :class:`HardwareError` when this machine cannot run ``scale``."""
        need = self.spec.scale(scale).gpus
        if need:
            have = cuda_device_count()
            if have < need:
                raise HardwareError(
                    f"{self.spec.env_id} at scale={scale!r} needs {need} CUDA GPU(s) "
                    f"({self.spec.scale(scale).resources.gpu_kind or 'any'}); this machine "
                    f"has {have}. Use scale='mini' to run the task on CPU."
                )

    def asset_dir(self, scale: Scale, cache: Path) -> Path:
        """Where this task version's prepared assets for ``scale`` live in the cache."""
        return cache / "assets" / f"{self.spec.name}-{scale}-{self.spec.version}"

    # ----- assets ------------------------------------------------------------------------------
    #: what DIR holds in ``rebench assets prepare ID --scale full --source DIR``; None when the
    #: full assets need no source (a task whose ``build_full_assets`` fetches or makes them)
    full_assets_source: str | None = None

    def build_mini_assets(self, out: Path, progress: ProgressFn) -> None:  # noqa: B027
        """Fill the empty directory ``out`` with the mini scale's hidden assets.

        A task without assets does not override this (nor :meth:`build_full_assets`).
        """

    def build_full_assets(  # noqa: B027 - optional hook
        self, out: Path, source: Path | None, progress: ProgressFn
    ) -> None:
        """Fill the empty directory ``out`` with the full scale's assets, read from ``source``
        (never None when :attr:`full_assets_source` is set)."""

    def has_assets(self, scale: Scale) -> bool:
        """Whether ``scale`` has assets to prepare (the task overrides its builder)."""
        hook = "build_mini_assets" if scale == "mini" else "build_full_assets"
        return getattr(type(self), hook) is not getattr(Task, hook)

    def prepare_assets(
        self,
        scale: Scale,
        cache: Path,
        progress: ProgressFn | None = None,
        source: Path | None = None,
    ) -> None:
        """Build ``scale``'s assets into the cache once; returns at once when they are complete.

        Args:
            scale: "mini" (built from nothing; ``source`` is ignored) or "full".
            cache: the asset cache.
            progress: receives one-line progress messages.
            source: full scale: the directory of downloaded data (:attr:`full_assets_source`).

        Raises:
            AssetsError: full scale needs a ``source`` and none was given (the message names the
                command and what the directory holds), or building failed.
        """
        if not self.has_assets(scale):
            return
        target = self.asset_dir(scale, cache)
        if (target / COMPLETE).exists():
            return
        say: ProgressFn = progress or (lambda _message: None)
        if scale == "mini":
            build_once(target.parent, target.name, lambda tmp: self.build_mini_assets(tmp, say))
            return
        if source is None and self.full_assets_source is not None:
            env_id = self.spec.env_id
            raise AssetsError(
                f"{env_id} at full scale needs data that cannot be shipped: run `rebench assets "
                f"prepare {env_id} --scale full --source DIR` (DIR holds "
                f"{self.full_assets_source})"
            )
        src = Path(source) if source is not None else None
        build_once(target.parent, target.name, lambda tmp: self.build_full_assets(tmp, src, say))

    def assets(self, scale: Scale, cache: Path) -> Path:
        """The directory of ``scale``'s prepared assets.

        Raises:
            AssetsError: they are not prepared (the message says how to prepare them).
        """
        path = self.asset_dir(scale, cache)
        if not (path / COMPLETE).exists():
            how = "--scale full --source DIR" if scale == "full" else "--scale mini"
            raise AssetsError(
                f"assets for {self.spec.name} ({scale}) are not prepared at {path}; run "
                f"`rebench assets prepare {self.spec.env_id} {how}`"
            )
        return path

    def start_services(
        self, scale: Scale, cache: Path, workspace: Path, options: dict[str, Any]
    ) -> list[EpisodeService]:
        """Start the episode's helper services (default: none).

        Args:
            scale: the episode's scale.
            cache: the asset cache.
            workspace: the host directory of the freshly populated workspace; a service the
                agent may use puts its endpoint here (e.g. a Unix socket), the only place every
                sandbox provider shares with the agent.
            options: the env's ``task_options`` (e.g. an LLM endpoint's base URL and model).
        """
        return []

    def max_solution_bytes(self, scale: Scale) -> int:
        """The largest ``solution/`` a score call copies (bigger ones are invalid); task.yaml's
        ``max_solution_bytes`` (default 500 MiB)."""
        return self.spec.scale(scale).max_solution_bytes

    def hidden_paths(self, scale: Scale, cache: Path) -> list[Path]:
        """Host paths the agent must not read (the sandbox masks them)."""
        return [cache]

    def paper_anchors(self, scale: Scale) -> Anchors | None:
        """Fixed anchors from task.yaml (paper numbers or documented constants), if any (None
        when ``rebench calibrate`` measures the start, or both, on the machine)."""
        a = self.spec.scale(scale).anchors
        if isinstance(a, dict) and a["start"] != "calibrate":
            return Anchors(float(a["start"]), float(a["reference"]), str(a.get("source", "paper")))
        return None

    def fixed_reference_anchor(self, scale: Scale) -> float | None:
        """The reference anchor when task.yaml fixes it but has the start measured on the
        machine (``anchors: {start: calibrate, reference: R}``): for a scorer whose numbers
        depend on the CPU while producing the reference solution takes a training run."""
        a = self.spec.scale(scale).anchors
        if isinstance(a, dict) and a["start"] == "calibrate":
            return float(a["reference"])
        return None

    @abc.abstractmethod
    def score(self, ctx: ScoreContext) -> ScoreResult:
        """Score the solution copy in ``ctx``; never raise for what the solution did."""


def cuda_device_count() -> int:
    """How many CUDA devices torch sees (0 without torch or CUDA)."""
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:
        return 0
