"""Batched sampling from a causal language model (prompt ids in, completion ids out).

This module imports nothing but torch, so tasks can also copy it into an agent's workspace
(the scorer and the agent then sample with the same code). ``model(idx)`` must return logits
of shape ``[batch, time, vocab]`` (or a tuple whose first item is that) and the model must
have ``config.block_size``. A model with ``decode(idx, past) -> (last_logits, past)`` (as
``rebench_gym.lmkit.model.GPT``) is decoded with a key/value cache: one new position per step
instead of the whole sequence (~10x faster for the scorer's 24 new tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    eot_id: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    kv_cache: bool = True,
) -> list[list[int]]:
    """Sample one completion per prompt; each stops before the first ``eot_id``.

    Prompts of different lengths are left-padded with ``eot_id`` and attended to as ordinary
    tokens (GPT-2 has no padding mask; an end-of-text token before the prompt reads as a document
    boundary, which is what the model saw in pre-training). ``temperature=0`` decodes greedily.
    ``kv_cache=False`` runs the whole sequence at every step even where the model could cache
    (the same tokens, ~10x slower: the scorer's baseline path, see ``rebench bench --scoring``).

    Returns:
        The completion token ids (without the prompt and the end-of-text token), in order.
    """
    model.eval()
    block = int(model.config.block_size)  # type: ignore[union-attr,arg-type]
    out: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        chunk = [list(p) for p in prompts[start : start + batch_size]]
        width = max(len(p) for p in chunk)
        rows = [[eot_id] * (width - len(p)) + p for p in chunk]
        idx = torch.tensor(rows, dtype=torch.long, device=device)
        # with a key/value cache where the model has one and the whole sequence fits its block
        # (each step then runs one new position); else the whole (last block of the) sequence
        cached = kv_cache and hasattr(model, "decode") and width + max_new_tokens <= block
        past = None
        done = torch.zeros(len(chunk), dtype=torch.bool, device=device)
        new: list[torch.Tensor] = []
        for _ in range(max_new_tokens):
            if cached:
                logits, past = model.decode(idx if past is None else idx[:, -1:], past)  # type: ignore[operator]
            else:
                logits = model(idx[:, -block:])
                if isinstance(logits, tuple):
                    logits = logits[0]
                logits = logits[:, -1, :]
            nxt = _choose(logits.float(), temperature, top_k, generator).to(device)
            nxt = torch.where(done, torch.full_like(nxt, eot_id), nxt)
            new.append(nxt)
            done |= nxt == eot_id
            idx = torch.cat([idx, nxt[:, None]], dim=1)
            if bool(done.all()):
                break
        tokens = torch.stack(new, dim=1).tolist() if new else [[] for _ in chunk]
        for row in tokens:
            cut = row.index(eot_id) if eot_id in row else len(row)
            out.append(row[:cut])
    return out


def _choose(
    logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None
) -> torch.Tensor:
    """The next token of each row from its last-position logits ``[batch, vocab]``."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1)
