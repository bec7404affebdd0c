"""EncodeObservation: the text observation and ``info`` as a fixed-size ``Box(float32)``.

The vector has three parts, in this order (``EncodeObservation.feature_names`` names every
entry):

1. **State** (:data:`STATE_FEATURES`), read from ``info``:

   ============== ====================================================================== =========
   name           meaning                                                                range
   ============== ====================================================================== =========
   budget_left    fraction left of the tightest budget (time, token or step), 1 if none  [0, 1]
   best_score     the episode's aggregated normalized score (0 while hidden)             [0, clip]
   last_score     normalized score of the latest valid score call (0 if none)            [0, clip]
   last_valid     +1 the latest score call was valid, -1 invalid, 0 no call yet          [-1, 1]
   score_calls    number of score calls / 10, capped at 1                                [0, 1]
   exit_ok        the last action was a shell command that exited 0                      {0, 1}
   exit_failed    the last action was a shell command that exited non-zero               {0, 1}
   timed_out      the last command timed out                                             {0, 1}
   action_error   the last action was malformed or its edit failed                       {0, 1}
   step           steps taken / ``step_scale`` (the StepBudget's limit if any), capped   [0, 1]
   output_length  log(1 + characters of ``terminal``) / log(1 + 100000), capped          [0, 1]
   ============== ====================================================================== =========

2. **Last command** (only when a :class:`~rebench_gym.wrappers.DiscreteCommands` is inside
   this wrapper): a one-hot of the menu entry run by the last step (all zeros after reset).

3. **Hashed bags of words** of the ``terminal`` text (``terminal_features`` buckets) and of the
   ``files`` tree (``files_features`` buckets; it lists sizes, so it tells solution variants
   apart). Tokens are lower-case runs of letters or of digits, hashed with CRC-32 (stable across
   processes, unlike ``hash``); the counts are damped with ``log1p`` and scaled to unit length.

Scores are clipped to ``[0, score_clip]`` (normalized scores have no upper bound, but a
``Box`` must). The original text stays available in ``info["text_observation"]``.
"""

from __future__ import annotations

import math
import re
import zlib
from typing import Any

import gymnasium as gym
import numpy as np

from rebench_gym.errors import UsageError

#: names of the state features, in vector order
STATE_FEATURES = (
    "budget_left",
    "best_score",
    "last_score",
    "last_valid",
    "score_calls",
    "exit_ok",
    "exit_failed",
    "timed_out",
    "action_error",
    "step",
    "output_length",
)
_TOKEN = re.compile(r"[a-z]+|[0-9]+")
_MAX_TEXT = 200_000  # characters of each text that are hashed (start and end kept)


def hashed_bag_of_words(text: str, buckets: int) -> np.ndarray:
    """A ``(buckets,)`` float32 vector: log-damped token counts per CRC-32 bucket, unit length.

    All zeros for text without tokens.
    """
    vec = np.zeros(buckets, dtype=np.float64)
    if buckets == 0:
        return vec.astype(np.float32)
    if len(text) > _MAX_TEXT:
        text = text[: _MAX_TEXT // 2] + " " + text[-_MAX_TEXT // 2 :]
    for token in _TOKEN.findall(text.lower()):
        vec[zlib.crc32(token.encode()) % buckets] += 1.0
    vec = np.log1p(vec)
    norm = float(np.linalg.norm(vec))
    if norm > 0:
        vec /= norm
    return vec.astype(np.float32)


class EncodeObservation(gym.Wrapper[np.ndarray, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """Encode an RE-Bench observation (``Dict`` of texts) and ``info`` as a ``Box(float32)``.

    See the module docstring for the layout. Put it outside
    :class:`~rebench_gym.wrappers.DiscreteCommands` (to get the last-command one-hot) and the
    budget wrappers (to see what they have left).

    Args:
        env: an RE-Bench env, possibly wrapped.
        terminal_features: buckets of the ``terminal`` bag of words (>= 0).
        files_features: buckets of the ``files`` bag of words (>= 0).
        score_clip: upper bound of the score features (> 0).
        step_scale: steps that map to 1.0; default the StepBudget's limit if there is one,
            else 100.

    Raises:
        UsageError: a negative or non-integer feature count, or a non-positive bound.
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        terminal_features: int = 64,
        files_features: int = 32,
        score_clip: float = 5.0,
        step_scale: int | None = None,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self,
            terminal_features=terminal_features,
            files_features=files_features,
            score_clip=score_clip,
            step_scale=step_scale,
        )
        gym.Wrapper.__init__(self, env)
        counts = {"terminal_features": terminal_features, "files_features": files_features}
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UsageError(f"{name} must be a whole number >= 0, not {value!r}")
        if not isinstance(score_clip, int | float) or not score_clip > 0:
            raise UsageError(f"score_clip must be a positive number, not {score_clip!r}")
        if step_scale is None:
            step_scale = _find_attr(env, "max_steps") or 100
        if isinstance(step_scale, bool) or not isinstance(step_scale, int) or step_scale <= 0:
            raise UsageError(f"step_scale must be a positive whole number, not {step_scale!r}")
        self.terminal_features = terminal_features
        self.files_features = files_features
        self.score_clip = float(score_clip)
        self.step_scale = int(step_scale)
        names = _find_attr(env, "command_names")
        self.command_names: list[str] = list(names) if names else []
        self.feature_names: list[str] = (
            list(STATE_FEATURES)
            + [f"command={n}" for n in self.command_names]
            + [f"terminal_hash_{i}" for i in range(terminal_features)]
            + [f"files_hash_{i}" for i in range(files_features)]
        )
        low = np.zeros(len(self.feature_names), dtype=np.float32)
        high = np.ones(len(self.feature_names), dtype=np.float32)
        high[STATE_FEATURES.index("best_score")] = self.score_clip
        high[STATE_FEATURES.index("last_score")] = self.score_clip
        low[STATE_FEATURES.index("last_valid")] = -1.0
        self._low, self._high = low, high
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self._steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the env; the observation is the encoded reset observation."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._steps = 0
        info["text_observation"] = obs
        return self.encode(obs, info), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Step the env and encode its observation."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._steps += 1
        info["text_observation"] = obs
        return self.encode(obs, info), float(reward), terminated, truncated, info

    def encode(self, obs: Any, info: dict[str, Any]) -> np.ndarray:
        """The feature vector of one observation and its ``info``."""
        terminal = str(obs.get("terminal", "")) if isinstance(obs, dict) else str(obs)
        files = str(obs.get("files", "")) if isinstance(obs, dict) else ""
        state = self._state(terminal, info)
        onehot = np.zeros(len(self.command_names), dtype=np.float32)
        index = info.get("command_index")
        if isinstance(index, int) and 0 <= index < len(onehot):
            onehot[index] = 1.0
        vec = np.concatenate(
            [
                state,
                onehot,
                hashed_bag_of_words(terminal, self.terminal_features),
                hashed_bag_of_words(files, self.files_features),
            ]
        ).astype(np.float32)
        return np.clip(vec, self._low, self._high)

    def _state(self, terminal: str, info: dict[str, Any]) -> np.ndarray:
        rows = [r for r in info.get("score_log") or [] if isinstance(r, dict)]
        valid_scores = [
            r["normalized"] for r in rows if r.get("valid") and _finite(r.get("normalized"))
        ]
        exit_code = info.get("exit_code")
        values = {
            "budget_left": _budget_left(info),
            "best_score": _num(info.get("best_normalized")),
            "last_score": valid_scores[-1] if valid_scores else 0.0,
            "last_valid": 0.0 if not rows else (1.0 if rows[-1].get("valid") else -1.0),
            "score_calls": min(len(rows) / 10.0, 1.0),
            "exit_ok": float(exit_code == 0),
            "exit_failed": float(isinstance(exit_code, int) and exit_code != 0),
            "timed_out": float(bool(info.get("timed_out"))),
            "action_error": float("action_error" in info),
            "step": min(self._steps / self.step_scale, 1.0),
            "output_length": min(math.log1p(len(terminal)) / math.log1p(100_000), 1.0),
        }
        return np.array([values[n] for n in STATE_FEATURES], dtype=np.float32)


def _budget_left(info: dict[str, Any]) -> float:
    """The smallest fraction left among the budgets reported in ``info`` (1.0 if none)."""
    fractions = [1.0]
    time_state = info.get("time_budget")
    if isinstance(time_state, dict) and _num(time_state.get("limit_s")) > 0:
        fractions.append(_num(time_state.get("left_s")) / _num(time_state["limit_s"]))
    step_state = info.get("step_budget")
    if isinstance(step_state, dict) and _num(step_state.get("limit")) > 0:
        fractions.append(_num(step_state.get("left")) / _num(step_state["limit"]))
    token_state = info.get("token_budget")
    if isinstance(token_state, dict):
        limits = token_state.get("limits") or {}
        left = token_state.get("left") or {}
        for key, limit in limits.items():
            if _num(limit) > 0 and key in left:
                fractions.append(_num(left[key]) / _num(limit))
    return float(min(max(min(fractions), 0.0), 1.0))


def _find_attr(env: gym.Env[Any, Any], name: str) -> Any:
    """``name`` from the outermost wrapper of ``env`` that has it, else ``None``."""
    inner: Any = env
    while inner is not None:
        if name in vars(inner) or name in vars(type(inner)):
            return getattr(inner, name)
        inner = getattr(inner, "env", None)
    return None


def _num(value: Any) -> float:
    return float(value) if _finite(value) else 0.0


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


__all__ = ["STATE_FEATURES", "EncodeObservation", "hashed_bag_of_words"]
