"""FixEmbedding: architecture checks, hidden validation data, and the full-scale asset
preparation on small stand-ins in the real formats (reference ~1 and start ~0 are checked in
test_reference_start.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from rebench_gym import actions
from rebench_gym.errors import AssetsError
from rebench_gym.lmkit import model as lm_model
from rebench_gym.lmkit.data import write_tokens
from rebench_gym.lmkit.model import GPT, GPTConfig, load_checkpoint, save_checkpoint
from rebench_gym.lmkit.train import evaluate, train
from rebench_gym.tasks import get_task
from rebench_gym.tasks.fix_embedding.task import PERMUTATION_SEED, build_full, permute_embedding
from tests.conftest import HAVE_BWRAP
from tests.lmkit.test_substrate import write_hf_gpt2

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


def _markov_tokens(n: int, vocab: int, seed: int) -> np.ndarray:
    """Tokens of a fixed random first-order Markov chain (learnable structure for tiny models)."""
    nxt = np.random.default_rng(0).integers(0, vocab, size=(vocab, 3))  # three successors each
    draw = np.random.default_rng(seed).integers(0, 3, size=n)
    out = np.empty(n, dtype=np.int64)
    out[0] = 0
    for i in range(1, n):
        out[i] = nxt[out[i - 1], draw[i]]
    return out


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models: more threads only add overhead on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_full_reference_recipe_repairs_a_corrupted_model_on_stand_ins(
    tmp_path: Path, one_thread: None
) -> None:
    """reference/full/fix_embedding.py (the original reference's adapter -> unfreeze -> bake
    recipe), shrunk by its flags, turns a corrupted GPT back into a good one of the same shape."""
    vocab, block = 48, 16
    train_tokens = _markov_tokens(30000, vocab, 1)
    val_tokens = _markov_tokens(4000, vocab, 2)
    ws = tmp_path / "ws"
    (ws / "data").mkdir(parents=True)
    (ws / "solution").mkdir()
    write_tokens(ws / "data" / "train.bin", train_tokens)
    torch.manual_seed(0)
    large = GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=2, n_head=2, n_embd=32))
    train(large, train_tokens, steps=120, lr=3e-3, seed=0)
    good = evaluate(large, val_tokens, block_size=block)
    permute_embedding(large, PERMUTATION_SEED)
    corrupted = evaluate(large, val_tokens, block_size=block)
    save_checkpoint(large, ws / "large_model.pth")
    small = GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=1, n_head=2, n_embd=16))
    train(small, train_tokens, steps=120, lr=3e-3, seed=0)
    save_checkpoint(small, ws / "small_correct_model.pth")
    shutil.copy(lm_model.__file__, ws / "model.py")
    for path, content in get_task("fix_embedding").reference_files("full").items():
        (ws / "solution" / path).write_bytes(content)
    args = "--iters 50,50,100 --lrs 1e-2,1e-3,1e-3 --micro-batch 16 --grad-accum 1 --warmup 5"
    proc = subprocess.run(
        [sys.executable, "solution/fix_embedding.py", *args.split(), "--device", "cpu"],
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "stage1 iter" in proc.stdout and "stage3 iter" in proc.stdout
    fixed = load_checkpoint(ws / "solution" / "fixed_model.pth")
    assert fixed.config == large.config  # the large model's own architecture
    assert set(fixed.state_dict()) == set(large.state_dict())
    repaired = evaluate(fixed, val_tokens, block_size=block)
    assert good < 2.0 < corrupted, (good, corrupted)
    assert repaired < good + 0.5, (good, corrupted, repaired)


def test_full_reference_runs_with_the_original_schedule_by_default() -> None:
    """The full reference action runs the script with the original reference's schedule (its
    defaults) unless task.yaml's reference_args shrinks it (a rehearsal does)."""
    task = get_task("fix_embedding")
    command = json.loads(task.reference_actions("full")[-1])
    assert command["command"] == "python solution/fix_embedding.py"
    script = task.reference_files("full")["fix_embedding.py"].decode()
    for default in ('"1000,2000,4000"', '"1e-3,1e-4,8e-5"', "default=8)", "default=2)"):
        assert default in script
