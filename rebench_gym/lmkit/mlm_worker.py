"""Trusted masked-LM evaluation of a captured forward pass, run as a separate process.

    python -m rebench_gym.lmkit.mlm_worker SPEC_JSON

SPEC_JSON names the captured graph and weights (written by the sandboxed capture step), the
held-out token file, the sequence length, how many sequences and the batch size, the seed of
this score call, the mask id, the expected logits width and the device. The graph is checked
against the operator allowlist and executed by :class:`~rebench_gym.lmkit.op_guard.GraphRunner`;
no code of the agent's runs here. Prints one JSON line: ``{"loss": float, "tokens": int}``,
``{"violation": str}`` or ``{"error": str}``.

The graph runs first on a batch of token id 0 (public input): an error or rule violation there
is reported in full. On the held-out windows, an error's text could carry the data (an indexing
error names the index, which a graph can compute from the token ids), so a failure there is
reported without it, with a hint to reproduce it on the training tokens.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from rebench_gym.lmkit.data import read_tokens
from rebench_gym.lmkit.mlm import held_out_windows, mask_tokens, masked_loss_sum
from rebench_gym.lmkit.op_guard import (
    GraphFormatError,
    GraphRunner,
    RuleViolation,
    check_graph,
    decode_graph,
)


def evaluate(spec: dict[str, Any]) -> dict[str, Any]:
    """Check and run the captured graph on fresh masked held-out sequences."""
    graph_path = Path(spec["graph"])
    if graph_path.stat().st_size > int(spec.get("max_graph_bytes", 64 * 1024**2)):
        return {"error": "the captured graph is too large"}
    graph = decode_graph(json.loads(graph_path.read_text()))
    check_graph(graph)  # before any weights are loaded
    state = torch.load(spec["weights"], map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(state, dict):
        return {"error": "the captured weights are not a dict of tensors"}
    device = spec.get("device", "cpu")
    runner = GraphRunner(graph, state, device=device)
    batch, seq = runner.tokens.shape
    if seq != int(spec["seq_len"]):
        return {"error": f"the graph was captured for {seq} tokens, not {spec['seq_len']}"}
    vocab = int(spec["vocab"])
    # A dry run on public input: errors that do not depend on the data show in full here.
    shape_error = _check_logits(
        runner(torch.zeros(batch, seq, dtype=torch.long)), batch, seq, vocab
    )
    if shape_error:
        return {"error": shape_error}
    try:
        return _held_out_loss(spec, runner, batch, seq, vocab)
    except Exception as e:  # the text may quote held-out values: never passed on
        return {"error": HELD_OUT_FAILURE.format(kind=type(e).__name__)}


HELD_OUT_FAILURE = (
    "the forward pass ran on token id 0 but failed on the held-out data ({kind}); the error's "
    "text is not shown because it can quote held-out values: run your model on windows of "
    "data/train.bin (with 15% of the positions masked) to find it"
)


def _check_logits(logits: torch.Tensor, batch: int, seq: int, vocab: int) -> str:
    """Why ``logits`` are not ``[batch, seq, vocab]`` floats ("" when they are)."""
    if tuple(logits.shape) != (batch, seq, vocab):
        return (
            f"the logits have shape {tuple(logits.shape)}; expected "
            f"[batch, seq, vocab] = {[batch, seq, vocab]}"
        )
    if not logits.is_floating_point():
        return f"the logits must be floating point, not {logits.dtype}"
    return ""


def _held_out_loss(
    spec: dict[str, Any], runner: GraphRunner, batch: int, seq: int, vocab: int
) -> dict[str, Any]:
    """The masked-token loss on fresh held-out windows (errors propagate to the caller)."""
    seed = int(spec["seed"])
    tokens = held_out_windows(read_tokens(Path(spec["tokens"])), seq, int(spec["n_seqs"]), seed)
    gen = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for start in range(0, len(tokens), batch):
        rows = tokens[start : start + batch]
        n = len(rows)
        if n < batch:  # pad the last batch with copies; only the real rows count
            rows = torch.cat([rows, rows[:1].expand(batch - n, -1)])
        masked = mask_tokens(rows, int(spec["mask_id"]), gen)
        logits = runner(masked.inputs)
        shape_error = _check_logits(logits, batch, seq, vocab)
        if shape_error:  # the same shapes as in the dry run, whatever the data
            return {"error": shape_error}
        keep = masked.mask.clone()
        keep[n:] = False
        part = type(masked)(inputs=masked.inputs, targets=masked.targets, mask=keep)
        s, c = masked_loss_sum(logits.float().cpu(), part)
        total += s
        count += c
    loss = total / max(count, 1)
    if not torch.isfinite(torch.tensor(loss)):
        return {"error": "the loss on the held-out data is not finite"}
    return {"loss": loss, "tokens": count}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    torch.manual_seed(0)
    torch.set_num_threads(int(spec.get("threads", 2)))
    try:
        result = evaluate(spec)
    except RuleViolation as e:
        result = {"violation": str(e)}
    except (GraphFormatError, ValueError, RuntimeError, KeyError, TypeError, OSError) as e:
        result = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
