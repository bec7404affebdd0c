"""Tokenized finetuning data: shards on disk, a dataset over them, batch order and padding.

A split directory holds ``index.json`` (per sample: shard, offset, length, prompt length) and
``shard.NNNNN.bin`` files of int32 token ids, written by
``scripts/data_prep/convert_finetuning_dataset.py``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from minifoundry.tokenizer import PAD_ID, encode_example

SAMPLES_PER_SHARD = 32
SHM_PREFIX = "minifoundry_"


def clean_stale_shared_memory(root: str | Path = "/dev/shm") -> int:
    """Remove shared-memory files that crashed runs of this library left; returns how many."""
    removed = 0
    base = Path(root)
    if base.is_dir():
        for path in base.glob(SHM_PREFIX + "*"):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file (blank lines skipped)."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def tokenize_rows(rows: Iterable[dict[str, Any]], max_seq_len: int) -> list[tuple[list[int], int]]:
    """Each ``{"prompt", "response"}`` row as (token ids, prompt length)."""
    return [encode_example(r["prompt"], r["response"], max_seq_len) for r in rows]


def write_split(samples: Sequence[tuple[list[int], int]], out_dir: str | Path) -> None:
    """Write tokenized samples as shards plus an index."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for first in range(0, len(samples), SAMPLES_PER_SHARD):
        shard = first // SAMPLES_PER_SHARD
        chunk = samples[first : first + SAMPLES_PER_SHARD]
        offset = 0
        flat: list[int] = []
        for ids, prompt_len in chunk:
            index.append(
                {"shard": shard, "offset": offset, "length": len(ids), "prompt_len": prompt_len}
            )
            flat += ids
            offset += len(ids)
        np.asarray(flat, dtype=np.int32).tofile(out / f"shard.{shard:05d}.bin")
    (out / "index.json").write_text(json.dumps({"samples": index}))


class TokenizedDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Samples of a split directory, read from the shards on access."""

    def __init__(self, split_dir: str | Path) -> None:
        self.dir = Path(split_dir)
        self.index = json.loads((self.dir / "index.json").read_text())["samples"]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        entry = self.index[i]
        data = np.fromfile(
            self.dir / f"shard.{entry['shard']:05d}.bin",
            dtype=np.int32,
            count=entry["length"],
            offset=4 * entry["offset"],
        )
        return data.tolist(), int(entry["prompt_len"])


def batch_order(n: int, batch_size: int, seed: int, epoch: int, shuffle: bool, drop_last: bool):
    """The sample indices of each batch of one epoch (shuffled by ``seed + epoch``)."""
    if shuffle:
        gen = torch.Generator().manual_seed(seed + epoch)
        order = torch.randperm(n, generator=gen).tolist()
    else:
        order = list(range(n))
    stop = n - n % batch_size if drop_last else n
    return [order[i : i + batch_size] for i in range(0, stop, batch_size)]


def collate(samples: Sequence[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
    """Right-pad to the longest sample; labels are -100 on the prompt and the padding."""
    width = max(len(ids) for ids, _ in samples)
    input_ids = torch.full((len(samples), width), PAD_ID, dtype=torch.long)
    labels = torch.full((len(samples), width), -100, dtype=torch.long)
    for row, (ids, prompt_len) in enumerate(samples):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        labels[row, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:], dtype=torch.long)
    return {"input_ids": input_ids, "labels": labels}
