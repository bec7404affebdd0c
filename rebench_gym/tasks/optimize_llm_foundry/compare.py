"""Trusted comparison of two model directories, run as a separate process by the scorer.

    python -m rebench_gym.tasks.optimize_llm_foundry.compare SPEC_JSON

SPEC_JSON has ``candidate`` and ``reference`` (model directories) and ``max_bytes`` (the most
the candidate's weight files may hold). Weights are read only from safe formats: a
``model.safetensors`` file (parsed here, no code runs) or a ``pytorch_model.bin`` state dict
loaded with ``weights_only=True``, either possibly sharded with an ``*.index.json``. Both models
must have the same parameter names and shapes. Prints one JSON line, ``{"comparison": C}``,
``C`` what :func:`compare` returns: ``{"norm_diff": float, "l1": float, "parameters": int,
"tensors": int}`` or ``{"error": str, "kind": str}``, ``kind`` one of :data:`ERROR_KINDS` (what a
scorer may show when the error's text could carry what the run saw).

``norm_diff`` is the original task's validity measure (``compute_norm_and_max_diff`` in
ai_rd_optimize_llm_foundry's ``score.py``): the models are compared as transformers'
``AutoModel`` loads them, the base model without its LM head, and the L2 norm of the difference
of each parameter tensor is summed over the tensors. Here the weights are read without loading
any model code, so "the base model" is every floating-point tensor whose name does not start with
one of :data:`HEAD_PREFIXES`; sums are taken in float64 (the original: float32 per tensor).
``l1`` (the element-wise L1 norm over every tensor, LM head included) is reported for diagnosis.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import stat
import struct
import sys
from pathlib import Path
from typing import Any

import torch

SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
#: tensors of the LM head, which transformers' AutoModel (the base model) does not load
HEAD_PREFIXES = ("lm_head.",)
#: why a candidate was rejected, in words that carry nothing the candidate chose
ERROR_KINDS = {
    "missing": "trained_model does not exist",
    "format": "it is not a plain directory of weights in a supported format with exactly the "
    "reference's parameter names and shapes",
    "unreadable": "its weight files could not be read",
    "non-finite": "the weights hold NaN or infinite values",
}


class ModelFormatError(ValueError):
    """The model directory is not a plain directory of weights in a supported format."""


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Parse a ``.safetensors`` file: an 8-byte header size, a JSON header, raw tensor bytes."""
    data = path.read_bytes()
    if len(data) < 8:
        raise ModelFormatError(f"{path.name} is too short to be a safetensors file")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise ModelFormatError(f"{path.name} has a header larger than the file")
    header = json.loads(data[8 : 8 + size])
    body = memoryview(data)[8 + size :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = SAFETENSORS_DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise ModelFormatError(f"{path.name}: {name} has unsupported dtype {info.get('dtype')}")
        start, end = (int(x) for x in info["data_offsets"])
        if not 0 <= start <= end <= len(body):
            raise ModelFormatError(f"{path.name}: {name} lies outside the file")
        shape = [int(d) for d in info["shape"]]
        flat = torch.frombuffer(bytearray(body[start:end]), dtype=dtype) if end > start else None
        numel = 1
        for d in shape:
            numel *= d
        if (flat.numel() if flat is not None else 0) != numel:
            raise ModelFormatError(f"{path.name}: {name} has {end - start} bytes for {shape}")
        tensors[name] = flat.reshape(shape) if flat is not None else torch.empty(shape, dtype=dtype)
    return tensors


def read_torch(path: Path) -> dict[str, torch.Tensor]:
    """A state dict saved with ``torch.save``, loaded without running any code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ModelFormatError(f"{path.name} holds more than tensors: {str(e)[:300]}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFormatError(f"{path.name} is not a state dict of tensors")
    return state


def check_plain_directory(directory: Path, max_bytes: int) -> None:
    """Reject a symlinked directory, symlinks or special files inside it, or too many bytes."""
    info = os.lstat(directory)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise ModelFormatError("trained_model must be a real directory (not a symlink or a file)")
    total = 0
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            st = os.lstat(Path(root) / name)
            if stat.S_ISLNK(st.st_mode):
                raise ModelFormatError(f"trained_model holds a symlink: {name}")
            if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                raise ModelFormatError(f"trained_model holds a special file: {name}")
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    if total > max_bytes:
        raise ModelFormatError(f"trained_model holds {total} bytes; at most {max_bytes} allowed")


def load_weights(directory: Path) -> dict[str, torch.Tensor]:
    """Every weight of a model directory (single file or shards listed by an index)."""
    for name in WEIGHT_FILES:
        reader = read_safetensors if name.endswith(".safetensors") else read_torch
        index = directory / f"{name}.index.json"
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
            tensors: dict[str, torch.Tensor] = {}
            for shard in sorted(set(weight_map.values())):
                if "/" in shard or "\\" in shard or shard.startswith("."):
                    raise ModelFormatError(f"bad shard name {shard!r} in {index.name}")
                tensors.update(reader(directory / shard))
            return tensors
        if (directory / name).is_file():
            return reader(directory / name)
    raise ModelFormatError(
        f"no weights found: trained_model needs one of {', '.join(WEIGHT_FILES)} "
        "(or sharded files with an index)"
    )


def differences(
    candidate: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]
) -> tuple[float, float, int]:
    """``(norm_diff, l1, tensors)``: see the module docstring; names and shapes must match."""
    missing = sorted(set(reference) - set(candidate))
    extra = sorted(set(candidate) - set(reference))
    if missing or extra:
        raise ModelFormatError(
            f"trained_model's parameters differ from the model's: missing {missing[:5]}, "
            f"extra {extra[:5]}"
        )
    norm_diff, l1, counted = 0.0, 0.0, 0
    for name, ref in reference.items():
        got = candidate[name]
        if tuple(got.shape) != tuple(ref.shape):
            raise ModelFormatError(
                f"{name} has shape {tuple(got.shape)}, expected {tuple(ref.shape)}"
            )
        diff = got.to(torch.float64) - ref.to(torch.float64)
        l1 += float(diff.abs().sum().item())
        if ref.is_floating_point() and not name.startswith(HEAD_PREFIXES):
            norm_diff += float(torch.linalg.vector_norm(diff).item())
            counted += 1
    return norm_diff, l1, counted


def compare(spec: dict[str, Any]) -> dict[str, Any]:
    """The comparison ``spec`` asks for, as the JSON-able result."""
    candidate_dir = Path(spec["candidate"])
    try:
        check_plain_directory(candidate_dir, int(spec["max_bytes"]))
        candidate = load_weights(candidate_dir)
        reference = load_weights(Path(spec["reference"]))
        norm_diff, l1, counted = differences(candidate, reference)
    except FileNotFoundError:
        return {"error": "trained_model does not exist", "kind": "missing"}
    except ModelFormatError as e:
        return {"error": f"{type(e).__name__}: {e}", "kind": "format"}
    except (ValueError, RuntimeError, KeyError, TypeError, OSError) as e:
        return {"error": f"{type(e).__name__}: {e}", "kind": "unreadable"}
    if not (math.isfinite(norm_diff) and math.isfinite(l1)):
        return {"error": "the weights hold NaN or infinite values", "kind": "non-finite"}
    return {
        "norm_diff": norm_diff,
        "l1": l1,
        "parameters": sum(t.numel() for t in reference.values()),
        "tensors": counted,
    }


def main(argv: list[str]) -> int:
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    # Wrapped, so that a rejection reaches the scorer whole (with its kind), not as the
    # worker-level {"error": ...} that run_worker turns into a bare message.
    print(json.dumps({"comparison": compare(json.loads(argv[0]))}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
