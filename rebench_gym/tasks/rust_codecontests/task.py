"""Scaffolding for Rust Codecontests (RE-Bench ai_rd_rust_codecontests_inference).

The agent improves ``solution/solve_code_contests_rust.py``, whose
``async generate_solution(client, semaphore, problem) -> str`` uses an LLM to write a Rust
program for a competitive-programming problem. The score is the fraction of held-out problems
whose returned program passes all their tests.

A score call has two stages that never share a process:

1. **generation**: a fresh sandboxed process (no workspace; a read-only copy of ``solution/``;
   the pristine harness) imports the module and runs it over the held-out problems' statements
   and public tests only, its client pointed at a scoring-time LLM proxy with its own budget.
   The returned programs are written to a file, one JSON line per problem.
2. **evaluation**: this (the driver's) process, which never imports the module, compiles each
   program with ``rustc --edition 2018`` and runs it on all tests (public, private, generated),
   each compile and each test a fresh sandboxed process with time, memory and output limits
   (:mod:`rebench_gym.tasks.rust_codecontests.evaluator`).

So patching the evaluator from the module changes nothing that counts, and the hidden tests are
never in a process the agent's code runs in. During the episode the workspace holds ``llm.sock``,
the episode's LLM proxy (:mod:`rebench_gym.llm.proxy`); its usage appears in
``info["llm_proxy"]`` and feeds :class:`~rebench_gym.wrappers.TokenBudget`.

Mini: 35 original easy problems (:mod:`.problems`), 12 visible, 23 held-out. Full: CodeContests
problems filtered to easy ones, from ``rebench assets prepare ... --source PATH``.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import math
import shutil
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rebench_gym.errors import AssetsError
from rebench_gym.llm.proxy import LLMProxy, ProxyConfig
from rebench_gym.sandbox.base import Bind, open_regular
from rebench_gym.scoring import ScoreResult
from rebench_gym.tasks.base import (
    SCORE_ROOT,
    EpisodeService,
    ProgressFn,
    Scale,
    ScoreContext,
    Task,
    TaskParams,
    run_until_deadline,
)
from rebench_gym.tasks.rust_codecontests.codecontests import load_codecontests
from rebench_gym.tasks.rust_codecontests.evaluator import Limits, RustEvaluator, Toolchain
from rebench_gym.tasks.rust_codecontests.problems import build_problems

MODULE = "solve_code_contests_rust.py"
#: problem fields the scaffold sees at scoring time (never the hidden tests)
STATEMENT_FIELDS = (
    "name",
    "description",
    "public_tests",
    "difficulty",
    "source",
    "cf_rating",
    "cf_tags",
    "time_limit",
    "memory_limit_bytes",
)
MAX_PROGRAM_CHARS = 1_000_000
#: exception type names a score message may repeat: Python's own and the OpenAI client's. The
#: scaffold runs on held-out problems, so nothing it chooses (its output, exception texts, a
#: made-up class name) may reach the agent; a name outside this fixed set is "another exception".
KNOWN_EXCEPTIONS = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
) | frozenset(
    (
        "APIError",
        "APIStatusError",
        "APIConnectionError",
        "APITimeoutError",
        "APIResponseValidationError",
        "BadRequestError",
        "AuthenticationError",
        "PermissionDeniedError",
        "NotFoundError",
        "ConflictError",
        "UnprocessableEntityError",
        "RateLimitError",
        "InternalServerError",
        "LengthFinishReasonError",
        "ContentFilterFinishReasonError",
        "OpenAIError",
        "CancelledError",
        "JSONDecodeError",
    )
)
OTHER_EXCEPTION = "another exception"
#: how a failed problem is reported: a fixed set of kinds, never the program's own output,
#: exit status or the compiler's text (programs and compile errors derive from held-out data)
FAILURE_KINDS = (
    "no program",
    "compile error",
    "wrong answer",
    "timeout",
    "output limit",
    "runtime error",
    "problem time limit",
    "evaluation time limit",
    "evaluation failed",
)
DEBUG_HINT = (
    "the scaffold's output and exception texts on held-out problems are never shown; run "
    "`python run_scaffold.py --problems data/valid.jsonl --evaluate` to see them"
)


@dataclass(frozen=True)
class RustParams(TaskParams):
    """The task-specific keys both scales of task.yaml have."""

    generation_timeout_s: int
    per_problem_timeout_s: int
    concurrency: int
    eval_workers: int
    test_timeout_s: int
    problem_timeout_s: int
    memory_mb: int
    model_note: str
    generation_note: str
    batch_size: int = field(default=0, kw_only=True)


@dataclass(frozen=True)
class RustMiniParams(RustParams):
    """The task-specific keys of task.yaml's ``scales.mini``."""

    score_max_requests: int


@dataclass(frozen=True)
class RustFullParams(RustParams):
    """The task-specific keys of task.yaml's ``scales.full``."""

    score_max_cost: float
    #: none (the default): CodeContests' whole splits, as the original; see codecontests.py
    filter: dict[str, Any] | None = None


class RustCodecontestsTask(Task):
    """The Rust scaffolding task; see the module docstring."""

    package_dir = Path(__file__).parent
    mini_params = RustMiniParams
    full_params = RustFullParams
    #: the ``task_options`` names it reads (``rebench run`` refuses any other at once)
    task_options = frozenset(
        [
            "api_key_env",
            "base_url",
            "model",
            "price_input",
            "price_output",
            "max_tokens",
            "max_cost",
            "max_requests",
            "score_max_tokens",
            "score_max_cost",
            "score_max_requests",
        ]
    )

    # ----- assets ------------------------------------------------------------------------------
    full_assets_source = (
        "the valid and test splits of deepmind/code_contests: JSON lines, or Parquet with pyarrow "
        "installed, e.g. valid.jsonl and test.jsonl"
    )

    def build_mini_assets(self, out: Path, progress: ProgressFn) -> None:
        _write_splits(build_problems())(out)

    def build_full_assets(self, out: Path, source: Path | None, progress: ProgressFn) -> None:
        assert source is not None  # full_assets_source is set: the base checked
        params = self.params("full")
        progress(f"rust_codecontests (full): reading CodeContests problems from {source}")
        _write_splits(load_codecontests(source, params.filter))(out)

    def load_split(self, scale: Scale, cache: Path, split: str) -> list[dict[str, Any]]:
        """The ``valid`` or ``test`` problems (full records, hidden tests included)."""
        with open(self.assets(scale, cache) / f"{split}.jsonl") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    def populate_workspace(self, dest: Path, scale: Scale, cache: Path) -> None:
        super().populate_workspace(dest, scale, cache)
        (dest / "data").mkdir(exist_ok=True)
        shutil.copy(self.assets(scale, cache) / "valid.jsonl", dest / "data" / "valid.jsonl")

    # ----- the episode's LLM proxy -------------------------------------------------------------
    def start_services(
        self, scale: Scale, cache: Path, workspace: Path, options: dict[str, Any]
    ) -> list[EpisodeService]:
        config = ProxyConfig.from_options(options)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        proxy = LLMProxy(
            workspace / "llm.sock",
            config,
            log_path=cache / "llm_logs" / f"rust_codecontests-{stamp}-{uuid.uuid4().hex[:8]}.jsonl",
            endpoint="llm.sock",
        )
        return [proxy.start()]

    # ----- scoring -----------------------------------------------------------------------------
    def score(self, ctx: ScoreContext) -> ScoreResult:
        params = self.params(ctx.scale)
        deadline = time.monotonic() + ctx.timeout_s
        entry = ctx.solution / MODULE
        if not entry.is_file() or entry.is_symlink():
            return ScoreResult.invalid(f"solution/{MODULE} is missing (or is a symlink)")
        try:
            toolchain = Toolchain.for_sandbox(ctx.sandbox)
        except AssetsError as e:
            return ScoreResult.invalid(str(e))
        problems = self.load_split(ctx.scale, ctx.cache, "test")
        gen_timeout = min(params.generation_timeout_s, ctx.timeout_s * 0.6)
        generated = self._generate(ctx, params, problems, toolchain, gen_timeout)
        if isinstance(generated, ScoreResult):
            return generated
        programs, usage, note = generated
        evaluator = RustEvaluator(
            ctx.sandbox,
            toolchain,
            ctx.work_dir / "eval",
            ctx.cache / "rust_codecontests_bins",
            Limits.from_params(params),
            workers=params.eval_workers,
        )
        (ctx.work_dir / "eval").mkdir()
        results = evaluator.evaluate_all(
            problems, programs, max(1.0, deadline - time.monotonic() - 5.0)
        )
        solved = sum(r.solved for r in results)
        kinds = Counter(_kind(r.message) for r in results if not r.solved)
        failures = ", ".join(f"{n} {k}" for k, n in kinds.most_common())
        message = (
            f"solved {solved}/{len(problems)} held-out problems"
            + (f" (failed: {failures})" if failures else "")
            + f"; {len(programs)} programs returned"
            + (f"; {note}" if note else "")
            + f"; scoring LLM usage: {_usage_text(usage)}"
        )
        return ScoreResult(
            raw=solved / len(problems),
            valid=True,
            message=message,
            details={
                "solved": solved,
                "problems": len(problems),
                "results": {r.name: _kind(r.message) for r in results},
                "llm_usage": usage,
            },
        )

    def _generate(
        self,
        ctx: ScoreContext,
        params: RustMiniParams | RustFullParams,
        problems: list[dict[str, Any]],
        toolchain: Toolchain,
        timeout: float,
    ) -> tuple[dict[str, str], dict[str, Any], str] | ScoreResult:
        """Run the agent's module over the statements in a sandboxed process."""
        stage = ctx.work_dir / "gen"
        harness, data, out, llm = (stage / d for d in ("harness", "data", "out", "llm"))
        for d in (harness, data, out, llm):
            d.mkdir(parents=True)
        for name in ("rust_codecontests_utils.py", "run_scaffold.py"):
            shutil.copy(self.package_dir / "workspace" / name, harness / name)
        with open(data / "problems.jsonl", "w") as fh:
            for p in problems:
                fh.write(json.dumps({k: p[k] for k in STATEMENT_FIELDS if k in p}) + "\n")
        (out / "results.jsonl").touch()
        defaults = {
            f"score_{k}": getattr(params, f"score_{k}")
            for k in ("max_tokens", "max_cost", "max_requests")
            if getattr(params, f"score_{k}", None) is not None
        }
        config = ProxyConfig.from_options({**defaults, **ctx.options}, budget_prefix="score_")
        log_path = stage / "runner.log"
        proxy = LLMProxy(llm / "llm.sock", config).start()
        try:
            run = run_until_deadline(
                ctx,
                [
                    "python3",
                    f"{SCORE_ROOT}/harness/run_scaffold.py",
                    "--solution",
                    f"{SCORE_ROOT}/solution/{MODULE}",
                    "--problems",
                    f"{SCORE_ROOT}/data/problems.jsonl",
                    "--out",
                    f"{SCORE_ROOT}/out/results.jsonl",
                    "--concurrency",
                    str(params.concurrency),
                    "--per-problem-timeout",
                    str(params.per_problem_timeout_s),
                    "--batch-size",
                    str(params.batch_size),
                    "--status",
                    f"{SCORE_ROOT}/out/status.json",
                ],
                binds=[
                    Bind(harness, f"{SCORE_ROOT}/harness"),
                    Bind(ctx.solution, f"{SCORE_ROOT}/solution"),
                    Bind(data, f"{SCORE_ROOT}/data"),
                    Bind(out, f"{SCORE_ROOT}/out", writable=True),
                    Bind(llm, f"{SCORE_ROOT}/llm"),
                    *toolchain.binds(),
                ],
                cwd=f"{SCORE_ROOT}/solution",
                env={
                    "RB_LLM_SOCKET": f"{SCORE_ROOT}/llm/llm.sock",
                    "RUSTC": str(toolchain.rustc),
                    "PATH": f"{ctx.sandbox.python_bin}:{toolchain.rustc.parent}:/usr/bin:/bin",
                },
                deadline=time.monotonic() + timeout,
                log=log_path,
                min_wait_s=0.0,
                max_pids=512,
            )
            note = ""
            if run.timed_out:
                note = (
                    f"generation stopped after {timeout:.0f} s; unfinished problems count as failed"
                )
            usage = proxy.info()
        finally:
            proxy.close()
        # The log (what the scaffold printed) is never read back: the module saw the held-out
        # problems. Only type names from a fixed set and counts reach the message.
        if run.returncode == 3:
            import_error = _import_error(out / "status.json")
            if import_error is not None:
                return ScoreResult.invalid(
                    f"could not import solution/{MODULE}: it raised {import_error} ({DEBUG_HINT})"
                )
        names = {str(p["name"]) for p in problems}
        programs: dict[str, str] = {}
        raised: Counter[str] = Counter()
        seen: set[str] = set()
        # The scaffold could replace the file with a symlink, a FIFO or a device: read only a
        # regular file, and at most what 1 MB programs for every problem need.
        results = _read_regular(out / "results.jsonl", (len(problems) + 1) * 2 * MAX_PROGRAM_CHARS)
        for line in results.decode("utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError, TypeError, AttributeError, RecursionError):
                record = json.loads(line)
                name, code = str(record.get("name")), record.get("code")
                if name not in names or name in seen:
                    continue
                seen.add(name)
                if isinstance(code, str) and code:
                    # JSON escapes can hold lone surrogates, which no file or hash takes
                    text = code[:MAX_PROGRAM_CHARS].encode("utf-8", errors="replace")
                    programs[name] = text.decode("utf-8")
                elif record.get("error_type"):
                    raised[_exception_name(record.get("error_type"))] += 1
        notes = [note] if note else []
        if raised:
            notes.append(_raised_text(raised, len(problems)))
        if not note and run.returncode not in (0, None):
            notes.append("the scaffold process exited with an error before it finished")
        if notes:
            notes.append(DEBUG_HINT)
        return programs, usage, "; ".join(notes)

    def reference_actions(self, scale: Scale) -> list[str]:
        from rebench_gym import actions

        files = self.reference_files(scale)
        return [actions.write_file(f"solution/{p}", c.decode()) for p, c in files.items()]


def reference_program(name: str) -> str:
    """The shipped reference Rust solution of mini problem ``name``."""
    return (Path(__file__).parent / "reference" / "programs" / f"{name}.rs").read_text()


def _write_splits(splits: dict[str, list[dict[str, Any]]]) -> Any:
    def write(out: Path) -> None:
        for split in ("valid", "test"):
            with open(out / f"{split}.jsonl", "w") as fh:
                for record in splits[split]:
                    fh.write(json.dumps(record) + "\n")

    return write


def _kind(message: str) -> str:
    """The failure kind (one of :data:`FAILURE_KINDS`) of an evaluator's problem message."""
    if message.startswith("compile error"):
        return "compile error"
    if message == "total time limit exceeded":
        return "problem time limit"
    if message.startswith("evaluation failed"):
        return "evaluation failed"
    if message.startswith("test ") and ": " in message:
        status = message.split(": ", 1)[1]
        if status in ("wrong answer", "timeout"):
            return status
        if status == "output_limit":
            return "output limit"
        return "runtime error"  # "exit N" / "signal N": N is the program's to choose
    if message in FAILURE_KINDS:
        return message
    return "evaluation failed"


def _exception_name(value: Any) -> str:
    """A scaffold's exception type name as a score message may show it (see KNOWN_EXCEPTIONS)."""
    if value == "timeout":
        return "timeout"
    if value == "not_str":
        return "a non-string result"
    return value if isinstance(value, str) and value in KNOWN_EXCEPTIONS else OTHER_EXCEPTION


def _raised_text(raised: Counter[str], total: int) -> str:
    """``generate_solution failed on 4 of 23 problems (ValueError 2, timeout 1, other 1)``.

    Only the two most common kinds are named: every name the scaffold can pick per problem is
    a few bits it could modulate on purpose, so the message keeps that choice narrow.
    """
    count = sum(raised.values())
    top = raised.most_common(2)
    rest = count - sum(n for _, n in top)
    kinds = [f"{name} {n}" for name, n in top] + ([f"other {rest}"] if rest else [])
    return f"generate_solution failed on {count} of {total} problems ({', '.join(kinds)})"


def _import_error(path: Path) -> str | None:
    """The exception type noted by the harness when the module failed to import, if any."""
    try:
        data = json.loads(_read_regular(path, 4096))
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or "import_error" not in data:
        return None
    return _exception_name(data["import_error"])


def _read_regular(path: Path, limit: int) -> bytes:
    """The first ``limit`` bytes of ``path`` if it is a regular file (not a symlink, FIFO or
    device the sandboxed process put there), else b""."""
    fh = open_regular(path)
    if fh is None:
        return b""
    with fh:
        return fh.read(limit)


def _round(value: float) -> str:
    """Two significant digits: usage numbers are the scaffold's to choose, so a coarse count."""
    if not (math.isfinite(value) and value > 0):
        return "0"
    rounded = float(f"{value:.2g}")
    return f"{rounded:,.0f}" if rounded >= 10 else f"{rounded:g}"


def _usage_text(usage: dict[str, Any]) -> str:
    """The scoring proxy's usage to two significant digits (it is counted exactly elsewhere)."""
    text = f"about {_round(float(usage.get('requests', 0)))} calls, "
    text += f"{_round(float(usage.get('total_tokens', 0)))} tokens"
    if usage.get("cost") is not None:
        text += f", ${_round(float(usage['cost']))}"
    return text
