"""Starting solution: a correct, straightforward vectorized PyTorch version.

Replace it with something faster. The scorer imports `prefix_sum` from this file.
"""

import torch


def prefix_sum(x: torch.Tensor) -> torch.Tensor:
    positive = (x > 0).to(torch.int32)
    positives_before = torch.cumsum(positive, dim=0) - positive
    include = (positives_before % 2) == 1
    masked = torch.where(include, x, torch.zeros_like(x))
    return torch.cumsum(masked, dim=0).to(torch.int32)
