"""The training loop: AdamW, cosine schedule with warm-up, gradient clipping, microbatches,
evaluation passes and full-state checkpoints, configured by ``finetune.yaml``."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from minifoundry.data import TokenizedDataset, batch_order, collate
from minifoundry.model import CausalLM, causal_lm_loss


def parse_duration(value: Any, batches_per_epoch: int) -> int:
    """A duration such as ``2ep`` or ``40ba`` (or a bare number of epochs) in batches."""
    text = str(value).strip()
    if text.endswith("ep"):
        return int(text[:-2]) * batches_per_epoch
    if text.endswith("ba"):
        return int(text[:-2])
    return int(text) * batches_per_epoch


def lr_multiplier(step: int, total: int, scheduler: dict[str, Any], per_epoch: int) -> float:
    """Composer's cosine_with_warmup: linear warm-up, then cosine decay to ``alpha_f``."""
    if scheduler.get("name", "cosine_with_warmup") != "cosine_with_warmup":
        raise ValueError(f"unsupported scheduler {scheduler.get('name')!r}")
    warmup = parse_duration(scheduler.get("t_warmup", "0ba"), per_epoch)
    alpha_f = float(scheduler.get("alpha_f", 0.0))
    if step < warmup:
        return step / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return alpha_f + (1 - alpha_f) * 0.5 * (1 + math.cos(math.pi * frac))


def build_optimizer(model: CausalLM, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """Decoupled AdamW (weight decay not scaled by the learning rate schedule's base lr)."""
    opt = cfg["optimizer"]
    if opt.get("name", "decoupled_adamw") != "decoupled_adamw":
        raise ValueError(f"unsupported optimizer {opt.get('name')!r}")
    lr = float(opt["lr"])
    return torch.optim.AdamW(
        model.parameters(),
        lr=lr,
        betas=tuple(float(b) for b in opt.get("betas", (0.9, 0.999))),  # type: ignore[arg-type]
        eps=float(opt.get("eps", 1e-8)),
        weight_decay=float(opt.get("weight_decay", 0.0)) / lr,
    )


def train_step(
    model: CausalLM,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    microbatch_size: int,
    clip: float | None,
) -> float:
    """One optimizer step on ``batch``, accumulated over microbatches; returns the loss."""
    size = batch["input_ids"].shape[0]
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for first in range(0, size, microbatch_size):
        ids = batch["input_ids"][first : first + microbatch_size]
        labels = batch["labels"][first : first + microbatch_size]
        loss = causal_lm_loss(model(ids), labels)
        (loss * (ids.shape[0] / size)).backward()
        total += float(loss.detach()) * ids.shape[0] / size
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return total


@torch.no_grad()
def evaluate(model: CausalLM, dataset: TokenizedDataset, batch_size: int, workers: int) -> float:
    """Mean loss over ``dataset``."""
    model.eval()
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batch_order(len(dataset), batch_size, 0, 0, False, False),
        num_workers=workers,
        collate_fn=collate,
    )
    losses = [float(causal_lm_loss(model(b["input_ids"]), b["labels"])) for b in loader]
    model.train()
    return sum(losses) / max(1, len(losses))


def save_checkpoint(
    folder: Path, model: CausalLM, optimizer: torch.optim.Optimizer, epoch: int, batch: int
) -> None:
    """Write the full training state and point ``latest-rank0.pt`` at it."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"ep{epoch}-ba{batch}-rank0.pt"
    state = {
        "state": {
            "model": model.state_dict(),
            "optimizers": {"AdamW": optimizer.state_dict()},
            "timestamp": {"epoch": epoch, "batch": batch},
            "model_config": model.config.__dict__.copy(),
        },
        "rng": torch.get_rng_state(),
    }
    torch.save(state, folder / name)
    latest = folder / "latest-rank0.pt"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    os.symlink(name, latest)


def fit(
    cfg: dict[str, Any],
    model: CausalLM,
    train_set: torch.utils.data.Dataset,  # type: ignore[type-arg]
    eval_set: TokenizedDataset | None = None,
    save_folder: str | Path | None = None,
    log: bool = True,
) -> CausalLM:
    """Train ``model`` as ``cfg`` says; evaluate and checkpoint where configured."""
    if cfg.get("precision", "fp32") != "fp32":
        raise ValueError("this miniature supports precision: fp32 only")
    torch.manual_seed(int(cfg.get("seed", 0)))
    loader_cfg = cfg["train_loader"]
    ds_cfg = loader_cfg["dataset"]
    global_batch = int(cfg["global_train_batch_size"])
    microbatch = int(cfg.get("device_train_microbatch_size", global_batch))
    n = len(train_set)  # type: ignore[arg-type]
    drop_last = bool(loader_cfg.get("drop_last", True))
    per_epoch = n // global_batch if drop_last else -(-n // global_batch)
    if per_epoch == 0:
        raise ValueError(f"{n} training samples make no batch of {global_batch}")
    total = parse_duration(cfg["max_duration"], per_epoch)
    clip_cfg = (cfg.get("algorithms") or {}).get("gradient_clipping")
    clip = float(clip_cfg["clipping_threshold"]) if clip_cfg else None
    eval_every = parse_duration(cfg.get("eval_interval", 0), per_epoch) if eval_set else 0
    save_every = parse_duration(cfg.get("save_interval", "0ba"), per_epoch) if save_folder else 0
    optimizer = build_optimizer(model, cfg)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    model.train()
    step, epoch, start = 0, 0, time.time()
    while step < total:
        seed = int(ds_cfg.get("shuffle_seed", 0))
        shuffle = bool(ds_cfg.get("shuffle", True))
        plan = batch_order(n, global_batch, seed, epoch, shuffle, drop_last)
        workers = int(loader_cfg.get("num_workers", 0))
        loader = torch.utils.data.DataLoader(
            train_set, batch_sampler=plan, num_workers=workers, collate_fn=collate
        )
        for batch in loader:
            scale = lr_multiplier(step, total, cfg.get("scheduler", {}), per_epoch)
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * scale
            loss = train_step(model, optimizer, batch, microbatch, clip)
            step += 1
            if log:
                print(f"[batch={step}/{total}] loss {loss:.4f} ({time.time() - start:.1f} s)")
            if save_every and step % save_every == 0:
                save_checkpoint(Path(save_folder), model, optimizer, epoch, step)  # type: ignore[arg-type]
            if eval_every and step % eval_every == 0:
                eval_cfg = cfg["eval_loader"]
                value = evaluate(
                    model,
                    eval_set,  # type: ignore[arg-type]
                    int(cfg.get("device_eval_batch_size", 8)),
                    int(eval_cfg.get("num_workers", 0)),
                )
                if log:
                    print(f"[eval batch={step}] loss {value:.4f}")
            if step >= total:
                break
        epoch += 1
    if save_folder and (not save_every or step % save_every):
        save_checkpoint(Path(save_folder), model, optimizer, epoch, step)
    return model
