"""Supervised finetuning on (prompt, response) token pairs, with the loss on the response only.

Imports nothing but torch, so tasks can copy it into an agent's workspace. Each example is
``prompt + response + [eot]``; prompt positions and right padding are ignored by the loss
(target ``-100``), so the model learns to produce the response and then stop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def make_batch(
    examples: Sequence[tuple[Sequence[int], Sequence[int]]], eot_id: int, block_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets for a batch of (prompt ids, response ids); truncated to the block."""
    seqs = []
    for prompt, response in examples:
        full = list(prompt) + list(response) + [eot_id]
        targets = [-100] * (len(prompt) - 1) + list(response) + [eot_id]
        full, targets = full[-(block_size + 1) :], targets[-block_size:]
        seqs.append((full[:-1], targets))
    width = max(len(x) for x, _ in seqs)
    x = torch.full((len(seqs), width), eot_id, dtype=torch.long)
    y = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (inp, tgt) in enumerate(seqs):
        x[i, : len(inp)] = torch.tensor(inp)
        y[i, : len(tgt)] = torch.tensor(tgt)
    return x, y


def finetune(
    model: torch.nn.Module,
    examples: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    eot_id: int,
    steps: int,
    lr: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
    device: str = "cpu",
) -> float:
    """AdamW with a cosine schedule over random batches of ``examples``; returns the last loss."""
    if not examples:
        raise ValueError("no examples to finetune on")
    block = int(model.config.block_size)  # type: ignore[union-attr,arg-type]
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    model.train()
    loss_value = float("nan")
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max(1, steps))))
        pick = torch.randint(len(examples), (min(batch_size, len(examples)),), generator=gen)
        x, y = make_batch([examples[i] for i in pick.tolist()], eot_id, block)
        logits = model(x.to(device))
        if isinstance(logits, tuple):
            logits = logits[0]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)).float(), y.to(device).reshape(-1), ignore_index=-100
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss_value = float(loss.item())
    model.eval()
    return loss_value
