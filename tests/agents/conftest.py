"""Fixtures of the LLM-agent tests: a real mini kernel env with fixed anchors (no calibration)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import rebench_gym  # noqa: F401 - registers the ids

ENV_ID = "RE-Bench/OptimizeKernel-v0"

MakeEnv = Callable[..., gym.Env[Any, Any]]


@pytest.fixture
def make_kernel_env(cache_dir: Path) -> Iterator[MakeEnv]:
    """Build real mini kernel envs in the local sandbox, closed after the test."""
    envs: list[gym.Env[Any, Any]] = []

    def make(anchors: tuple[float, float] = (10.0, 0.0)) -> gym.Env[Any, Any]:
        env = gym.make(
            ENV_ID, scale="mini", sandbox="local", anchors=anchors, cache_dir=str(cache_dir)
        )
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.close()
