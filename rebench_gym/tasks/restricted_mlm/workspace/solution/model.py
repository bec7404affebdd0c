"""The starting solution: a ReLU MLP applied to each position on its own.

It never looks at the other tokens of the sequence, so at a masked position (whose input is
the mask token) it can only predict how frequent each token is in general.

Rules for ``forward`` (see instructions.md): only nn.Linear, nn.Embedding, matmul/@/einsum,
sum, elementwise + and *, relu, indexing and reshaping, fixed tensors and constants.
"""

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

CHECKPOINT = Path(__file__).with_name("trained_model.pth")


class MLPModel(nn.Module):
    """Embedding, one hidden ReLU layer, output layer: ``[batch, seq] -> [batch, seq, vocab]``."""

    def __init__(self, vocab_size: int, n_embd: int = 64, hidden: int = 256) -> None:
        super().__init__()
        self.config = {"vocab_size": vocab_size, "n_embd": n_embd, "hidden": hidden}
        self.embedding = nn.Embedding(vocab_size, n_embd)
        self.fc1 = nn.Linear(n_embd, hidden)
        self.fc2 = nn.Linear(hidden, vocab_size)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(self.embedding(token_ids))))


def build_model(config: dict) -> nn.Module:
    """A fresh model from a config dict (as stored in the checkpoint)."""
    return MLPModel(**config)


def get_trained_model() -> nn.Module:
    """Load the trained model from ``solution/trained_model.pth`` (no training here)."""
    checkpoint = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
    model = build_model(checkpoint["config"])
    model.load_state_dict(checkpoint["model"])
    return model
