"""Reading GPT-2 checkpoints in Hugging Face's format into :class:`~rebench_gym.lmkit.model.GPT`.

A directory with ``config.json`` and ``model.safetensors`` or ``pytorch_model.bin`` (the layout
of the ``gpt2`` and ``gpt2-xl`` repositories). GPT-2's linear layers are stored as Conv1D, with
weights transposed relative to :class:`torch.nn.Linear`.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import torch

from rebench_gym.errors import AssetsError
from rebench_gym.lmkit.model import GPT, GPTConfig

_TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
HUB = "https://huggingface.co/{repo}/resolve/main/{name}"


def config_from_hf(path: Path) -> GPTConfig:
    data = json.loads((path / "config.json").read_text())
    return GPTConfig(
        vocab_size=int(data["vocab_size"]),
        block_size=int(data.get("n_positions", data.get("n_ctx", 1024))),
        n_layer=int(data["n_layer"]),
        n_head=int(data["n_head"]),
        n_embd=int(data["n_embd"]),
    )


def _raw_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if (path / "model.safetensors").exists():
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise AssetsError(
                f"{path}/model.safetensors needs the safetensors package (pip install "
                "safetensors), or provide pytorch_model.bin"
            ) from e
        return dict(load_file(str(path / "model.safetensors")))
    if (path / "pytorch_model.bin").exists():
        return dict(torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True))
    raise AssetsError(f"{path} has neither model.safetensors nor pytorch_model.bin")


def load_hf_gpt2(path: Path) -> GPT:
    """Build our GPT from a Hugging Face GPT-2 directory."""
    cfg = config_from_hf(path)
    raw = _raw_state_dict(path)
    model = GPT(cfg)
    ours = model.state_dict()
    converted: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        name = key if key.startswith(("transformer.", "lm_head.")) else f"transformer.{key}"
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # causal-mask buffers, not parameters
        if name.endswith(_TRANSPOSED):
            value = value.t()
        converted[name] = value.contiguous()
    converted.setdefault("lm_head.weight", converted["transformer.wte.weight"])
    missing = set(ours) - set(converted)
    unexpected = set(converted) - set(ours)
    if missing or unexpected:
        raise AssetsError(
            f"{path} does not look like a GPT-2 checkpoint: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    model.load_state_dict(converted)
    return model


def download_hf_gpt2(repo: str, dest: Path) -> Path:
    """Download ``config.json`` and ``pytorch_model.bin`` of a hub repository (needs network)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "pytorch_model.bin"):
        target = dest / name
        if target.exists():
            continue
        try:
            urllib.request.urlretrieve(HUB.format(repo=repo, name=name), target)
        except OSError as e:
            target.unlink(missing_ok=True)
            raise AssetsError(
                f"could not download {repo}/{name} ({e}); put the files in a directory and pass "
                "it with --source"
            ) from e
    return dest
