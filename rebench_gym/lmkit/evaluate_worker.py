"""Trusted evaluation of an agent's checkpoint, run as a separate process by scorers.

    python -m rebench_gym.lmkit.evaluate_worker SPEC_JSON

SPEC_JSON names the checkpoint, the expected model config, the token file and how many batches.
The checkpoint is loaded with ``weights_only=True`` (no code from it runs) into the fixed model
class; its keys and shapes must match the expected config exactly. Prints one JSON line:
``{"loss": float}`` or ``{"error": str}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch


def check_and_load(path: Path, expected: dict[str, Any]) -> torch.nn.Module:
    from rebench_gym.lmkit.model import GPT, GPTConfig

    data = torch.load(path, map_location="cpu", weights_only=True)
    state = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            "the checkpoint must be a state_dict, or {'config': ..., 'model': "
            "state_dict} as the provided models are saved"
        )
    model = GPT(GPTConfig(**expected))
    want = model.state_dict()
    extra = sorted(set(state) - set(want))
    missing = sorted(set(want) - set(state))
    if extra or missing:
        raise ValueError(
            f"the checkpoint does not fit the required architecture: missing "
            f"{missing[:5]}, extra {extra[:5]}"
        )
    for key, tensor in want.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ValueError(
                f"{key} has shape {tuple(state[key].shape)}, the required "
                f"architecture has {tuple(tensor.shape)}"
            )
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    from rebench_gym.lmkit.data import read_tokens
    from rebench_gym.lmkit.train import evaluate

    torch.manual_seed(0)
    try:
        model = check_and_load(Path(spec["checkpoint"]), spec["config"])
        device = spec.get("device", "cpu")
        model.to(device)
        loss = evaluate(
            model,
            read_tokens(Path(spec["tokens"])),
            block_size=spec["block_size"],
            batch_size=spec.get("batch_size", 32),
            max_batches=spec.get("max_batches"),
            device=device,
        )
    except (ValueError, RuntimeError, KeyError, TypeError, OSError) as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 0
    if not torch.isfinite(torch.tensor(loss)):
        print(json.dumps({"error": f"the loss is not finite ({loss})"}))
        return 0
    print(json.dumps({"loss": loss}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
