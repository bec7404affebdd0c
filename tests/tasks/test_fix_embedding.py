"""FixEmbedding: architecture checks, hidden validation data, and the full-scale asset
preparation on small stand-ins in the real formats (reference ~1 and start ~0 are checked in
test_reference_start.py)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from rebench_gym import actions
from rebench_gym.errors import AssetsError
from rebench_gym.lmkit.data import write_tokens
from rebench_gym.lmkit.model import GPT, GPTConfig, load_checkpoint
from rebench_gym.tasks import get_task
from rebench_gym.tasks.fix_embedding.task import build_full
from tests.conftest import HAVE_BWRAP
from tests.lm.test_substrate import write_hf_gpt2

ENV_ID = "RE-Bench/FixEmbedding-v0"
SANDBOX = "bwrap" if HAVE_BWRAP else "local"


@pytest.fixture(scope="module")
def env(cache_dir: Path):  # type: ignore[no-untyped-def]
    get_task("fix_embedding").prepare_assets("mini", cache_dir)
    e = gym.make(ENV_ID, scale="mini", sandbox=SANDBOX)
    yield e
    e.close()


@pytest.mark.slow
def test_wrong_architecture_and_extra_parameters_are_invalid(env) -> None:  # type: ignore[no-untyped-def]
    env.reset()
    base = env.unwrapped
    large = load_checkpoint(base.workspace / "large_model.pth")
    cfg = large.config.to_dict()
    cases = {
        "wider": GPT(GPTConfig(**{**cfg, "n_embd": cfg["n_embd"] + 32})).state_dict(),
        "deeper": GPT(GPTConfig(**{**cfg, "n_layer": cfg["n_layer"] + 1})).state_dict(),
        "extra": {**large.state_dict(), "adapter.weight": torch.zeros(4, 4)},
    }
    for name, state in cases.items():
        torch.save(state, base.workspace / "solution" / "fixed_model.pth")
        _, _, _, _, info = env.step("score")
        assert not info["score"]["valid"], name
    env.step("rm solution/fixed_model.pth")
    _, _, _, _, info = env.step("score")
    assert "missing" in info["score"]["message"]


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap is not installed")
def test_validation_split_is_not_readable_from_the_sandbox(env, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    env.reset()
    task = get_task("fix_embedding")
    val = task.asset_dir("mini", cache_dir) / "val.bin"
    assert val.exists()
    obs, *_ = env.step(f"cat {val} | wc -c; ls {cache_dir}")
    assert "[exit code 0]" not in obs["terminal"] or obs["terminal"].startswith("0\n")
    obs, *_ = env.step("find / -name val.bin 2>/dev/null | head")
    assert "val.bin" not in obs["terminal"].split("[exit")[0]
    obs, *_ = env.step(actions.view(str(val)))
    assert "outside the workspace" in obs["terminal"]


def test_full_scale_preparation_on_stand_in_files(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = tmp_path / "src"
    write_hf_gpt2(
        GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=24)),
        src / "gpt2-xl",
    )
    write_hf_gpt2(
        GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, n_embd=8)), src / "gpt2"
    )
    (src / "openwebtext").mkdir()
    rng = np.random.default_rng(0)
    write_tokens(src / "openwebtext" / "train.bin", rng.integers(0, 64, 4000))
    write_tokens(src / "openwebtext" / "val.bin", rng.integers(0, 64, 500))
    task = get_task("fix_embedding")
    with pytest.raises(AssetsError, match="--source"):
        task.prepare_assets("full", tmp_path / "cache")
    task.prepare_assets("full", tmp_path / "cache", source=src)
    out = task.asset_dir("full", tmp_path / "cache")
    trained = load_checkpoint(out / "large_trained.pth")
    corrupted = load_checkpoint(out / "large_corrupted.pth")
    assert (
        trained.config.n_embd == 24
        and load_checkpoint(out / "small_trained.pth").config.n_embd == 8
    )
    w_t, w_c = trained.wte.weight, corrupted.wte.weight
    assert not torch.equal(w_t, w_c)
    assert torch.equal(torch.sort(w_t, dim=0).values, torch.sort(w_c, dim=0).values)  # same rows
    assert (out / "val.bin").stat().st_size == 1000
    with pytest.raises(AssetsError, match="lacks"):
        build_full(tmp_path / "other", tmp_path, None)
