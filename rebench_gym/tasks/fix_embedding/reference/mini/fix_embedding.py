"""Reference solution: the small model's embedding through a trained linear adapter.

1. Take the small model's correct embedding (vocab x d_small).
2. Learn a linear map d_small -> d_large with the large model's other weights frozen, feeding
   adapter(small_embedding) as the large model's (tied) embedding.
3. Fold the adapter into a plain embedding matrix, then train all weights briefly.
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))
from model import load_checkpoint, save_checkpoint  # noqa: E402

ADAPTER_STEPS = 150
FULL_STEPS = 150
BATCH = 32


def batches(data, block, seed):
    gen = torch.Generator().manual_seed(seed)
    while True:
        ix = torch.randint(len(data) - block - 1, (BATCH,), generator=gen).tolist()
        x = torch.from_numpy(np.stack([data[i : i + block] for i in ix]).astype(np.int64))
        y = torch.from_numpy(np.stack([data[i + 1 : i + 1 + block] for i in ix]).astype(np.int64))
        yield x, y


def lr_at(step, total, peak):
    warm = 10
    if step < warm:
        return peak * (step + 1) / warm
    return peak * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * (step - warm) / max(1, total - warm))))


def main():
    start = time.time()
    torch.manual_seed(0)
    large = load_checkpoint(HOME / "large_model.pth")
    small = load_checkpoint(HOME / "small_correct_model.pth")
    data = np.memmap(HOME / "data" / "train.bin", dtype=np.uint16, mode="r")
    block = large.config.block_size
    small_emb = small.transformer["wte"].weight.detach()
    d_small, d_large = small_emb.shape[1], large.config.n_embd

    # Phase 1: adapter only. The large model's embedding (and tied head) become adapter(E_small).
    adapter = torch.nn.Linear(d_small, d_large)
    with torch.no_grad():
        scale = large.transformer["wpe"].weight.std() / small_emb.std()
        torch.nn.init.normal_(adapter.weight, 0.0, float(scale) / np.sqrt(d_small))
        adapter.bias.zero_()
    for p in large.parameters():
        p.requires_grad_(False)
    wte = large.transformer["wte"]
    opt = torch.optim.Adam(adapter.parameters(), lr=1e-2)
    data_iter = batches(data, block, seed=1)
    for step in range(ADAPTER_STEPS):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, ADAPTER_STEPS, 1e-2)
        x, y = next(data_iter)
        emb = adapter(small_emb)
        pos = torch.arange(block)
        h = F.embedding(x, emb) + large.transformer["wpe"](pos)
        for blk in large.transformer["h"]:
            h = blk(h)
        logits = large.transformer["ln_f"](h) @ emb.t()
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            print(f"adapter step {step} loss {loss.item():.3f}", flush=True)

    # Phase 2: fold the adapter into the embedding, then train everything.
    with torch.no_grad():
        wte.weight.copy_(adapter(small_emb))
    for p in large.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(large.parameters(), lr=1e-3, weight_decay=0.0, betas=(0.9, 0.95))
    large.train()
    for step in range(FULL_STEPS):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, FULL_STEPS, 1e-3)
        x, y = next(data_iter)
        _, loss = large(x, y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(large.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            print(f"full step {step} loss {loss.item():.3f}", flush=True)
    large.eval()
    save_checkpoint(large, HOME / "solution" / "fixed_model.pth")
    print(f"saved solution/fixed_model.pth in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
