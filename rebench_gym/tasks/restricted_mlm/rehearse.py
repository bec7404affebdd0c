"""Rehearsal stand-ins for RestrictedMLM: OpenWebText-format token files, small models, CPU.

The full-scale asset build copies ``openwebtext/{train,val}.bin`` (nanoGPT's uint16 files) and
trains the starting ReLU MLP with ``solution/train.py``; the reference trains
``reference/full/``'s residual conv net. The overrides shrink the vocabulary to the stand-in
corpus's, both trainings to a few hundred small steps, the held-out set to 64 windows, and
evaluate on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rebench_gym.rehearse import StandIns, write_openwebtext


def stand_ins(root: Path, progress: Callable[[str], None] | None = None) -> StandIns:
    vocab = write_openwebtext(root, train_docs=6000, val_docs=600)
    return StandIns(
        source=root,
        params={
            "vocab_size": vocab,
            "eval_seqs": 64,
            "eval_batch_size": 32,
            "eval_device": "cpu",
            "start_model": {
                "steps": 100,
                "batch_size": 32,
                "lr": 0.003,
                "n_embd": 32,
                "hidden": 64,
            },
            "reference_train": {
                "steps": 100,
                "batch_size": 16,
                "lr": 0.003,
                "n_embd": 32,
                "kernel": 5,
                "n_layer": 2,
                "device": "cpu",
            },
        },
    )
