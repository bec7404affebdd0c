"""Rehearsal stand-ins for FixEmbedding: tiny GPT-2 checkpoints in Hugging Face's format.

The full-scale build reads ``gpt2-xl/`` and ``gpt2/`` (Hugging Face GPT-2 directories:
``config.json`` and ``pytorch_model.bin``, linear layers in GPT-2's transposed Conv1D layout,
keys as ``GPT2LMHeadModel.save_pretrained`` writes them, the output layer tied to the embedding)
and ``openwebtext/{train,val}.bin`` (nanoGPT's uint16 token files). The stand-ins are two small
GPTs trained here on the stand-in corpus (the "XL" one 2 layers of width 64, the small one
1 layer of width 32), so the uncorrupted model is good and its corruption visibly bad. The
overrides shrink the held-out evaluation, run it on the CPU, and give the full reference
(``reference/full/fix_embedding.py``) a short CPU schedule through its flags.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from rebench_gym.lmkit.data import read_tokens
from rebench_gym.lmkit.model import GPT, GPTConfig
from rebench_gym.lmkit.train import train
from rebench_gym.rehearse import StandIns, write_openwebtext

BLOCK = 64
MODELS = {
    "gpt2-xl": {"n_layer": 2, "n_head": 4, "n_embd": 64, "steps": 120, "lr": 3e-3},
    "gpt2": {"n_layer": 1, "n_head": 2, "n_embd": 32, "steps": 120, "lr": 3e-3},
}
#: GPT-2's linear layers are Conv1D modules: (in_features, out_features), transposed
TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def save_hf_gpt2(model: GPT, dest: Path) -> None:
    """Write ``model`` as a Hugging Face GPT-2 directory (what ``save_pretrained`` writes)."""
    dest.mkdir(parents=True)
    cfg = model.config
    state: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        if key == "lm_head.weight":
            continue  # tied to transformer.wte.weight; save_pretrained leaves it out
        state[key] = (value.t() if key.endswith(TRANSPOSED) else value).contiguous().clone()
    torch.save(state, dest / "pytorch_model.bin")
    config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "activation_function": "gelu_new",
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.block_size,
        "n_ctx": cfg.block_size,
        "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": None,
        "layer_norm_epsilon": 1e-05,
        "initializer_range": 0.02,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "tie_word_embeddings": True,
    }
    (dest / "config.json").write_text(json.dumps(config, indent=2))


def stand_ins(root: Path, progress: Callable[[str], None] | None = None) -> StandIns:
    say = progress or (lambda _m: None)
    vocab = write_openwebtext(root, train_docs=4000, val_docs=600)
    data = read_tokens(root / "openwebtext" / "train.bin")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is as fast, and kinder to a busy machine
    try:
        for name, spec in MODELS.items():
            say(f"fix_embedding: training the {name} stand-in")
            shape = {k: int(spec[k]) for k in ("n_layer", "n_head", "n_embd")}
            torch.manual_seed(0)
            model = GPT(GPTConfig(vocab, BLOCK, shape["n_layer"], shape["n_head"], shape["n_embd"]))
            train(model, data, steps=int(spec["steps"]), lr=float(spec["lr"]), seed=0)
            save_hf_gpt2(model.eval(), root / name)
    finally:
        torch.set_num_threads(threads)
    reference = "--iters 20,20,40 --lrs 3e-3,1e-3,1e-3 --micro-batch 16 --grad-accum 1"
    reference += f" --block-size {BLOCK} --warmup 5 --device cpu --save-every 1000"
    return StandIns(
        source=root,
        params={
            "eval_device": "cpu",
            "eval_batches": 8,
            "eval_batch_size": 16,
            "reference_args": reference,
            "reference_timeout_s": 600,
        },
    )
