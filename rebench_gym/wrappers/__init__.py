"""Gymnasium wrappers for RE-Bench envs: budgets that end episodes, and trajectory recording.

* :class:`TimeBudget`: RE-Bench's wall-clock limit (agent thinking time included), with
  :meth:`TimeBudget.paused` / :func:`pause_budgets` for API waits and an optional limit on score
  calls.
* :class:`TokenBudget`: limits on the tokens (and cost) an agent spends; LLM agents report real
  usage through its :class:`UsageMeter` (:func:`find_usage_meter`), other agents are counted by
  an estimate over their actions and observations.
* :class:`RecordTrajectory`: a crash-safe JSONL log of each step; :func:`read_trajectory`.
* For RL libraries: :class:`DiscreteCommands` (a ``Discrete`` action space over a per-task
  command menu, :func:`load_menu`), :class:`EncodeObservation` (a ``Box`` observation) and
  :class:`StepBudget` (a step limit that scores the final state).

A budget that runs out ends the episode with ``truncated=True``, scores the final state and
reports which budget ended it in ``info["truncated_by"]``. Stack them with the recorder
outermost::

    env = gym.make("RE-Bench/OptimizeKernel-v0", scale="mini")
    env = TimeBudget(env, seconds=3600)
    env = TokenBudget(env, max_tokens=2_000_000)
    env = RecordTrajectory(env, "runs/episode.jsonl")
"""

from __future__ import annotations

from rebench_gym.wrappers.budgets import BudgetWrapper
from rebench_gym.wrappers.discrete import DiscreteCommands, StepBudget
from rebench_gym.wrappers.encode import EncodeObservation
from rebench_gym.wrappers.menus import Command, load_menu
from rebench_gym.wrappers.time_budget import TimeBudget, pause_budgets
from rebench_gym.wrappers.token_budget import (
    CHARS_PER_TOKEN,
    TokenBudget,
    UsageMeter,
    estimate_tokens,
    find_usage_meter,
)
from rebench_gym.wrappers.trajectory import (
    SCHEMA_VERSION,
    RecordedEpisode,
    RecordTrajectory,
    read_trajectory,
)

__all__ = [
    "CHARS_PER_TOKEN",
    "SCHEMA_VERSION",
    "BudgetWrapper",
    "Command",
    "DiscreteCommands",
    "EncodeObservation",
    "RecordTrajectory",
    "RecordedEpisode",
    "StepBudget",
    "TimeBudget",
    "TokenBudget",
    "UsageMeter",
    "estimate_tokens",
    "find_usage_meter",
    "load_menu",
    "pause_budgets",
    "read_trajectory",
]
