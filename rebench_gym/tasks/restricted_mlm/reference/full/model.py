"""Reference solution: a residual 1-D convolutional network built from allowed operations.

Each layer pads the sequence with zeros, takes a sliding window of ``kernel`` positions with
``as_strided`` (a view, no copy), mixes the window with a linear map, applies relu and adds a
linear projection of the result back to the residual stream. Stacked layers see
``n_layer * (kernel - 1) + 1`` tokens around each position, so masked tokens are predicted from
their context. Only nn.Linear, nn.Embedding, +, relu, cat/as_strided/reshape and fixed zeros
are used in forward.
"""

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

CHECKPOINT = Path(__file__).with_name("trained_model.pth")


class ConvMLM(nn.Module):
    """``[batch, seq]`` token ids -> ``[batch, seq, vocab]`` logits."""

    def __init__(
        self, vocab_size: int, seq_len: int, n_embd: int = 64, kernel: int = 5, n_layer: int = 3
    ) -> None:
        super().__init__()
        self.config = {
            "vocab_size": vocab_size,
            "seq_len": seq_len,
            "n_embd": n_embd,
            "kernel": kernel,
            "n_layer": n_layer,
        }
        self.kernel = kernel
        self.embedding = nn.Embedding(vocab_size, n_embd)
        self.position = nn.Parameter(torch.zeros(seq_len, n_embd))
        self.mix = nn.ModuleList(nn.Linear(kernel * n_embd, 2 * n_embd) for _ in range(n_layer))
        self.proj = nn.ModuleList(nn.Linear(2 * n_embd, n_embd) for _ in range(n_layer))
        self.head = nn.Linear(n_embd, vocab_size)
        for proj in self.proj:
            nn.init.normal_(proj.weight, 0.0, 0.02 / n_layer)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        h = self.embedding(token_ids) + self.position
        batch, seq, width = h.shape
        pad = self.kernel // 2
        for mix, proj in zip(self.mix, self.proj):
            zeros = h.new_zeros((batch, pad, width))
            padded = torch.cat([zeros, h, zeros], dim=1)
            windows = padded.as_strided(
                (batch, seq, self.kernel, width), (padded.stride(0), width, width, 1)
            )
            h = h + proj(F.relu(mix(windows.reshape(batch, seq, self.kernel * width))))
        return self.head(F.relu(h))


def build_model(config: dict) -> nn.Module:
    """A fresh model from a config dict (as stored in the checkpoint)."""
    return ConvMLM(**config)


def get_trained_model() -> nn.Module:
    """Load the trained model from ``solution/trained_model.pth``."""
    checkpoint = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
    model = build_model(checkpoint["config"])
    model.load_state_dict(checkpoint["model"])
    return model
