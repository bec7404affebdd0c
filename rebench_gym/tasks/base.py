"""The Task protocol: a task is data (``task.yaml``, instructions, files) plus small hooks.

Each task subpackage holds ``task.yaml``, ``instructions.md``, ``workspace/`` (the starting files,
copied into the agent's workspace), ``reference/<scale>/`` (the reference solution, never put in
the workspace) and a :class:`Task` subclass that scores.
"""

from __future__ import annotations

import abc
import hashlib
import shutil
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

from rebench_gym.cache import COMPLETE, build_once
from rebench_gym.errors import AssetsError, HardwareError, UsageError
from rebench_gym.sandbox.base import Sandbox
from rebench_gym.scoring import Aggregation, Anchors, ScoreResult

Scale = Literal["full", "mini"]
SCALES: tuple[Scale, ...] = ("full", "mini")
ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class ScaleSpec:
    """What one scale of a task needs and how it is scored."""

    hardware: dict[str, Any]
    time_budget_s: float
    score_timeout_s: float
    anchors: dict[str, Any] | str  # {"start", "reference", "source"} or "calibrate"
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def gpus(self) -> int:
        return int(self.hardware.get("gpus", 0))


@dataclass(frozen=True)
class TaskSpec:
    """The contents of a task's ``task.yaml``."""

    name: str
    env_id: str
    version: str
    title: str
    original: str
    higher_is_better: bool
    aggregation: Aggregation
    always_hidden: bool
    scales: dict[str, ScaleSpec]

    @classmethod
    def load(cls, path: Path) -> TaskSpec:
        data = yaml.safe_load(path.read_text())
        scales = {}
        for scale, s in data.pop("scales").items():
            known = {"hardware", "time_budget_s", "score_timeout_s", "anchors"}
            scales[scale] = ScaleSpec(
                hardware=s["hardware"],
                time_budget_s=float(s["time_budget_s"]),
                score_timeout_s=float(s["score_timeout_s"]),
                anchors=s["anchors"],
                params={k: v for k, v in s.items() if k not in known},
            )
        return cls(scales=scales, **data)

    def scale(self, scale: str) -> ScaleSpec:
        if scale not in self.scales:
            raise UsageError(f"scale must be one of {sorted(self.scales)}, not {scale!r}")
        return self.scales[scale]


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
    """

    solution: Path
    sandbox: Sandbox
    scale: Scale
    timeout_s: float
    seed: int
    work_dir: Path
    cache: Path
    options: dict[str, Any] = field(default_factory=dict)


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

    #: directory of the task subpackage (task.yaml, instructions.md, workspace/, reference/)
    package_dir: Path

    def __init__(self) -> None:
        self.spec = TaskSpec.load(self.package_dir / "task.yaml")

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
                    f"({self.spec.scale(scale).hardware.get('gpu_kind', 'any')}); this machine "
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
        """The largest ``solution/`` a score call copies (bigger ones are invalid)."""
        return 500 * 1024**2

    def hidden_paths(self, scale: Scale, cache: Path) -> list[Path]:
        """Host paths the agent must not read (the sandbox masks them)."""
        return [cache]

    def paper_anchors(self, scale: Scale) -> Anchors | None:
        """Fixed anchors from task.yaml (paper numbers or documented constants), if any."""
        a = self.spec.scale(scale).anchors
        if isinstance(a, dict):
            return Anchors(float(a["start"]), float(a["reference"]), str(a.get("source", "paper")))
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
