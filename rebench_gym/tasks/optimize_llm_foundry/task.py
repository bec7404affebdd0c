"""Optimize LLM Foundry (RE-Bench ai_rd_optimize_llm_foundry): make finetune.sh fast, same weights.

A score call:

1. copies the agent's ``solution/`` into a private run directory and deletes what a previous run
   left there (``trained_model``, tokenized data, checkpoints, ``__pycache__``, weight files);
2. writes a training file the solution has never seen, drawn from a fresh seed, next to it as
   ``train_data.jsonl`` (mini: rows cut from the package corpus; full: a sample of the prepared
   pool), with the base model beside it read-only;
3. runs ``bash finetune.sh`` there through the sandbox (a fresh isolated process that sees only
   these three paths) and times the whole run from this process; everything the run started is
   killed when the script exits, so no work can finish after the clock stops;
4. trains the hidden reference on the same data with trusted code (the pristine starting library
   plus the reference solution, outside the agent's reach; not timed);
5. compares the two ``trained_model`` directories in a separate trusted process
   (:mod:`~rebench_gym.tasks.optimize_llm_foundry.compare`): a real directory of regular files
   in a safe weight format, the same parameters, and a difference at most the scale's
   ``max_norm_diff``, measured as the original does: the L2 norm of the difference of each
   parameter tensor of the base model (no LM head), summed over the tensors.

Score: ``ln(seconds)`` of step 3; lower is better. A copied, symlinked or stale model (even with
noise added) fails step 5, because the training data differs on every call.

What a failed call reports depends on whether the scored data is hidden (``scored_data_hidden``
in task.yaml). Mini draws fresh rows from the package corpus, like the workspace's example, so
the end of the run's output is shown. Full trains on pool rows the agent never sees, so nothing
the run printed or named (its output, file or tensor names in a rejected ``trained_model``)
comes back: only exit status classes and fixed reasons (:data:`compare.ERROR_KINDS`).
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rebench_gym import procs
from rebench_gym.errors import AssetsError
from rebench_gym.procs import run_worker
from rebench_gym.sandbox.base import Bind
from rebench_gym.scoring import ScoreResult
from rebench_gym.tasks.base import (
    SCORE_ROOT,
    ProgressFn,
    Scale,
    ScoreContext,
    Task,
    TaskParams,
    run_until_deadline,
)
from rebench_gym.tasks.optimize_llm_foundry import data as task_data
from rebench_gym.tasks.optimize_llm_foundry.compare import ERROR_KINDS

#: what a previous run leaves in solution/; deleted before every scored run
OUTPUT_DIRS = frozenset({"trained_model", "finetuning_tokens", "ftout", "__pycache__"})
STALE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".distcp")
COMPARE_MODULE = "rebench_gym.tasks.optimize_llm_foundry.compare"
HIDDEN_NOTE = (
    "the run trained on hidden data, so what it printed or named is not shown; run "
    "`bash solution/finetune.sh` in the workspace on the example train_data.jsonl to debug"
)


@dataclass(frozen=True)
class LLMFoundryMiniParams(TaskParams):
    """The task-specific keys of task.yaml's ``scales.mini``."""

    train_rows: int
    scored_data_hidden: bool
    init_seed: int
    threads: int
    model: dict[str, Any]
    max_norm_diff: float


@dataclass(frozen=True)
class LLMFoundryFullParams(TaskParams):
    """The task-specific keys of task.yaml's ``scales.full``."""

    model_id: str
    train_rows: int
    pool_rows: int
    max_seq_len: int
    max_norm_diff: float
    scored_data_hidden: bool
    # torch threads of the scored run (None: torch's default)
    threads: int | None = None


class OptimizeLLMFoundryTask(Task):
    """The finetuning-speed task; see the module docstring for how it is scored."""

    package_dir = Path(__file__).parent
    mini_params = LLMFoundryMiniParams
    full_params = LLMFoundryFullParams
    #: its trusted worker runs as a fork of the fork server (procs.run_worker); turned off by
    #: ``REBENCH_SCORING=baseline`` (``rebench bench --scoring`` measures both)
    fast_scoring_path = True

    # ----- assets ------------------------------------------------------------------------------
    def build_full_assets(self, out: Path, source: Path | None, progress: ProgressFn) -> None:
        from rebench_gym.tasks.optimize_llm_foundry import full

        full.build_full_assets(out, source, self.params("full"), progress)

    def build_mini_assets(self, out: Path, progress: ProgressFn) -> None:
        """The base model: the workspace's tiny causal LM, initialised from a fixed seed."""
        params = self.params("mini")
        model_py = self.package_dir / "workspace/mini/solution/minifoundry/model.py"
        spec = importlib.util.spec_from_file_location("_rebench_minifoundry_model", model_py)
        if spec is None or spec.loader is None:
            raise AssetsError(f"cannot load {model_py}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while building
        try:
            spec.loader.exec_module(module)
            cfg = module.ModelConfig(**params.model)
            module.init_model(cfg, params.init_seed).save_pretrained(out / "base_model")
        finally:
            sys.modules.pop(spec.name, None)

    # ----- workspace ---------------------------------------------------------------------------
    def populate_workspace(self, dest: Path, scale: Scale, cache: Path) -> None:
        shutil.copytree(
            self.package_dir / "workspace" / scale,
            dest,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        (dest / "instructions.md").write_text(self.instructions(scale))
        assets = self.assets(scale, cache)
        if scale == "full":  # the solution directory is an llm-foundry checkout
            shutil.copytree(assets / "llm-foundry", dest / "solution", dirs_exist_ok=True)
            shutil.copytree(self.package_dir / "workspace/full", dest, dirs_exist_ok=True)
        shutil.copytree(assets / "base_model", dest / "base_model", dirs_exist_ok=True)
        self.write_training_data(scale, assets, task_data.EXAMPLE_SEED, dest / "train_data.jsonl")

    def write_training_data(self, scale: Scale, assets: Path, seed: int, path: Path) -> None:
        """The training file drawn from ``seed`` (the example in the workspace, or a score's)."""
        n_rows = int(self.params(scale).train_rows)
        if scale == "mini":
            rows = task_data.corpus_rows(n_rows, seed)
        else:
            pool = task_data.read_jsonl(assets / "data_pool.jsonl")
            # The pool's first rows are the visible example; scoring samples only the rest.
            if seed == task_data.EXAMPLE_SEED:
                rows = pool[:n_rows]
            else:
                rows = task_data.sample_rows(pool[n_rows:], n_rows, seed)
        task_data.write_jsonl(rows, path)

    def reference_files(self, scale: Scale) -> dict[str, bytes]:
        """The whole reference solution: the starting files with ``reference/<scale>`` on top."""
        return {**self.starting_files(scale), **super().reference_files(scale)}

    def reference_actions(self, scale: Scale) -> list[str]:
        from rebench_gym import actions

        acts = super().reference_actions(scale)
        # Make the written shell scripts executable, as the starting ones are.
        acts.append(actions.bash("chmod +x solution/*.sh"))
        return acts

    # ----- scoring -----------------------------------------------------------------------------
    def score(self, ctx: ScoreContext) -> ScoreResult:
        params = self.params(ctx.scale)
        if ctx.scale == "mini":  # built in well under a second; calibration may need it
            self.prepare_assets("mini", ctx.cache)
        assets = self.assets(ctx.scale, ctx.cache)
        deadline = time.monotonic() + ctx.timeout_s
        threshold = params.max_norm_diff

        run_dir = ctx.work_dir / "run"
        shutil.copytree(ctx.solution, run_dir / "solution", symlinks=True)
        remove_stale_outputs(run_dir / "solution")
        self.write_training_data(ctx.scale, assets, ctx.seed, run_dir / "train_data.jsonl")

        seconds, failure = self._run_finetune(ctx, run_dir, assets, deadline, "solution")
        if failure is not None:
            return failure

        ref_dir = ctx.work_dir / "reference"
        self._assemble_reference(ctx.scale, assets, ref_dir / "solution")
        shutil.copy(run_dir / "train_data.jsonl", ref_dir / "train_data.jsonl")
        _, ref_failure = self._run_finetune(ctx, ref_dir, assets, deadline, "reference")
        if ref_failure is not None:
            return ScoreResult.invalid(
                "the hidden reference run failed (a fault of the task, not of the solution): "
                + ref_failure.message
            )

        ref_model = ref_dir / "solution" / "trained_model"
        limit = 3 * _tree_bytes(ref_model) + 1_000_000
        result = run_comparison(
            {
                "candidate": str(run_dir / "solution" / "trained_model"),
                "reference": str(ref_model),
                "max_bytes": limit,
            },
            max(10.0, deadline - time.monotonic()),
        )
        if "error" in result:
            if self._data_hidden(ctx.scale):
                reason = ERROR_KINDS.get(str(result.get("kind")), ERROR_KINDS["unreadable"])
                return ScoreResult.invalid(f"trained_model rejected: {reason} ({HIDDEN_NOTE})")
            return ScoreResult.invalid(f"trained_model rejected: {result['error']}")
        norm_diff = float(result["norm_diff"])
        details = {
            "seconds": seconds,
            "norm_diff": norm_diff,
            "max_norm_diff": threshold,
            "l1": float(result["l1"]),
        }
        if norm_diff > threshold:
            return ScoreResult.invalid(
                "the weights differ from the reference's: summed norm of the difference "
                f"{norm_diff:.4g} > {threshold:g} (finetune.sh took {seconds:.2f} s)",
                **details,
            )
        return ScoreResult(
            raw=math.log(seconds),
            valid=True,
            message=f"finetune.sh took {seconds:.2f} s; summed norm of the difference to the "
            f"reference {norm_diff:.3g}",
            details=details,
        )

    def _data_hidden(self, scale: Scale) -> bool:
        """Whether scored runs train on data the agent never sees (then no output is shown)."""
        return bool(self.params(scale).scored_data_hidden)

    def _run_output(self, scale: Scale, log_path: Path) -> str:
        """The end of a run's output, or why it is not shown."""
        if self._data_hidden(scale):
            return f"its output is not shown ({HIDDEN_NOTE})"
        return "its last output:\n" + procs.log_tail(log_path)

    def _assemble_reference(self, scale: Scale, assets: Path, dest: Path) -> None:
        """The reference solution from the package (trusted code), ready to run."""
        if scale == "full":
            shutil.copytree(assets / "llm-foundry", dest, dirs_exist_ok=True)
        for rel, content in self.reference_files(scale).items():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(content)

    def _run_finetune(
        self, ctx: ScoreContext, run_dir: Path, assets: Path, deadline: float, who: str
    ) -> tuple[float, ScoreResult | None]:
        """Run ``bash finetune.sh`` in ``run_dir/solution`` in a fresh sandboxed process.

        Returns the wall time from start to exit and, if it failed, the invalid result.
        """
        env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        threads = self.params(ctx.scale).threads
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        # The same relative layout on the host, for sandboxes that run there without binds.
        # (A copy at mini scale, so that not even the unisolated local sandbox can alter the
        # cached model; a link to the multi-GB model at full scale.)
        host_model = run_dir / "base_model"
        if not host_model.exists():
            if ctx.scale == "mini":
                shutil.copytree(assets / "base_model", host_model)
            else:
                host_model.symlink_to(assets / "base_model", target_is_directory=True)
        log_path = ctx.work_dir / f"{who}.log"
        # Nothing may outlive the script: background work would finish after the clock stops.
        run = run_until_deadline(
            ctx,
            ["bash", "finetune.sh"],
            binds=[
                Bind(run_dir / "solution", f"{SCORE_ROOT}/solution", writable=True),
                Bind(run_dir / "train_data.jsonl", f"{SCORE_ROOT}/train_data.jsonl"),
                Bind(assets / "base_model", f"{SCORE_ROOT}/base_model"),
            ],
            cwd=f"{SCORE_ROOT}/solution",
            env=env,
            deadline=deadline,
            log=log_path,
            max_pids=1024,
        )
        if run.timed_out:
            return 0.0, ScoreResult.invalid(
                f"timed out: finetune.sh ({who}) did not finish within the score call's "
                f"{ctx.timeout_s:.0f} s; {self._run_output(ctx.scale, log_path)}"
            )
        code = run.returncode if run.returncode is not None else -1
        if code != 0:
            status = f"code {code}"
            if self._data_hidden(ctx.scale):  # the status is the script's to choose: a class
                status = "a signal" if code < 0 or code > 128 else "an error"
            return run.seconds, ScoreResult.invalid(
                f"finetune.sh ({who}) exited with {status}; {self._run_output(ctx.scale, log_path)}"
            )
        return run.seconds, None


def remove_stale_outputs(solution: Path) -> None:
    """Delete what an earlier run may have left: outputs, caches and weight files."""
    for path in sorted(solution.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_symlink():
            if path.name in OUTPUT_DIRS or path.name.endswith(STALE_SUFFIXES):
                path.unlink()
        elif path.is_dir() and path.name in OUTPUT_DIRS:
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.name.endswith(STALE_SUFFIXES):
            path.unlink(missing_ok=True)


def run_comparison(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run :mod:`~rebench_gym.tasks.optimize_llm_foundry.compare` in a fresh process."""
    result, error = run_worker(COMPARE_MODULE, spec, timeout, "the comparison")
    if result is None:
        return {"error": error, "kind": "unreadable"}
    comparison = result.get("comparison")
    if not isinstance(comparison, dict):
        return {"error": "the comparison gave no result", "kind": "unreadable"}
    return comparison


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
