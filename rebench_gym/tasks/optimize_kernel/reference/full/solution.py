"""Full-scale reference: a three-phase Triton scan for one GPU.

Phase 1 counts the positive values of every block. An exclusive scan of those counts gives the
parity of positives before each block. Phase 2 scans each block, including an element when the
number of positives before it (block prefix plus in-block exclusive count) is odd, and writes the
block sums. An exclusive scan of the block sums gives each block's offset, which phase 3 adds.
"""

import torch
import triton
import triton.language as tl

BLOCK = 4096


@triton.jit
def _count_positive(x_ptr, counts_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < n, other=0)
    tl.store(counts_ptr + pid, tl.sum((x > 0).to(tl.int32), axis=0))


@triton.jit
def _block_scan(x_ptr, y_ptr, parity_ptr, sums_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0)
    positive = (x > 0).to(tl.int32)
    before = tl.cumsum(positive, axis=0) - positive + tl.load(parity_ptr + pid)
    kept = tl.where((before & 1) == 1, x, 0)
    scanned = tl.cumsum(kept, axis=0)
    tl.store(y_ptr + offs, scanned, mask=mask)
    tl.store(sums_ptr + pid, tl.sum(kept, axis=0))


@triton.jit
def _add_offsets(y_ptr, offsets_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    y = tl.load(y_ptr + offs, mask=mask, other=0)
    tl.store(y_ptr + offs, y + tl.load(offsets_ptr + pid), mask=mask)


def prefix_sum(x: torch.Tensor) -> torch.Tensor:
    n = x.numel()
    y = torch.empty_like(x)
    if n == 0:
        return y
    blocks = triton.cdiv(n, BLOCK)
    counts = torch.empty(blocks, dtype=torch.int32, device=x.device)
    _count_positive[(blocks,)](x, counts, n, BLOCK=BLOCK)
    parity = (torch.cumsum(counts, 0, dtype=torch.int32) - counts) & 1
    sums = torch.empty(blocks, dtype=torch.int32, device=x.device)
    _block_scan[(blocks,)](x, y, parity, sums, n, BLOCK=BLOCK)
    offsets = torch.cumsum(sums, 0, dtype=torch.int32) - sums
    _add_offsets[(blocks,)](y, offsets, n, BLOCK=BLOCK)
    return y
