"""A small nanoGPT-style training loop for the checkpoints of this task.

    python train.py --init large_model.pth --out solution/fixed_model.pth --iters 500 --lr 3e-4

Trains the model of ``--init`` (a ``model.py`` checkpoint) on random windows of
``data/train.bin`` with AdamW (betas 0.9/0.95, weight decay 0.1 on matrices), linear warm-up and
cosine decay to a tenth of ``--lr``, gradient accumulation, gradient clipping at 1 and bfloat16
autocast on a GPU, then saves it to ``--out``. ``--only`` trains just the parameters whose names
contain one of the given substrings (e.g. ``--only transformer.wte``); ``--eval-tokens`` holds out
the last tokens of the training file to print a validation loss every ``--eval-every``
iterations. Edit it freely: it is a starting point, not part of scoring.
"""

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from model import load_checkpoint, save_checkpoint

HOME = Path(__file__).resolve().parent


def main(argv=None):
    p = argparse.ArgumentParser(description="nanoGPT-style training of a model.py checkpoint")
    p.add_argument("--init", default=str(HOME / "large_model.pth"))
    p.add_argument("--out", default=str(HOME / "solution" / "fixed_model.pth"))
    p.add_argument("--data", default=str(HOME / "data" / "train.bin"))
    p.add_argument("--iters", type=int, default=500)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--block-size", type=int, default=0, help="0: the model's block size")
    p.add_argument("--only", nargs="*", default=None, help="train only matching parameters")
    p.add_argument("--eval-tokens", type=int, default=0, help="hold out the file's last tokens")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=1337)
    args = p.parse_args(argv)

    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    torch.manual_seed(args.seed)
    model = load_checkpoint(args.init).to(device)
    block = args.block_size or model.config.block_size
    data = np.memmap(args.data, dtype=np.uint16, mode="r")
    train = data[: len(data) - args.eval_tokens] if args.eval_tokens else data
    held = data[len(data) - args.eval_tokens :] if args.eval_tokens else None
    gen = torch.Generator().manual_seed(args.seed)

    def batch(source):
        ix = torch.randint(len(source) - block - 1, (args.batch_size,), generator=gen).tolist()
        x = np.stack([source[i : i + block] for i in ix]).astype(np.int64)
        y = np.stack([source[i + 1 : i + 1 + block] for i in ix]).astype(np.int64)
        return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    named = [
        (n, q)
        for n, q in model.named_parameters()
        if args.only is None or any(s in n for s in args.only)
    ]
    for n, q in model.named_parameters():
        q.requires_grad_(any(n == m for m, _ in named))
    groups = [
        {"params": [q for _, q in named if q.dim() >= 2], "weight_decay": 0.1},
        {"params": [q for _, q in named if q.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95))
    cuda = device.type == "cuda"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda)
    print(f"training {sum(q.numel() for _, q in named):,} parameters on {device}")
    began = time.time()
    for it in range(args.iters):
        if it < args.warmup:
            lr = args.lr * (it + 1) / args.warmup
        else:
            frac = (it - args.warmup) / max(1, args.iters - args.warmup)
            lr = args.lr / 10 + 0.5 * (1 + math.cos(math.pi * frac)) * (args.lr - args.lr / 10)
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        total = 0.0
        for _ in range(args.grad_accum):
            x, y = batch(train)
            with autocast:
                _, loss = model(x, y)
            (loss / args.grad_accum).backward()
            total += loss.item() / args.grad_accum
        torch.nn.utils.clip_grad_norm_([q for _, q in named], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if it % 10 == 0 or it == args.iters - 1:
            print(f"iter {it} loss {total:.4f} lr {lr:.2e} ({time.time() - began:.0f} s)")
        if held is not None and (it % args.eval_every == 0 or it == args.iters - 1):
            model.eval()
            with torch.no_grad(), autocast:
                losses = [model(*batch(held))[1].item() for _ in range(10)]
            print(f"iter {it} held-out loss {sum(losses) / len(losses):.4f}")
    model.eval()
    save_checkpoint(model.to("cpu"), Path(args.out))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
