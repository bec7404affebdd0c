"""Reference training: the residual conv net of ``solution/model.py`` on masked tokens.

    python solution/train.py [--steps N] [--batch-size B] [--lr LR] [--device DEVICE]

Reads ``data/train.bin`` (uint16 token ids) and ``data/meta.json`` (vocabulary size, mask id,
sequence length) and writes ``solution/trained_model.pth``, which ``get_trained_model()``
loads. The rules restrict only the model's forward pass; training may use anything.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SOLUTION = Path(__file__).resolve().parent
HOME = SOLUTION.parent
sys.path.insert(0, str(SOLUTION))
from model import CHECKPOINT, build_model  # noqa: E402

MASK_FRACTION = 0.15
STEPS = 300


def masked_batch(data, meta, batch_size, gen, device):
    """Random windows with 15% of the positions replaced by the mask token."""
    seq = meta["seq_len"]
    starts = torch.randint(len(data) - seq, (batch_size,), generator=gen).tolist()
    tokens = torch.from_numpy(np.stack([data[s : s + seq] for s in starts]).astype(np.int64))
    n_mask = round(MASK_FRACTION * seq)
    order = torch.rand(batch_size, seq, generator=gen).argsort(dim=1)
    mask = torch.zeros(batch_size, seq, dtype=torch.bool)
    mask.scatter_(1, order[:, :n_mask], True)
    inputs = tokens.masked_fill(mask, meta["mask_id"])
    return inputs.to(device), tokens.to(device), mask.to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--n-embd", type=int, default=64)
    parser.add_argument("--kernel", type=int, default=5)
    parser.add_argument("--n-layer", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    meta = json.loads((HOME / "data" / "meta.json").read_text())
    data = np.memmap(HOME / "data" / "train.bin", dtype=np.uint16, mode="r")
    torch.manual_seed(args.seed)
    config = {
        "vocab_size": meta["model_vocab_size"],
        "seq_len": meta["seq_len"],
        "n_embd": args.n_embd,
        "kernel": args.kernel,
        "n_layer": args.n_layer,
    }
    model = build_model(config).to(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    start = time.time()
    for step in range(args.steps):
        lr = args.lr * min(1.0, (step + 1) / 20) * (0.55 + 0.45 * math.cos(math.pi * step / args.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        inputs, targets, mask = masked_batch(data, meta, args.batch_size, gen, args.device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.device.startswith("cuda")):
            logits = model(inputs)
        loss = F.cross_entropy(logits[mask].float(), targets[mask])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.3f} ({time.time() - start:.0f} s)", flush=True)
    model.eval()
    torch.save({"config": config, "model": model.to("cpu").state_dict()}, CHECKPOINT)
    print(f"saved {CHECKPOINT.relative_to(HOME)}")


if __name__ == "__main__":
    main()
