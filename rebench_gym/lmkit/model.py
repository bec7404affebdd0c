"""One small GPT (GPT-2's architecture: pre-LayerNorm blocks, learned positions, tied input and
output embeddings), used by every LM task at mini scale and shaped like GPT-2 at full scale."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F

#: one attention layer's cached keys and values, each ``[batch, heads, time, head_dim]``
KV = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class GPTConfig:
    """Model shape. GPT-2 small is (50257, 1024, 12, 12, 768); GPT-2-XL (…, 48, 25, 1600)."""

    vocab_size: int
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    bias: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        if cfg.n_embd % cfg.n_head:
            raise ValueError("n_embd must be a multiple of n_head")
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attend(x, None)[0]

    def attend(self, x: torch.Tensor, past: KV | None) -> tuple[torch.Tensor, KV]:
        """Attention over ``past`` keys/values (or causally over ``x`` alone when ``None``, as
        ``forward``); returns the output and the keys/values up to ``x``'s last position.
        With ``past``, ``x`` must be one position (the next token)."""
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        shape = (b, t, self.n_head, c // self.n_head)
        q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))
        if past is not None:
            if t != 1:
                raise ValueError("with cached keys/values, attend to one new position at a time")
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=past is None)
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c)), (k, v)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.step(x, None)[0]

    def step(self, x: torch.Tensor, past: KV | None) -> tuple[torch.Tensor, KV]:
        """``forward`` with cached keys/values (see :meth:`CausalSelfAttention.attend`)."""
        y, kv = self.attn.attend(self.ln_1(x), past)
        x = x + y
        return x + self.mlp(self.ln_2(x)), kv


class GPT(nn.Module):
    """The model; ``forward(idx, targets=None) -> (logits, loss)``."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(cfg.vocab_size, cfg.n_embd),
                "wpe": nn.Embedding(cfg.block_size, cfg.n_embd),
                "h": nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer)),
                "ln_f": nn.LayerNorm(cfg.n_embd, bias=cfg.bias),
            }
        )
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, like GPT-2
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 0.02)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        t = idx.shape[1]
        if t > self.config.block_size:
            raise ValueError(f"sequence of {t} tokens exceeds block_size {self.config.block_size}")
        pos = torch.arange(t, device=idx.device)
        x = self.wte(idx) + cast(nn.Embedding, self.transformer["wpe"])(pos)
        for block in cast(nn.ModuleList, self.transformer["h"]):
            x = block(x)
        logits = self.lm_head(cast(nn.LayerNorm, self.transformer["ln_f"])(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss

    @torch.no_grad()
    def decode(
        self, idx: torch.Tensor, past: list[KV] | None = None
    ) -> tuple[torch.Tensor, list[KV]]:
        """Incremental decoding with a key/value cache: the logits of the last position
        (``[batch, vocab]``) and the cache to continue from. The first call gives the whole
        prompt (``past=None``), each later call one new token per row; the result equals
        ``forward`` on the whole sequence so far (up to float rounding)."""
        start = 0 if past is None else int(past[0][0].shape[2])
        t = idx.shape[1]
        if start + t > self.config.block_size:
            raise ValueError(f"sequence of {start + t} tokens exceeds block_size")
        pos = torch.arange(start, start + t, device=idx.device)
        x = self.wte(idx) + cast(nn.Embedding, self.transformer["wpe"])(pos)
        blocks = cast(nn.ModuleList, self.transformer["h"])
        present = []
        for n, block in enumerate(blocks):
            x, kv = cast(Block, block).step(x, None if past is None else past[n])
            present.append(kv)
        x = cast(nn.LayerNorm, self.transformer["ln_f"])(x[:, -1:, :])
        return self.lm_head(x)[:, -1, :], present

    @property
    def wte(self) -> nn.Embedding:
        """The token embedding (tied to ``lm_head``)."""
        return cast(nn.Embedding, self.transformer["wte"])

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def save_checkpoint(model: GPT, path: Path) -> None:
    """Save ``{"config": ..., "model": state_dict}`` (loadable with ``weights_only=True``)."""
    torch.save({"config": model.config.to_dict(), "model": model.state_dict()}, path)


def load_checkpoint(path: Path, map_location: str = "cpu") -> GPT:
    """Load a checkpoint written by :func:`save_checkpoint`; no code is executed."""
    data = torch.load(path, map_location=map_location, weights_only=True)
    model = GPT(GPTConfig(**data["config"]))
    model.load_state_dict(data["model"])
    return model
