"""The shared LM substrate: corpus, tokenizer, token files, GPT, training, asset cache, HF GPT-2."""

from __future__ import annotations

import json
import multiprocessing as mp
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from rebench_gym.cache import build_once
from rebench_gym.errors import AssetsError
from rebench_gym.lmkit import corpus
from rebench_gym.lmkit.data import get_batch, read_tokens, sequential_batches, write_tokens
from rebench_gym.lmkit.evaluate_worker import check_and_load
from rebench_gym.lmkit.hf_gpt2 import load_hf_gpt2
from rebench_gym.lmkit.model import GPT, GPTConfig, load_checkpoint, save_checkpoint
from rebench_gym.lmkit.tokenizer import WordTokenizer
from rebench_gym.lmkit.train import evaluate, train

TINY = GPTConfig(vocab_size=173, block_size=32, n_layer=1, n_head=2, n_embd=16)


def test_corpus_is_deterministic_and_structured() -> None:
    assert corpus.documents(20, seed=3) == corpus.documents(20, seed=3)
    assert corpus.documents(20, seed=3) != corpus.documents(20, seed=4)
    text = " ".join(corpus.documents(3000, seed=5))
    homes: dict[str, set[str]] = {}
    for name, city in re.findall(r"(\w+) lives in (\w+)", text):
        if name != "who":
            homes.setdefault(name, set()).add(city)
    assert len(homes) > 30 and all(len(c) == 1 for c in homes.values())  # facts are consistent
    for a, b, c in re.findall(r"(\w+) plus (\w+) is (\w+)", text):
        assert corpus.NUMBERS.index(a) + corpus.NUMBERS.index(b) == corpus.NUMBERS.index(c)


def test_tokenizer_round_trip_and_uint16(tmp_path: Path) -> None:
    tok = WordTokenizer.default()
    docs = corpus.documents(50, seed=1)
    ids = tok.encode_documents(docs)
    assert ids.dtype == np.uint16 and int(ids.max()) < tok.vocab_size
    assert tok.decode(tok.encode(docs[0])) == docs[0]
    tok.save(tmp_path / "v.json")
    assert WordTokenizer.load(tmp_path / "v.json").words == tok.words
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("zebra")


def test_token_files_and_batches(tmp_path: Path) -> None:
    tokens = np.arange(1000, dtype=np.uint16) % 173
    write_tokens(tmp_path / "t.bin", tokens)
    assert (tmp_path / "t.bin").stat().st_size == 2000  # raw uint16, like nanoGPT
    data = read_tokens(tmp_path / "t.bin")
    assert np.array_equal(data, tokens)
    x, y = get_batch(data, 16, 4, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 16) and torch.equal(x[:, 1:], y[:, :-1])
    batches = sequential_batches(data, 16, 8, max_batches=2)
    assert len(batches) == 2 and batches[0][0][0, 0] == 0
    with pytest.raises(ValueError, match="uint16"):
        write_tokens(tmp_path / "bad.bin", np.array([70000]))


def test_gpt_ties_embeddings_and_checkpoints_round_trip(tmp_path: Path) -> None:
    model = GPT(TINY)
    assert model.lm_head.weight is model.wte.weight
    logits, loss = model(torch.zeros(2, 8, dtype=torch.long), torch.zeros(2, 8, dtype=torch.long))
    assert logits.shape == (2, 8, 173) and loss is not None
    save_checkpoint(model, tmp_path / "m.pth")
    again = load_checkpoint(tmp_path / "m.pth")
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_training_learns_the_corpus() -> None:
    tok = WordTokenizer.default()
    data = tok.encode_documents(corpus.documents(500, seed=1))
    torch.manual_seed(0)
    model = GPT(TINY)
    before = evaluate(model, data, block_size=32, max_batches=4)
    train(model, data, steps=60, batch_size=16, lr=1e-2)
    after = evaluate(model, data, block_size=32, max_batches=4)
    assert before > 4.5 and after < before - 1.5


def _count_build(root: str, log: str) -> None:
    def builder(tmp: Path) -> None:
        with open(log, "a") as fh:
            fh.write("built\n")
        (tmp / "payload.txt").write_text("ok")

    build_once(Path(root), "asset", builder)


def test_asset_cache_builds_once_across_processes(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_count_build, args=(str(tmp_path / "c"), str(log))) for _ in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert log.read_text().count("built") == 1
    assert (tmp_path / "c" / "asset" / "payload.txt").read_text() == "ok"


def test_asset_cache_survives_a_crash_half_way(tmp_path: Path) -> None:
    def crashing(tmp: Path) -> None:
        (tmp / "half.txt").write_text("partial")
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        build_once(tmp_path, "asset", crashing)
    assert not (tmp_path / "asset").exists()
    (tmp_path / ".asset.building-999-1").mkdir()  # a stale directory from a killed process
    path = build_once(tmp_path, "asset", lambda tmp: (tmp / "good.txt").write_text("ok"))
    assert (path / "good.txt").exists() and not (path / "half.txt").exists()
    assert not list(tmp_path.glob(".asset.building-*"))


def write_hf_gpt2(model: GPT, path: Path) -> None:
    """A stand-in checkpoint in Hugging Face's GPT-2 layout (Conv1D weights transposed)."""
    path.mkdir(parents=True)
    cfg = model.config
    (path / "config.json").write_text(
        json.dumps(
            {
                "vocab_size": cfg.vocab_size,
                "n_positions": cfg.block_size,
                "n_layer": cfg.n_layer,
                "n_head": cfg.n_head,
                "n_embd": cfg.n_embd,
                "model_type": "gpt2",
            }
        )
    )
    state = {}
    for key, value in model.state_dict().items():
        if key == "lm_head.weight":
            continue
        name = key.removeprefix("transformer.")
        if name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
            value = value.t()
        state[name] = value.clone().contiguous()
    for i in range(cfg.n_layer):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(cfg.block_size, cfg.block_size))
    torch.save(state, path / "pytorch_model.bin")


def test_hf_gpt2_checkpoints_load_into_our_gpt(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = GPT(TINY)
    write_hf_gpt2(model, tmp_path / "gpt2")
    loaded = load_hf_gpt2(tmp_path / "gpt2")
    x = torch.randint(0, 173, (2, 10))
    assert torch.allclose(model(x)[0], loaded(x)[0], atol=1e-6)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text((tmp_path / "gpt2/config.json").read_text())
    with pytest.raises(AssetsError, match="neither"):
        load_hf_gpt2(tmp_path / "empty")


def test_evaluation_rejects_other_architectures(tmp_path: Path) -> None:
    model = GPT(TINY)
    save_checkpoint(model, tmp_path / "ok.pth")
    assert isinstance(check_and_load(tmp_path / "ok.pth", TINY.to_dict()), GPT)
    wider = GPT(GPTConfig(**{**TINY.to_dict(), "n_embd": 32}))
    save_checkpoint(wider, tmp_path / "wide.pth")
    with pytest.raises(ValueError, match="shape"):
        check_and_load(tmp_path / "wide.pth", TINY.to_dict())
    state = model.state_dict()
    state["extra.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match="extra"):
        check_and_load(tmp_path / "extra.pth", TINY.to_dict())
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="state_dict"):
        check_and_load(tmp_path / "list.pth", TINY.to_dict())
