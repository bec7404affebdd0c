"""ReBenchEnv: the one generic environment class behind every ``RE-Bench/*-v0`` id."""

from __future__ import annotations

import logging
import math
import os
import secrets
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from rebench_gym import actions as act
from rebench_gym.cache import cache_root
from rebench_gym.calibration import get_anchors
from rebench_gym.envs.observation import WorkspaceListing, format_exec, number_lines
from rebench_gym.errors import ActionError, UnenforcedLimitWarning, UsageError
from rebench_gym.sandbox import PROVIDERS, Sandbox, default_sandbox_name, make_sandbox
from rebench_gym.sandbox.leftovers import remove_tree, scratch_dir
from rebench_gym.sandbox.output import truncate_middle
from rebench_gym.scoring import Anchors, ScoreLog, ScoreResult
from rebench_gym.spaces import UnicodeText
from rebench_gym.tasks import SCALES, Scale, ScoreContext, Task, get_task
from rebench_gym.tasks.base import EpisodeService, EpisodeStore

if TYPE_CHECKING:
    from rebench_gym.results.solutions import SolutionKeeper

_log = logging.getLogger(__name__)

MAX_FILE_BYTES = 10_000_000


class ReBenchEnv(gym.Env[dict[str, str], str]):
    """An RE-Bench task as a Gymnasium environment.

    ## Description
    The agent works in a sandboxed workspace that mirrors the original task's home directory:
    task files at its root, its own work in ``solution/``. It acts through shell commands and
    file edits and may ask for its solution to be scored at any time, as in RE-Bench.

    ## Observation
    ``Dict(terminal=Text, files=Text)``: ``terminal`` is the result of the last action (output,
    then a status line; long output cut in the middle with a marker; invalid UTF-8 replaced),
    ``files`` the workspace tree with sizes. The reset observation's ``terminal`` holds the task
    instructions.

    ## Action
    A string: a shell command for a persistent bash (``cd`` and variables persist), or a JSON
    tool call (``bash``, ``write_file``, ``str_replace``, ``view``, ``score``, ``submit``), or the
    bare words ``score`` / ``submit``. See :mod:`rebench_gym.actions`. Malformed actions give an
    error observation and change nothing.

    ## Reward
    The change of the episode's aggregated normalized score (best valid score; last valid for
    ScalingLaw), so the rewards of an episode sum to its final normalized score. Starting
    solution = 0, reference = 1, below start = 0, no upper clip. With ``hidden_score`` (always for
    ScalingLaw) the score call reports only validity and the whole reward is paid on the last step.

    ## Termination and Truncation
    ``submit`` terminates (scoring the final state first when it was never scored). The env
    itself never truncates; budget wrappers (:mod:`rebench_gym.wrappers`) do, calling
    :meth:`finish_episode` so the final state is scored.

    ## Hardware
    ``scale="full"`` needs the task's GPUs (OptimizeKernel: one H100-class CUDA GPU); ``reset``
    raises :class:`~rebench_gym.errors.HardwareError` otherwise. ``scale="mini"`` runs on 2 CPU
    cores.

    ## Arguments
    * ``task``: task name (set by the registered id), or a :class:`~rebench_gym.tasks.Task`
      instance (e.g. one with changed parameters, as ``rebench rehearse`` uses).
    * ``scale``: ``"full"`` (default) or ``"mini"``.
    * ``sandbox``: ``"local"``, ``"bwrap"`` or ``"docker"``; default ``"bwrap"`` (``"local"``
      isolates nothing and is used only when named).
    * ``hidden_score``: the RE-Bench ``hidden_score`` variant.
    * ``command_timeout``: default seconds per shell command (a ``bash`` call may set its own).
    * ``max_output_chars``: longest ``terminal`` text.
    * ``score_timeout``: seconds a score call may take (default from the task).
    * ``cache_dir``: where assets and calibrated anchors are cached.
    * ``anchors``: ``(start, reference)`` raw scores to use instead of the default anchors.
    * ``sandbox_options``: provider options; docker: ``image``, ``network`` (default False),
      ``gpus`` (count, ``"all"`` or device ids), ``cpus``, ``memory_gb`` (default: the task's
      hardware).
    * ``task_options``: task-specific settings (e.g. the LLM endpoint of RustCodecontests or
      the judge of FinetuneGPT2QA); each task's README section lists its keys.
    * ``keep_solutions``: a directory where every score call keeps the solution it scored
      (:class:`~rebench_gym.results.solutions.SolutionKeeper`; the row's ``solution_id`` names
      it); the run store's recorder sets the keeper itself.

    ## Version History
    * v0: initial release.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"]}  # noqa: RUF012 - Gymnasium's API

    def __init__(
        self,
        task: str | Task,
        scale: str = "full",
        sandbox: str | None = None,
        hidden_score: bool = False,
        command_timeout: float = 600.0,
        max_output_chars: int = 16_000,
        score_timeout: float | None = None,
        cache_dir: str | None = None,
        anchors: tuple[float, float] | None = None,
        render_mode: str | None = None,
        sandbox_options: dict[str, Any] | None = None,
        task_options: dict[str, Any] | None = None,
        keep_solutions: str | None = None,
    ) -> None:
        if scale not in SCALES:
            raise UsageError(f"scale must be one of {SCALES}, not {scale!r}")
        if sandbox is not None and sandbox not in PROVIDERS:
            raise UsageError(f"sandbox must be one of {PROVIDERS}, not {sandbox!r}")
        if command_timeout <= 0 or max_output_chars < 200:
            raise UsageError("command_timeout must be > 0 and max_output_chars >= 200")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise UsageError(f"render_mode must be None or 'ansi', not {render_mode!r}")
        self._task: Task | None = task if isinstance(task, Task) else None
        self.task_name = task.spec.name if isinstance(task, Task) else task
        self.scale: Scale = scale
        self.sandbox_name = sandbox or default_sandbox_name()
        self.hidden_score = bool(hidden_score)
        self.command_timeout = float(command_timeout)
        self.max_output_chars = int(max_output_chars)
        self.score_timeout = score_timeout
        self.cache_dir = cache_dir
        self.anchor_override = anchors
        self.sandbox_options = dict(sandbox_options or {})
        self.task_options = dict(task_options or {})
        self.render_mode = render_mode
        limit = self.max_output_chars + 1000
        self.observation_space: gym.spaces.Dict = gym.spaces.Dict(  # type: ignore[assignment]
            {
                "terminal": UnicodeText(max_length=max(limit, 64_000)),
                "files": UnicodeText(max_length=64_000),
            }
        )
        self.action_space = UnicodeText(max_length=10_000_000)
        self._sandbox: Sandbox | None = None
        self._listing: WorkspaceListing | None = None
        self._root: Path | None = None
        self._log: ScoreLog | None = None
        self._anchors: Anchors | None = None
        self._cache = Path()  # the asset cache, resolved at reset
        self._services: list[EpisodeService] = []
        self._episode: EpisodeStore | None = None
        self._paid = 0.0
        self._dirty = True
        self._done = False
        self._steps = 0
        self._started = 0.0
        self._last_obs: dict[str, str] = {}
        self._closed = False
        #: where score calls keep the solution they score (set by the run store's recorder,
        #: :class:`~rebench_gym.results.store.StoreRecorder`); None keeps nothing
        self.solution_keeper: SolutionKeeper | None = None
        if keep_solutions is not None:
            from rebench_gym.results.solutions import SolutionKeeper

            self.solution_keeper = SolutionKeeper(Path(keep_solutions))
        self._kept: str | None = None

    # ----- properties ------------------------------------------------------------------------
    @property
    def task(self) -> Task:
        """The task object (loaded on first use; raises if the task is not built)."""
        if self._task is None:
            self._task = get_task(self.task_name)
        return self._task

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            raise RuntimeError("call reset() before step()")
        return self._sandbox

    @property
    def workspace(self) -> Path:
        """Host directory of the workspace (valid after reset)."""
        return self.sandbox.workspace

    @property
    def score_hidden(self) -> bool:
        return self.hidden_score or self.task.spec.always_hidden

    @property
    def score_log(self) -> ScoreLog:
        if self._log is None:
            raise RuntimeError("call reset() first")
        return self._log

    # ----- gym API ---------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        super().reset(seed=seed)
        task = self.task
        task.check_hardware(self.scale)
        cache = self._cache = cache_root(self.cache_dir)
        task.prepare_assets(self.scale, cache, progress=_say)
        self._anchors = self._resolve_anchors(cache)
        if self._root is None:
            self._root = scratch_dir("env")
        workspace = self._root / "workspace"
        workspace.mkdir(exist_ok=True)
        if self._sandbox is None:
            # made before the workspace is filled: it may mount a filesystem of the task's size
            self._sandbox = self._make_sandbox(workspace, cache)
        else:
            self._sandbox.kill_all()
        # Empty the workspace but keep the directory: a container's bind mount stays valid.
        for child in list(workspace.iterdir()):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        self._stop_services()
        task.populate_workspace(workspace, self.scale, cache)
        self._services = task.start_services(self.scale, cache, workspace, self.task_options)
        assert self._root is not None
        self._episode = EpisodeStore(Path(tempfile.mkdtemp(prefix="episode-", dir=self._root)))
        if self._listing is not None:
            self._listing.invalidate()
        self._sandbox.start()
        self._log = ScoreLog(self._anchors, task.spec.aggregation)
        self._paid = 0.0
        self._dirty = True
        self._done = False
        self._steps = 0
        self._started = time.monotonic()
        obs = {"terminal": task.instructions(self.scale), "files": self._tree()}
        self._last_obs = obs
        return dict(obs), self._info()

    def _make_sandbox(self, workspace: Path, cache: Path) -> Sandbox:
        """The episode's sandbox, within the task's resources; warns about what it cannot
        enforce here (once per env) and about ``local``'s missing isolation."""
        task = self.task
        sandbox = make_sandbox(
            self.sandbox_name,
            workspace,
            max_output_bytes=4 * self.max_output_chars,
            hidden=task.hidden_paths(self.scale, cache),
            image=task.spec.name,
            image_variant=self.scale,
            resources=task.spec.scale(self.scale).resources,
            options=self.sandbox_options,
        )
        if not sandbox.isolates:
            root = (
                " AS ROOT: every agent command runs with full control of this machine"
                if os.geteuid() == 0
                else ""
            )
            warnings.warn(
                f"sandbox='local' gives the agent no isolation{root}. It can read hidden "
                "assets and the scorer's code. Use it for development only (sandbox='bwrap' "
                "isolates).",
                stacklevel=3,
            )
        unenforced = sandbox.enforcement.warning(sandbox.name)
        if unenforced is not None:
            warnings.warn(unenforced, UnenforcedLimitWarning, stacklevel=3)
        return sandbox

    def step(self, action: str) -> tuple[dict[str, str], float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("the episode has ended; call reset()")
        self.sandbox  # noqa: B018 - raises before reset
        self._steps += 1
        extra: dict[str, Any] = {}
        reward = 0.0
        terminated = False
        try:
            parsed = act.parse_action(action)
        except ActionError as e:
            terminal = f"[invalid action] {e}"
            extra["action_error"] = str(e)
            parsed = None
        if isinstance(parsed, act.Score):
            reward, terminal, extra = self._score_action()
        elif isinstance(parsed, act.Submit):
            reward, final_info = self.finish_episode("submit")
            terminated = True
            terminal = "[submitted] " + final_info.get("final_message", "")
            extra = final_info
        elif parsed is not None:
            terminal, extra = self._run(parsed)
        obs = {"terminal": truncate_middle(terminal, self.max_output_chars), "files": self._tree()}
        self._last_obs = obs
        info = self._info()
        info.update(extra)
        return dict(obs), reward, terminated, False, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._last_obs.get("terminal", "")
        return None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._listing is not None:
            self._listing.close()
        self._stop_services()
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
        if self._root is not None:
            remove_tree(self._root)
            self._root = None

    # ----- scoring ---------------------------------------------------------------------------
    def score_now(self) -> ScoreResult:
        """Run the task's scorer on a private copy of ``solution/`` and log the row.

        The agent's processes are stopped meanwhile: nothing of theirs can change the copy
        while it is made, contend with the scored run for CPUs, or time it.
        """
        log = self.score_log
        assert self._root is not None
        work = Path(tempfile.mkdtemp(prefix="score-", dir=self._root))
        self._kept = None
        try:
            with self.sandbox.paused():
                result = self._score_copy(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.add(result, elapsed_s=time.monotonic() - self._started, solution_id=self._kept)
        self._dirty = False
        return result

    def _score_copy(self, work: Path) -> ScoreResult:
        """Copy ``solution/`` into ``work`` and score the copy."""
        solution = work / "solution"
        result = self._snapshot(solution)
        if result is None:
            self._keep(solution)
            scratch = work / "scratch"
            scratch.mkdir()
            spec = self.task.spec.scale(self.scale)
            timeout = float(self.score_timeout or spec.score_timeout_s)
            ctx = ScoreContext(
                solution=solution,
                sandbox=self.sandbox,
                scale=self.scale,
                timeout_s=timeout,
                seed=secrets.randbits(63),
                work_dir=scratch,
                cache=self._cache,
                options=self.task_options,
                episode=self._episode,
            )
            killed_before = self.sandbox.spawn_oom_kills()
            try:
                result = self.task.score(ctx)
                if not result.valid and self.sandbox.spawn_oom_kills() > killed_before:
                    limit = self.sandbox.resources.memory_bytes if self.sandbox.resources else None
                    why = self.sandbox.oom_message(limit)
                    result = ScoreResult.invalid(f"[killed: {why}] {result.message}")
            except MemoryError:
                result = ScoreResult.invalid("the scorer ran out of memory")
            except Exception as e:  # a scorer bug must not crash the agent's episode
                # the text of a scorer's exception may hold hidden data: the type only
                _log.exception("the scorer of %s failed", self.task_name)
                result = ScoreResult.invalid(f"scoring failed: {type(e).__name__}")
        return result

    def _keep(self, solution: Path) -> None:
        """Keep the snapshot about to be scored (exactly what the scorer gets), if asked to.

        A failure to keep is logged and the score call goes on: losing the copy must not
        cost the agent its score.
        """
        if self.solution_keeper is None:
            return
        try:
            self._kept = self.solution_keeper.keep(solution)
        except OSError:
            _log.exception("could not keep the scored solution in %s", self.solution_keeper.root)

    def _snapshot(self, dest: Path) -> ScoreResult | None:
        limit = self.task.max_solution_bytes(self.scale)
        try:
            self.sandbox.copy_out(
                "solution", dest, max_bytes=limit, skip=frozenset({"__pycache__"})
            )
        except FileNotFoundError:
            return ScoreResult.invalid("there is no solution/ directory in the workspace")
        except ActionError as e:
            return ScoreResult.invalid(str(e))
        return None

    def _score_action(self) -> tuple[float, str, dict[str, Any]]:
        result = self.score_now()
        row = self.score_log.rows[-1]
        if self.score_hidden:
            text = "[score] valid" if result.valid else "[score] invalid: " + result.message
            score_info: dict[str, Any] = {
                "valid": result.valid,
                "raw": None,
                "normalized": None,
                "message": result.message if not result.valid else "hidden",
            }
            return 0.0, text, {"score": score_info}
        reward = self._pay()
        if result.valid:
            text = (
                f"[score] raw {row.raw:.4f}, normalized {row.normalized:.3f} "
                f"(best so far {self.score_log.normalized:.3f}): {result.message}"
            )
        else:
            text = f"[score] invalid: {result.message}"
        score_info = {
            "raw": None if math.isnan(row.raw) else row.raw,
            "normalized": row.normalized,
            "valid": row.valid,
            "message": result.message,
        }
        return reward, text, {"score": score_info}

    def _pay(self) -> float:
        agg = self.score_log.normalized
        reward = agg - self._paid
        self._paid = agg
        return reward

    def finish_episode(self, reason: str) -> tuple[float, dict[str, Any]]:
        """End the episode: score the final state if it was never scored, pay what is owed.

        Called by ``submit`` and by budget wrappers. Returns the reward of this last step and
        info entries describing the final score. Idempotent.
        """
        if self._done:
            return 0.0, {}
        extra: dict[str, Any] = {"end_reason": reason}
        if self._dirty or not self.score_log.rows:
            result = self.score_now()
            extra["final_scored"] = True
            extra["final_valid"] = result.valid
        self._done = True
        reward = self._pay()
        log = self.score_log
        extra["final_normalized"] = log.normalized
        extra["final_raw"] = None if math.isnan(log.raw) else log.raw
        extra["final_message"] = (
            f"final normalized score {log.normalized:.3f} "
            f"({len(log.valid_rows())} valid of {len(log.rows)} score calls)"
        )
        return reward, extra

    def episode_info(self) -> dict[str, Any]:
        """The episode's current machine-readable state, as ``reset`` and ``step`` put in ``info``.

        Wrappers that end an episode themselves (the budgets) use it to report the score log
        after :meth:`finish_episode` added the final row.
        """
        return self._info()

    # ----- actions ---------------------------------------------------------------------------
    def _run(self, parsed: act.Action) -> tuple[str, dict[str, Any]]:
        sb = self.sandbox
        self._dirty = True
        try:
            if isinstance(parsed, act.Bash):
                timeout = parsed.timeout or self.command_timeout
                result = sb.exec(parsed.command, timeout)
                info = {
                    "exit_code": result.exit_code,
                    "timed_out": result.timed_out,
                    "duration_s": result.duration_s,
                }
                return format_exec(result, self.max_output_chars), info
            if isinstance(parsed, act.WriteFile):
                sb.write_file(parsed.path, parsed.content.encode())
                return f"[wrote {len(parsed.content.encode())} bytes to {parsed.path}]", {}
            if isinstance(parsed, act.StrReplace):
                text = self._read_text(parsed.path)
                count = text.count(parsed.old)
                if count != 1:
                    return (
                        f"[str_replace failed] 'old' occurs {count} times in {parsed.path}; "
                        "it must occur exactly once"
                    ), {"action_error": "str_replace"}
                sb.write_file(parsed.path, text.replace(parsed.old, parsed.new).encode())
                return f"[replaced 1 occurrence in {parsed.path}]", {}
            if isinstance(parsed, act.View):
                return number_lines(self._read_text(parsed.path), parsed.start, parsed.end), {}
        except ActionError as e:
            return f"[invalid action] {e}", {"action_error": str(e)}
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
            return f"[file error] {e.strerror or e}: {getattr(e, 'filename', '')}", {
                "action_error": str(e)
            }
        raise AssertionError(f"unhandled action {parsed!r}")  # pragma: no cover

    def _read_text(self, path: str) -> str:
        data = self.sandbox.read_file(path, max_bytes=MAX_FILE_BYTES)
        if b"\0" in data[:8192]:
            raise ActionError(f"{path} looks binary; use a shell command such as xxd")
        return data.decode("utf-8", errors="replace")

    # ----- helpers ---------------------------------------------------------------------------
    def _resolve_anchors(self, cache: Path) -> Anchors:
        if self.anchor_override is not None:
            start, ref = self.anchor_override
            return Anchors(float(start), float(ref), "user")
        return get_anchors(self.task, self.scale, cache_dir=cache)

    def _tree(self) -> str:
        if self._listing is None or self._listing.root != self.workspace:
            if self._listing is not None:
                self._listing.close()
            self._listing = WorkspaceListing(self.workspace)
        return self._listing.text()

    def _stop_services(self) -> None:
        """End the episode's services and what its scorer kept between score calls."""
        services, self._services = self._services, []
        for service in services:
            service.close()
        episode, self._episode = self._episode, None
        if episode is not None:
            episode.close()

    def _info(self) -> dict[str, Any]:
        log = self.score_log
        hidden = self.score_hidden
        anchors = self._anchors.to_dict() if self._anchors else None
        info: dict[str, Any] = {service.name: service.info() for service in self._services}
        return info | {
            "task": self.task.spec.env_id,
            "scale": self.scale,
            "sandbox": self.sandbox_name,
            "step": self._steps,
            "elapsed_s": round(time.monotonic() - self._started, 3) if self._steps else 0.0,
            "best_normalized": None if hidden else log.normalized,
            "score_log": log.to_list(hidden=hidden),
            "anchors": anchors,
            "hidden_score": hidden,
            "resources": self.sandbox.enforcement.info(),
        }


def _say(message: str) -> None:
    print(f"[rebench] {message}", file=sys.stderr, flush=True)
