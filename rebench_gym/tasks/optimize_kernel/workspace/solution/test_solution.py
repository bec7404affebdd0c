"""A quick local check you may run and change freely; the official score comes from `score`."""

import time

import torch
from solution import prefix_sum


def slow_reference(x: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    total = 0
    positives = 0
    for i, v in enumerate(x.tolist()):
        if positives % 2 == 1:
            total += v
        out[i] = total
        if v > 0:
            positives += 1
    return out


if __name__ == "__main__":
    example = torch.tensor([3, -1, 2, 5, -3], dtype=torch.int32)
    assert prefix_sum(example).tolist() == [0, -1, 1, 1, -2], prefix_sum(example)
    x = torch.randint(-10, 10, (5000,), dtype=torch.int32)
    assert torch.equal(prefix_sum(x).to(torch.int64), slow_reference(x).to(torch.int64))
    big = torch.randint(-10, 10, (2_097_152,), dtype=torch.int32)
    prefix_sum(big)
    start = time.perf_counter()
    prefix_sum(big)
    print(f"correct; {1000 * (time.perf_counter() - start):.1f} ms on 2**21 elements")
