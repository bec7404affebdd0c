"""Stand-ins for the full-scale rehearsal of OptimizeLLMFoundry (``rebench rehearse``).

The ``--source`` directory of :mod:`.full`, in its real formats:

* ``deepseek-coder-1.3b-base/``: a Llama-style model laid out as the Hugging Face repository
  ``deepseek-ai/deepseek-coder-1.3b-base`` is (``config.json`` of a ``LlamaForCausalLM`` with
  the original's keys, linear RoPE scaling and token ids; ``generation_config.json``;
  ``tokenizer.json`` (a byte-level BPE in the ``tokenizers`` format, learned here on the
  stand-in text, with deepseek's special tokens), ``tokenizer_config.json`` and
  ``special_tokens_map.json``; ``model.safetensors`` in bf16 with Llama's tensor names), tiny
  (2 layers, hidden size 64);
* ``train_data.jsonl``: the pool of ``{"prompt", "response"}`` rows (``pool_rows`` of them);
* ``llm-foundry/``: a real llm-foundry checkout, which cannot be made here: it is taken from
  ``$REBENCH_LLM_FOUNDRY_DIR``.

What cannot run on this machine (see :func:`missing_prerequisites`): the full scale's
``finetune.sh`` runs LLM Foundry itself (``composer`` launcher, ``streaming``,
``llmfoundry``, transformers). llm-foundry 0.22 pins ``torch==2.7.0`` and mosaicml (Composer)
0.32 ``torch<2.7.1``, so neither installs next to this environment's torch; and the reference's
``finetune.yaml`` asks for FlashAttention 2 (CUDA only) under FSDP with ``amp_bf16``, settings
of the solution's own files that no task parameter switches to CPU. ``stand_ins`` therefore
raises :class:`~rebench_gym.rehearse.RehearsalUnavailable` naming exactly what is missing, unless
the stack is present (an environment such as the full-scale image, with a checkout in
``$REBENCH_LLM_FOUNDRY_DIR``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rebench_gym.rehearse import RehearsalUnavailable, StandIns
from rebench_gym.tasks.finetune_gpt2_qa.rehearse import train_bpe
from rebench_gym.tasks.optimize_llm_foundry import full

CHECKOUT_ENV = "REBENCH_LLM_FOUNDRY_DIR"
#: the libraries the full scale's finetune.sh and the reference's finetune_fast.py import
LIBRARIES = ("llmfoundry", "composer", "streaming", "transformers", "omegaconf")
CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 176,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 512,
}
BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
MERGES = 200
INIT_STD = 0.02


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run the full-scale pipeline (empty: it can run)."""
    missing = [f"the Python package {m}" for m in LIBRARIES if importlib.util.find_spec(m) is None]
    if shutil.which("composer") is None:
        missing.append("the `composer` launcher on PATH")
    checkout = os.environ.get(CHECKOUT_ENV)
    if not checkout:
        missing.append(f"an llm-foundry checkout named by ${CHECKOUT_ENV}")
    if not torch.cuda.is_available():
        missing.append(
            "a CUDA device (the reference's finetune.yaml uses FlashAttention 2 under FSDP with "
            "amp_bf16; the solution's YAML, not a task parameter, sets this)"
        )
    return missing


def write_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """``tensors`` in the safetensors format (header JSON, then the raw little-endian data)."""
    names = {torch.bfloat16: "BF16", torch.float32: "F32", torch.float16: "F16"}
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, tensor in tensors.items():
        t = tensor.contiguous()
        raw = t.view(torch.int16 if t.dtype in (torch.bfloat16, torch.float16) else t.dtype)
        data = raw.numpy().tobytes()
        header[name] = {
            "dtype": names[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text)
        for data in blobs:
            fh.write(data)


def tokenizer_json(vocab: dict[str, int], merges: list[tuple[str, str]]) -> dict[str, Any]:
    """A ``tokenizers`` file: byte-level BPE with deepseek-coder's special tokens appended."""
    specials = [BOS, EOS]
    vocab = {k: v for k, v in vocab.items() if k != "<|endoftext|>"}
    added = []
    for token in specials:
        vocab[token] = len(vocab)
        added.append(
            {
                "id": vocab[token],
                "content": token,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": True,
                "special": True,
            }
        )
    byte_level = {
        "type": "ByteLevel",
        "add_prefix_space": False,
        "trim_offsets": True,
        "use_regex": True,
    }
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": []},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [byte_level]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": BOS, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
            ],
            "pair": [
                {"SpecialToken": {"id": BOS, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": BOS, "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {BOS: {"id": BOS, "ids": [vocab[BOS]], "tokens": [BOS]}},
        },
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": True,
            "use_regex": True,
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }


def write_model(dest: Path, texts: list[str], seed: int = 0) -> None:
    """The tiny Llama in deepseek-coder-1.3b-base's repository layout."""
    dest.mkdir(parents=True)
    vocab, merges = train_bpe(texts, MERGES)
    tok = tokenizer_json(vocab, merges)
    n_vocab = len(tok["model"]["vocab"])
    bos, eos = tok["model"]["vocab"][BOS], tok["model"]["vocab"][EOS]
    config = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "hidden_act": "silu",
        "initializer_range": INIT_STD,
        "model_type": "llama",
        "num_key_value_heads": CONFIG["num_attention_heads"],
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-06,
        "rope_scaling": {"factor": 4.0, "type": "linear"},
        "rope_theta": 100000,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.33.1",
        "use_cache": True,
        "vocab_size": n_vocab,
        **CONFIG,
    }
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    (dest / "generation_config.json").write_text(
        json.dumps({"_from_model_config": True, "bos_token_id": bos, "eos_token_id": eos})
    )
    (dest / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    special = {
        "content": "",
        "lstrip": False,
        "normalized": True,
        "rstrip": False,
        "single_word": False,
        "__type": "AddedToken",
    }
    (dest / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "add_bos_token": True,
                "add_eos_token": False,
                "bos_token": {**special, "content": BOS},
                "eos_token": {**special, "content": EOS},
                "pad_token": None,
                "clean_up_tokenization_spaces": False,
                "legacy": True,
                "model_max_length": 16384,
                "sp_model_kwargs": {},
                "tokenizer_class": "LlamaTokenizerFast",
                "unk_token": None,
            },
            ensure_ascii=False,
        )
    )
    (dest / "special_tokens_map.json").write_text(
        json.dumps(
            {"bos_token": {**special, "content": BOS}, "eos_token": {**special, "content": EOS}},
            ensure_ascii=False,
        )
    )
    d, inter = CONFIG["hidden_size"], CONFIG["intermediate_size"]
    gen = torch.Generator().manual_seed(seed)

    def normal(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen) * INIT_STD).to(torch.bfloat16)

    tensors = {"model.embed_tokens.weight": normal(n_vocab, d)}
    for i in range(CONFIG["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            tensors[f"{p}self_attn.{name}.weight"] = normal(d, d)
        tensors[f"{p}mlp.gate_proj.weight"] = normal(inter, d)
        tensors[f"{p}mlp.up_proj.weight"] = normal(inter, d)
        tensors[f"{p}mlp.down_proj.weight"] = normal(d, inter)
        tensors[f"{p}input_layernorm.weight"] = torch.ones(d, dtype=torch.bfloat16)
        tensors[f"{p}post_attention_layernorm.weight"] = torch.ones(d, dtype=torch.bfloat16)
    tensors["model.norm.weight"] = torch.ones(d, dtype=torch.bfloat16)
    tensors["lm_head.weight"] = normal(n_vocab, d)
    write_safetensors(tensors, dest / "model.safetensors")


def write_source(root: Path, pool_rows: int) -> Path:
    """The ``--source`` directory except the checkout (see the module docstring)."""
    source = root / "source"
    source.mkdir()
    rows = full.code_rows(pool_rows, seed=7)
    with open(source / "train_data.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    texts = [r["prompt"] + "\n" + r["response"] for r in rows[:200]]
    write_model(source / full.MODEL_DIR, texts)
    return source


#: full-scale overrides: a smaller pool and training file (sizes only)
PARAMS = {"train_rows": 16, "pool_rows": 64, "max_seq_len": 512}


def stand_ins(root: Path, progress: Callable[[str], None] | None = None) -> StandIns:
    say = progress or (lambda _m: None)
    missing = missing_prerequisites()
    if missing:
        raise RehearsalUnavailable(
            "OptimizeLLMFoundry's full scale runs LLM Foundry itself, which cannot run here; "
            f"missing: {'; '.join(missing)}. (llm-foundry 0.22 pins torch==2.7.0 and mosaicml "
            f"0.32 torch<2.7.1; this environment has torch {torch.__version__}.)"
        )
    say("optimize_llm_foundry: a tiny Llama in deepseek-coder-1.3b-base's layout, the data pool")
    source = write_source(root, PARAMS["pool_rows"])
    shutil.copytree(
        os.environ[CHECKOUT_ENV], source / full.FOUNDRY_DIR, ignore=shutil.ignore_patterns(".git")
    )
    return StandIns(source=source, params=dict(PARAMS))
