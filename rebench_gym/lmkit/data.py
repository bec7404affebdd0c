"""nanoGPT's token files: a flat array of uint16 token ids (``train.bin``, ``val.bin``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch


def write_tokens(path: Path, tokens: np.ndarray) -> None:
    """Write ``tokens`` as raw uint16, atomically."""
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        raise ValueError("token arrays must be one-dimensional")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= 2**16):
        raise ValueError("token ids must fit in uint16")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as fh:
        arr.astype(np.uint16).tofile(fh)
    os.replace(tmp, path)


def read_tokens(path: Path) -> np.ndarray:
    """Memory-map a token file (read-only)."""
    return np.memmap(path, dtype=np.uint16, mode="r")


def get_batch(
    data: np.ndarray,
    block_size: int,
    batch_size: int,
    generator: torch.Generator,
    device: str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random contiguous windows: inputs and next-token targets, as nanoGPT draws them."""
    if len(data) <= block_size + 1:
        raise ValueError(f"need more than {block_size + 1} tokens, got {len(data)}")
    ix = torch.randint(len(data) - block_size - 1, (batch_size,), generator=generator)
    x = torch.stack(
        [
            torch.from_numpy(np.asarray(data[i : i + block_size], dtype=np.int64))
            for i in ix.tolist()
        ]
    )
    y = torch.stack(
        [
            torch.from_numpy(np.asarray(data[i + 1 : i + 1 + block_size], dtype=np.int64))
            for i in ix.tolist()
        ]
    )
    return x.to(device), y.to(device)


def sequential_batches(
    data: np.ndarray, block_size: int, batch_size: int, max_batches: int | None = None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Non-overlapping windows in order (for a deterministic evaluation)."""
    n_windows = (len(data) - 1) // block_size
    if max_batches is not None:
        n_windows = min(n_windows, max_batches * batch_size)
    batches = []
    for start in range(0, n_windows, batch_size):
        idx = range(start, min(start + batch_size, n_windows))
        x = np.stack([np.asarray(data[i * block_size : (i + 1) * block_size]) for i in idx])
        y = np.stack([np.asarray(data[i * block_size + 1 : (i + 1) * block_size + 1]) for i in idx])
        batches.append((torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64))))
    return batches
