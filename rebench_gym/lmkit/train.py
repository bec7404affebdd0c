"""A plain training loop (AdamW, warm-up and cosine decay, gradient clipping) and evaluation."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable

import numpy as np
import torch
from tqdm import tqdm

from rebench_gym.lmkit.data import get_batch, sequential_batches
from rebench_gym.lmkit.model import GPT


def train(
    model: GPT,
    data: np.ndarray,
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 3e-3,
    min_lr_ratio: float = 0.1,
    warmup: int = 20,
    weight_decay: float = 0.1,
    seed: int = 0,
    device: str = "cpu",
    params: Iterable[torch.nn.Parameter] | None = None,
    progress: str | None = None,
) -> float:
    """Train for ``steps`` steps on random windows of ``data``; returns the last loss."""
    gen = torch.Generator().manual_seed(seed)
    trainable = [
        p for p in (params if params is not None else model.parameters()) if p.requires_grad
    ]
    decay = [p for p in trainable if p.dim() >= 2]
    no_decay = [p for p in trainable if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
        betas=(0.9, 0.95),
    )
    model.train()
    loss_value = float("nan")
    bar = tqdm(
        range(steps),
        desc=progress or "train",
        disable=progress is None,
        file=sys.stderr,
        leave=False,
    )
    for step in bar:
        if step < warmup:
            scale = (step + 1) / warmup
        else:
            frac = (step - warmup) / max(1, steps - warmup)
            scale = min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac))
        for group in opt.param_groups:
            group["lr"] = lr * scale
        x, y = get_batch(data, model.config.block_size, batch_size, gen, device)
        _, loss = model(x, y)
        assert loss is not None
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        loss_value = float(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss_value:.3f}")
    model.eval()
    return loss_value


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    data: np.ndarray,
    *,
    block_size: int,
    batch_size: int = 32,
    max_batches: int | None = None,
    device: str = "cpu",
) -> float:
    """Mean next-token cross-entropy over non-overlapping windows of ``data``."""
    model.eval()
    total, count = 0.0, 0
    for x, y in sequential_batches(data, block_size, batch_size, max_batches):
        logits = model(x.to(device))
        if isinstance(logits, tuple):
            logits = logits[0]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)).float(), y.to(device).reshape(-1), reduction="sum"
        )
        total += float(loss)
        count += y.numel()
    return total / max(count, 1)
