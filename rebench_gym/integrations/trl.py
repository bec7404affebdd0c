"""TRL's ``environment_factory`` door: one RE-Bench episode per GRPO rollout, its actions as tools.

TRL's ``GRPOTrainer(environment_factory=...)`` calls the factory with no arguments to get one
environment object per concurrent rollout, keeps the objects in a pool and reuses them: before
each rollout it calls ``reset(**row)`` with the dataset row and appends the string it returns to
the last user message; every public method other than ``reset`` and ``get_reward`` becomes a tool
whose JSON schema transformers builds from the type hints and the Google-style docstring (so
each tool's ``Args:`` section is what the model reads); after the rollout it calls
``get_reward()``. :class:`ReBenchToolEnv` has that shape, with one
:class:`~rebench_gym.env.ReBenchEnv` inside, so sandboxes, budgets' scoring, anchors and the
score log are the env's own: a tool call is exactly the env action of the same name.

The reward is the episode's final normalized score (best valid score call, as
:attr:`~rebench_gym.scoring.ScoreLog.normalized`; 0 = starting solution, 1 = reference). A rollout
that changed the workspace after its last ``score`` call (or never scored) is scored once more
when TRL asks for the reward, which costs one score call (about 10 s for mini OptimizeKernel on
2 idle cores), so a batch of rollouts costs at least one score call each.

TRL never closes pooled environments. :class:`ReBenchEnvFactory` remembers what it made and
closes it all on :meth:`ReBenchEnvFactory.close` (or leaving its ``with`` block); an object that
is garbage-collected or still open when the interpreter exits is closed then too. No method of
:class:`ReBenchToolEnv` is called ``close``: TRL would offer it to the model as a tool.

Usage (``pip install 'rebench-gym[trl]'``)::

    from trl import GRPOConfig, GRPOTrainer
    from rebench_gym.integrations.trl import ReBenchEnvFactory

    with ReBenchEnvFactory("RE-Bench/OptimizeKernel-v0", scale="mini") as factory:
        # no train_dataset needed: reset() returns the task's instructions as the prompt
        trainer = GRPOTrainer(model=..., args=GRPOConfig(max_steps=...),
                              environment_factory=factory)
        trainer.train()
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

from rebench_gym import actions as act
from rebench_gym.env import ReBenchEnv
from rebench_gym.envs.registration import task_name
from rebench_gym.errors import UsageError

__all__ = ["ReBenchEnvFactory", "ReBenchToolEnv", "ToolCall"]

DEFAULT_ENV_ID = "RE-Bench/OptimizeKernel-v0"


@dataclass(frozen=True)
class ToolCall:
    """One tool call of the current episode, as the environment received and answered it."""

    tool: str
    arguments: dict[str, Any]
    output: str


class ReBenchToolEnv:
    """One RE-Bench episode per TRL rollout; the public methods are the model's tools.

    Args:
        env_id: An ``RE-Bench/*-v0`` id or a task name.
        scale: ``"mini"`` (default: 2 CPU cores, no GPU) or ``"full"``.
        sandbox: ``"bwrap"`` (default), ``"docker"`` or ``"local"`` (no isolation).
        **env_kwargs: Further :class:`~rebench_gym.env.ReBenchEnv` arguments (``anchors``,
            ``max_output_chars``, ``command_timeout``, ``task_options``, ...).
    """

    def __init__(
        self,
        env_id: str = DEFAULT_ENV_ID,
        *,
        scale: str = "mini",
        sandbox: str = "bwrap",
        **env_kwargs: Any,
    ) -> None:
        self._env = ReBenchEnv(task_name(env_id), scale=scale, sandbox=sandbox, **env_kwargs)
        # closes the sandbox when this object is collected or at interpreter exit; it holds the
        # env's bound method, never this object, so it does not keep this object alive
        self._finalizer = weakref.finalize(self, self._env.close)
        self._calls: list[ToolCall] = []
        self._ended = False
        self._started = False

    # ----- what TRL calls besides the tools ------------------------------------------------
    def reset(self, **row: Any) -> str:
        """Start a new episode; returns the task instructions and the workspace tree.

        TRL passes the dataset row (``prompt`` and any other columns); an integer ``seed`` column
        seeds the env's reset, the other columns are not used.
        """
        seed = row.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise UsageError(f"the dataset's 'seed' column must hold integers, not {seed!r}")
        obs, _ = self._env.reset(seed=seed)
        self._calls = []
        self._ended = False
        self._started = True
        return f"{obs['terminal']}\n\nWorkspace files:\n{obs['files']}"

    def get_reward(self) -> float:
        """The episode's final normalized score (the final state is scored first if needed)."""
        if not self._started:
            raise RuntimeError("get_reward() before reset(): TRL resets every rollout first")
        if not self._ended:
            self._env.finish_episode("trl")
            self._ended = True
        return float(self._env.score_log.normalized)

    # ----- the tools -------------------------------------------------------------------------
    def bash(self, command: str, timeout: float | None = None) -> str:
        """Run a shell command in the workspace (a persistent bash: cd and variables persist).

        Args:
            command: The shell command line to run.
            timeout: Seconds before the command is killed (default and maximum: the
                environment's limit).

        Returns:
            The command's output and exit status.
        """
        limit = timeout
        if isinstance(limit, int | float) and not isinstance(limit, bool):
            # a policy may shorten its commands, never outwait the trainer's own limit
            limit = min(limit, self._env.command_timeout)
        return self._act("bash", act.bash(command, limit), command=command, timeout=timeout)

    def write_file(self, path: str, content: str) -> str:
        """Create or replace a file in the workspace; your solution lives under solution/.

        Args:
            path: File path relative to the workspace root, e.g. solution/solution.py.
            content: The complete new content of the file.

        Returns:
            A confirmation or an error message.
        """
        return self._act("write_file", act.write_file(path, content), path=path, content=content)

    def str_replace(self, path: str, old: str, new: str) -> str:
        """Replace the one occurrence of a piece of text in a workspace file.

        Args:
            path: File path relative to the workspace root.
            old: The exact text to replace; it must occur exactly once in the file.
            new: The text to put in its place.

        Returns:
            A confirmation or an error message.
        """
        return self._act(
            "str_replace", act.str_replace(path, old, new), path=path, old=old, new=new
        )

    def view(self, path: str, start: int | None = None, end: int | None = None) -> str:
        """Show a workspace file with line numbers, optionally only lines start to end.

        Args:
            path: File path relative to the workspace root.
            start: First line to show (1-based), or null for the file's start.
            end: Last line to show (inclusive), or null for the file's end.

        Returns:
            The numbered lines of the file, or an error message.
        """
        return self._act("view", act.view(path, start, end), path=path, start=start, end=end)

    def score(self) -> str:
        """Score the current solution/ directory (takes a while); the best valid score counts.

        Returns:
            The raw and normalized score, or why the solution is invalid.
        """
        return self._act("score", act.score())

    def submit(self) -> str:
        """End the episode; the final solution is scored if it changed since the last score.

        Returns:
            The episode's final normalized score.
        """
        return self._act("submit", act.submit())

    # ----- for callers (properties, so TRL does not offer them as tools) -------------------
    @property
    def env(self) -> ReBenchEnv:
        """The underlying env (its ``workspace``, ``score_log``, ``close()``, ...)."""
        return self._env

    @property
    def calls(self) -> tuple[ToolCall, ...]:
        """The tool calls of the current episode, in order."""
        return tuple(self._calls)

    @property
    def ended(self) -> bool:
        """Whether the current episode ended (``submit`` or :meth:`get_reward`)."""
        return self._ended

    # ----- internals -------------------------------------------------------------------------
    def _act(self, tool: str, action: str, **arguments: Any) -> str:
        if not self._started:
            raise RuntimeError(f"tool {tool!r} called before reset()")
        if self._ended:
            output = "[episode over] the episode was submitted; further tool calls do nothing"
        else:
            obs, _, terminated, truncated, _ = self._env.step(action)
            self._ended = terminated or truncated
            output = obs["terminal"]
        self._calls.append(ToolCall(tool, arguments, output))
        return output


class ReBenchEnvFactory:
    """The ``environment_factory`` to hand to TRL: makes :class:`ReBenchToolEnv` objects with
    fixed settings and closes every one it made on :meth:`close`.

    Args:
        env_id: An ``RE-Bench/*-v0`` id or a task name.
        scale: ``"mini"`` (default) or ``"full"``.
        sandbox: ``"bwrap"`` (default), ``"docker"`` or ``"local"``.
        **env_kwargs: Further :class:`~rebench_gym.env.ReBenchEnv` arguments.
    """

    def __init__(
        self,
        env_id: str = DEFAULT_ENV_ID,
        *,
        scale: str = "mini",
        sandbox: str = "bwrap",
        **env_kwargs: Any,
    ) -> None:
        task_name(env_id)  # an unknown id fails here, not inside the trainer
        self.env_id = env_id
        self.scale = scale
        self.sandbox = sandbox
        self.env_kwargs = dict(env_kwargs)
        self._made: list[ReBenchToolEnv] = []
        self._lock = threading.Lock()
        self._closed = False

    def __call__(self) -> ReBenchToolEnv:
        with self._lock:
            if self._closed:
                raise RuntimeError("this ReBenchEnvFactory is closed")
            env = ReBenchToolEnv(
                self.env_id, scale=self.scale, sandbox=self.sandbox, **self.env_kwargs
            )
            self._made.append(env)
            return env

    @property
    def environments(self) -> tuple[ReBenchToolEnv, ...]:
        """Every environment made so far (TRL's pool), in order of creation."""
        return tuple(self._made)

    def close(self) -> None:
        """Close every environment made (their sandboxes and workspaces). Idempotent."""
        with self._lock:
            self._closed = True
            made, self._made = self._made, []
        for env in made:
            env.env.close()

    def __enter__(self) -> ReBenchEnvFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
