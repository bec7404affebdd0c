"""Full-scale reference solution: the original RE-Bench reference's three-stage adapter recipe.

The corrupted model's embedding is useless, but the small correct model's embedding gives every
token a meaningful vector of width d_small. A linear adapter (d_small -> d_large, no bias) maps it
into the large model's input space; the adapted matrix is also the (tied) output layer.

1. Adapter only: every other weight is frozen; lr 1e-3 for 1000 iterations.
2. Everything (the small embedding, the adapter and all transformer weights): lr 1e-4 for 2000
   iterations.
3. Bake: the product (small embedding x adapter) becomes a plain vocab x d_large embedding, the
   large model's own architecture again, which is then trained whole: lr 8e-5 for 4000
   iterations, saved to solution/fixed_model.pth.

Each stage uses AdamW (betas 0.9/0.95, weight decay 0.1 on matrices), 100 warm-up iterations and
cosine decay to a tenth of its learning rate, micro-batches of 8 sequences of 1024 tokens with 2
accumulation steps, gradient clipping at 1 and bfloat16 autocast on a GPU. On one H100 this
takes about 1.5 to 2 hours for GPT-2-XL. The flags shrink everything for a rehearsal on CPU.
"""

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))
from model import load_checkpoint, save_checkpoint  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--iters", default="1000,2000,4000", help="iterations of stages 1,2,3")
    p.add_argument("--lrs", default="1e-3,1e-4,8e-5", help="peak learning rates of stages 1,2,3")
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=2)
    p.add_argument("--block-size", type=int, default=1024, help="capped at the model's")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--device", default="auto", help="auto (cuda when available), cuda or cpu")
    p.add_argument("--save-every", type=int, default=1000, help="stage-3 checkpoint interval")
    p.add_argument("--seed", type=int, default=1337)
    args = p.parse_args(argv)
    args.iters = [int(x) for x in args.iters.split(",")]
    args.lrs = [float(x) for x in args.lrs.split(",")]
    if len(args.iters) != 3 or len(args.lrs) != 3:
        p.error("--iters and --lrs take three comma-separated values")
    return args


class Batches:
    """Random windows of the training tokens (nanoGPT's get_batch)."""

    def __init__(self, path, block, batch, device, seed):
        self.data = np.memmap(path, dtype=np.uint16, mode="r")
        self.block, self.batch, self.device = block, batch, device
        self.gen = torch.Generator().manual_seed(seed)

    def next(self):
        ix = torch.randint(len(self.data) - self.block - 1, (self.batch,), generator=self.gen)
        x = np.stack([self.data[i : i + self.block] for i in ix.tolist()]).astype(np.int64)
        y = np.stack([self.data[i + 1 : i + 1 + self.block] for i in ix.tolist()]).astype(np.int64)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        if self.device.type == "cuda":
            return (
                x.pin_memory().to(self.device, non_blocking=True),
                y.pin_memory().to(self.device, non_blocking=True),
            )
        return x, y


def lr_at(it, total, peak, warmup):
    """Linear warm-up, then cosine decay from ``peak`` to ``peak / 10`` (nanoGPT's schedule)."""
    warmup = min(warmup, max(1, total // 10))
    if it < warmup:
        return peak * (it + 1) / warmup
    progress = (it - warmup) / max(1, total - warmup)
    return peak / 10 + 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * (peak - peak / 10)


def make_optimizer(named_params, lr, device):
    decay = [p for _, p in named_params if p.dim() >= 2]
    other = [p for _, p in named_params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}]
    extra = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), **extra)


def adapted_loss(large, small_emb, adapter, x, y):
    """The large model's loss with ``small_emb @ adapter.T`` as its tied embedding."""
    emb = small_emb @ adapter.t()  # vocab x d_large
    pos = torch.arange(x.shape[1], device=x.device)
    h = F.embedding(x, emb) + large.transformer["wpe"](pos)
    for block in large.transformer["h"]:
        h = block(h)
    logits = large.transformer["ln_f"](h) @ emb.t()
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))


def run_stage(name, loss_fn, named_params, iters, peak, args, batches, device, on_step=None):
    opt = make_optimizer(named_params, peak, device)
    params = [p for _, p in named_params]
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    began = time.time()
    for it in range(iters):
        for g in opt.param_groups:
            g["lr"] = lr_at(it, iters, peak, args.warmup)
        total = 0.0
        for _ in range(args.grad_accum):
            x, y = batches.next()
            with autocast:
                loss = loss_fn(x, y) / args.grad_accum
            loss.backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if it % 50 == 0 or it == iters - 1:
            print(f"{name} iter {it}/{iters} loss {total:.4f} ({time.time() - began:.0f} s)")
            sys.stdout.flush()
        if on_step is not None:
            on_step(it)


def main(argv=None):
    args = parse_args(argv)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    torch.manual_seed(args.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    start = time.time()
    large = load_checkpoint(HOME / "large_model.pth").to(device)
    small = load_checkpoint(HOME / "small_correct_model.pth")
    if small.config.vocab_size != large.config.vocab_size:
        raise SystemExit("the small and the large model must share the vocabulary")
    block = min(args.block_size, large.config.block_size)
    batches = Batches(HOME / "data" / "train.bin", block, args.micro_batch, device, args.seed)
    d_small, d_large = small.config.n_embd, large.config.n_embd

    # Stage 1: the small model's correct embedding through a trained adapter; all else frozen.
    small_emb = torch.nn.Parameter(small.wte.weight.detach().clone().to(device))
    adapter = torch.nn.Parameter(torch.empty(d_large, d_small, device=device))
    with torch.no_grad():
        # the corrupted matrix is a permutation of the original rows: its spread is the original's
        target_std = float(large.wte.weight.std())
        adapter.normal_(0.0, target_std / (float(small_emb.std()) * math.sqrt(d_small)))
    transformer = [
        (n, p) for n, p in large.named_parameters() if not n.startswith(("transformer.wte", "lm_"))
    ]
    for _, p in transformer:
        p.requires_grad_(False)
    small_emb.requires_grad_(False)
    large.train()

    def adapted(x, y):
        return adapted_loss(large, small_emb, adapter, x, y)

    stage1 = [("adapter", adapter)]
    run_stage("stage1", adapted, stage1, args.iters[0], args.lrs[0], args, batches, device)

    # Stage 2: everything trains, the adapter and the small embedding included.
    for _, p in transformer:
        p.requires_grad_(True)
    small_emb.requires_grad_(True)
    stage2 = [("small_emb", small_emb), ("adapter", adapter), *transformer]
    run_stage("stage2", adapted, stage2, args.iters[1], args.lrs[1], args, batches, device)

    # Stage 3: bake the adapter into a plain vocab x d_large embedding (the large model's own
    # architecture, tied to the output layer again) and train the whole model.
    with torch.no_grad():
        large.wte.weight.copy_(torch.einsum("vs,bs->vb", small_emb, adapter))
    target = HOME / "solution" / "fixed_model.pth"

    def save(it):
        if (it + 1) % args.save_every == 0 or it == args.iters[2] - 1:
            large.eval()
            save_checkpoint(large.to("cpu"), target)
            large.to(device).train()
            print(f"saved {target} after stage-3 iteration {it + 1}")

    def plain(x, y):
        return large(x, y)[1]

    stage3 = list(large.named_parameters())
    run_stage("stage3", plain, stage3, args.iters[2], args.lrs[2], args, batches, device, save)
    print(f"done in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
