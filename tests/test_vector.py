"""Gymnasium's vector API over the env: text observations batch correctly, also through the
shared memory of AsyncVectorEnv (any Unicode, not only Text's charset)."""

from __future__ import annotations

import gymnasium as gym
import pytest

import rebench_gym  # noqa: F401
from rebench_gym import actions
from tests.conftest import HAVE_BWRAP

SANDBOX = "bwrap" if HAVE_BWRAP else "local"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec_batches_text_observations(mode: str) -> None:
    envs = gym.make_vec(
        "RE-Bench/OptimizeKernel-v0",
        num_envs=2,
        vectorization_mode=mode,
        scale="mini",
        sandbox=SANDBOX,
        anchors=(4.0, 3.0),
    )
    try:
        obs, _ = envs.reset(seed=0)
        assert len(obs["terminal"]) == 2 and "prefix_sum" in obs["terminal"][1]
        text = "ünïcødé ✓ 漢字"
        obs, rewards, terms, truncs, _ = envs.step(
            (actions.write_file("u.txt", text), "echo second env")
        )
        assert obs["terminal"][1].startswith("second env")
        obs, *_ = envs.step(("cat u.txt", "cat u.txt"))
        assert obs["terminal"][0].startswith(text)
        assert "No such file" in obs["terminal"][1]  # each env has its own workspace
        assert "u.txt" in obs["files"][0] and "u.txt" not in obs["files"][1]
        first = obs["terminal"][0]
        envs.step(("echo changed", "true"))
        assert obs["terminal"][0] == first  # returned observations are copies
        assert list(rewards) == [0.0, 0.0] and not any(terms) and not any(truncs)
    finally:
        envs.close()
