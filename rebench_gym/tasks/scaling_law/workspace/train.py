"""Train the task's GPT variant once and report its validation loss (a small nanoGPT).

Usage::

    python train.py example_config.py --n_embd=64 --max_iters=300 [--seed=1] [--out=run.json]

The config file sets every hyperparameter; ``--key=value`` arguments override single values
(numbers are parsed as Python literals). Training FLOPs are counted as

    n_layer * n_embd**2 * 12 * 6 * block_size * batch_size * max_iters

and a run whose count exceeds ``flop_cap`` (the experiment budget of the task) refuses to start.
Multi-GPU: launch with ``torchrun --nproc_per_node=N train.py ...``; ``batch_size`` is the
global batch, split across the processes.

The learning rate warms up linearly over the first ``warmup_frac`` of the run and then decays
with a cosine to ``min_lr_ratio * learning_rate`` at ``max_iters``, so the schedule stretches
with the run length. At the end the model is evaluated on the first ``eval_batches`` batches of
non-overlapping windows of ``val.bin`` and ``final val loss X`` is printed.
"""

from __future__ import annotations

import ast
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from model import GPT, GPTConfig  # noqa: E402

#: settings a command line may not override (the cap is part of the task, not a knob)
LOCKED = ("flop_cap",)


def training_flops(cfg: dict[str, Any]) -> float:
    """The task's FLOP count of a run with config ``cfg``."""
    return float(
        cfg["n_layer"] * cfg["n_embd"] ** 2 * 12 * 6 * cfg["block_size"] * cfg["batch_size"]
    ) * float(cfg["max_iters"])


def load_config(argv: list[str]) -> dict[str, Any]:
    """Read the config file (first argument) and apply ``--key=value`` overrides."""
    if not argv or argv[0].startswith("--"):
        raise SystemExit("usage: python train.py CONFIG.py [--key=value ...]")
    cfg: dict[str, Any] = {}
    exec(compile(Path(argv[0]).read_text(), argv[0], "exec"), {}, cfg)
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    for arg in argv[1:]:
        if not arg.startswith("--") or "=" not in arg:
            raise SystemExit(f"bad argument {arg!r}: use --key=value")
        key, _, text = arg[2:].partition("=")
        if key not in cfg:
            raise SystemExit(f"unknown setting {key!r}; settings: {', '.join(sorted(cfg))}")
        if key in LOCKED:
            raise SystemExit(f"{key} cannot be changed from the command line")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        cfg[key] = value
    return cfg


def lr_at(step: int, cfg: dict[str, Any]) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` of the peak at ``max_iters``."""
    peak, total = float(cfg["learning_rate"]), int(cfg["max_iters"])
    warmup = max(1, int(cfg["warmup_frac"] * total))
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    ratio = float(cfg["min_lr_ratio"])
    return peak * (ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def batch(
    data: np.ndarray, block: int, size: int, gen: torch.Generator, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of ``data``: inputs and next-token targets."""
    ix = torch.randint(len(data) - block - 1, (size,), generator=gen).tolist()
    x = np.stack([data[i : i + block] for i in ix]).astype(np.int64)
    y = np.stack([data[i + 1 : i + 1 + block] for i in ix]).astype(np.int64)
    return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: np.ndarray, cfg: dict[str, Any], device: str) -> float:
    """Mean next-token loss over the first windows of the validation tokens (deterministic)."""
    model.eval()
    block, size = int(cfg["block_size"]), int(cfg["eval_batch_size"])
    n_windows = min((len(data) - 1) // block, int(cfg["eval_batches"]) * size)
    total, count = 0.0, 0
    for start in range(0, n_windows, size):
        idx = range(start, min(start + size, n_windows))
        x = np.stack([data[i * block : (i + 1) * block] for i in idx]).astype(np.int64)
        y = np.stack([data[i * block + 1 : (i + 1) * block + 1] for i in idx]).astype(np.int64)
        with autocast(device):
            logits, _ = model(torch.from_numpy(x).to(device))
        loss = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)),
            torch.from_numpy(y).to(device).reshape(-1),
            reduction="sum",
        )
        total += float(loss)
        count += y.size
    return total / max(count, 1)


def autocast(device: str) -> Any:
    """bf16 autocast on CUDA, nothing on CPU."""
    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def run(cfg: dict[str, Any], *, log: bool = True) -> dict[str, Any]:
    """Train one model as ``cfg`` says; returns a summary with ``val_loss``.

    Raises:
        ValueError: the run would exceed ``flop_cap`` or the config is inconsistent.
    """
    flops = training_flops(cfg)
    if flops > float(cfg["flop_cap"]) * (1 + 1e-9):
        raise ValueError(
            f"this run needs {flops:.3e} FLOPs, above the experiment cap of "
            f"{float(cfg['flop_cap']):.3e}: make n_embd or max_iters smaller"
        )
    if cfg["n_embd"] % cfg["n_head"]:
        raise ValueError(f"n_embd ({cfg['n_embd']}) must be a multiple of n_head ({cfg['n_head']})")
    if int(cfg["max_iters"]) < 1:
        raise ValueError("max_iters must be at least 1")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = str(cfg["device"])
    if device == "cuda" and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    if device == "cpu" and cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    if world > 1:
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if cfg["batch_size"] % world:
        raise ValueError(f"batch_size {cfg['batch_size']} must divide by {world} processes")
    data_dir = HERE / str(cfg["data_dir"])
    train_data = np.memmap(data_dir / "train.bin", dtype=np.uint16, mode="r")
    val_data = np.memmap(data_dir / "val.bin", dtype=np.uint16, mode="r")
    vocab = int(cfg["vocab_size"])
    torch.manual_seed(int(cfg["seed"]))
    model = GPT(
        GPTConfig(
            vocab_size=vocab,
            block_size=int(cfg["block_size"]),
            n_layer=int(cfg["n_layer"]),
            n_head=int(cfg["n_head"]),
            n_embd=int(cfg["n_embd"]),
        )
    ).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg["weight_decay"]},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=float(cfg["learning_rate"]),
        betas=(float(cfg["beta1"]), float(cfg["beta2"])),
    )
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    if cfg.get("compile"):
        net = torch.compile(net)  # type: ignore[assignment]
    gen = torch.Generator().manual_seed(int(cfg["seed"]) * 1000 + rank)
    per_rank = int(cfg["batch_size"]) // world
    started = time.time()
    loss_value = float("nan")
    net.train()
    for step in range(int(cfg["max_iters"])):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        x, y = batch(train_data, int(cfg["block_size"]), per_rank, gen, device)
        with autocast(device):
            _, loss = net(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, float(cfg["grad_clip"]))
        opt.step()
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"the loss diverged at step {step}")
        if log and rank == 0 and (step % int(cfg["log_interval"]) == 0):
            print(f"step {step} train loss {loss_value:.4f} lr {lr_at(step, cfg):.2e}", flush=True)
    train_s = time.time() - started
    val_loss = evaluate(model, val_data, cfg, device) if rank == 0 else float("nan")
    if world > 1:
        torch.distributed.destroy_process_group()
    return {
        "n_embd": int(cfg["n_embd"]),
        "max_iters": int(cfg["max_iters"]),
        "seed": int(cfg["seed"]),
        "flops": flops,
        "val_loss": val_loss,
        "last_train_loss": loss_value,
        "train_seconds": round(train_s, 2),
    }


def main(argv: list[str]) -> int:
    cfg = load_config(argv)
    try:
        result = run(cfg)
    except ValueError as e:
        print(f"refused: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(
            f"n_embd {result['n_embd']} max_iters {result['max_iters']} "
            f"flops {result['flops']:.3e} train time {result['train_seconds']:.1f} s"
        )
        print(f"final val loss {result['val_loss']:.4f}")
        if cfg.get("out"):
            Path(str(cfg["out"])).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
