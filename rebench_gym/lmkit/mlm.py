"""Masked-language-model data: the mask token, masked batches and the masked-token loss.

RestrictedMLM scores a model on sequences of ``seq_len`` tokens where 15% of the positions are
replaced by a mask token (an id one past the data's vocabulary) and the loss is the
cross-entropy on the masked positions only. The held-out sequences of a score call are
non-overlapping windows of the validation tokens, so no token the model must predict appears
unmasked elsewhere in the same call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

MASK_FRACTION = 0.15


@dataclass(frozen=True)
class MaskedBatch:
    """Inputs with masked positions replaced by the mask id, the original tokens and the mask."""

    inputs: torch.Tensor  # int64 [batch, seq]
    targets: torch.Tensor  # int64 [batch, seq]
    mask: torch.Tensor  # bool [batch, seq]: the positions that count


def mask_tokens(
    tokens: torch.Tensor,
    mask_id: int,
    generator: torch.Generator,
    fraction: float = MASK_FRACTION,
) -> MaskedBatch:
    """Mask exactly ``round(fraction * seq)`` random positions of every row of ``tokens``."""
    batch, seq = tokens.shape
    n_mask = max(1, round(fraction * seq))
    order = torch.rand(batch, seq, generator=generator).argsort(dim=1)
    mask = torch.zeros(batch, seq, dtype=torch.bool)
    mask.scatter_(1, order[:, :n_mask], True)
    inputs = tokens.masked_fill(mask, mask_id)
    return MaskedBatch(inputs=inputs, targets=tokens, mask=mask)


def random_windows(
    data: np.ndarray, seq_len: int, batch_size: int, generator: torch.Generator
) -> torch.Tensor:
    """``batch_size`` random (possibly overlapping) windows of ``seq_len`` tokens: for training."""
    if len(data) < seq_len:
        raise ValueError(f"need at least {seq_len} tokens, got {len(data)}")
    starts = torch.randint(len(data) - seq_len + 1, (batch_size,), generator=generator).tolist()
    rows = [np.asarray(data[s : s + seq_len], dtype=np.int64) for s in starts]
    return torch.from_numpy(np.stack(rows))


def held_out_windows(data: np.ndarray, seq_len: int, n_seqs: int, seed: int) -> torch.Tensor:
    """``n_seqs`` distinct non-overlapping windows at a random offset, in random order.

    Raises:
        ValueError: ``data`` holds fewer than ``n_seqs`` windows.
    """
    rng = np.random.default_rng(seed)
    offset = int(rng.integers(0, seq_len))
    n_windows = (len(data) - offset) // seq_len
    if n_windows < n_seqs:
        offset, n_windows = 0, len(data) // seq_len
    if n_windows < n_seqs:
        raise ValueError(f"the data holds {n_windows} windows of {seq_len}; need {n_seqs}")
    picks = np.sort(rng.choice(n_windows, size=n_seqs, replace=False))
    rng.shuffle(picks)
    rows = [
        np.asarray(data[offset + i * seq_len : offset + (i + 1) * seq_len], dtype=np.int64)
        for i in picks
    ]
    return torch.from_numpy(np.stack(rows))


def masked_loss_sum(logits: torch.Tensor, batch: MaskedBatch) -> tuple[float, int]:
    """Summed cross-entropy over the masked positions (in float32) and how many there are."""
    picked = logits[batch.mask].float()
    loss = F.cross_entropy(picked, batch.targets[batch.mask].to(picked.device), reduction="sum")
    return float(loss), int(batch.mask.sum())
