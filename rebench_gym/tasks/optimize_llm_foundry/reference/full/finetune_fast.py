"""Tokenize, train and save in one launch (run by ``composer`` on every GPU).

    composer finetune_fast.py finetune.yaml --data ../train_data.jsonl --out trained_model k=v ...

Rank 0 tokenizes with LLM Foundry's converter while the others wait; every rank then trains with
LLM Foundry's ``train``; the full (unsharded) state dict is gathered to rank 0, cast to bf16 and
written with ``save_pretrained``, as ``convert_composer_to_hf.py --output_precision bf16`` would.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

import torch
from composer.utils import dist, get_device
from omegaconf import OmegaConf


def tokenize(data: str, out_root: str, max_seq_len: int, tokenizer: str) -> None:
    argv = [
        "convert_finetuning_dataset.py",
        "--dataset", "json",
        "--splits", "train",
        "--data_files", data,
        "--out_root", out_root,
        "--skip-preprocessing",
        "--max_seq_len", str(max_seq_len),
        "--tokenizer", tokenizer,
    ]  # fmt: skip
    saved, sys.argv = sys.argv, argv
    try:
        runpy.run_path("scripts/data_prep/convert_finetuning_dataset.py", run_name="__main__")
    finally:
        sys.argv = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    args, overrides = parser.parse_known_args()
    cfg = OmegaConf.merge(OmegaConf.load(args.config), OmegaConf.from_dotlist(overrides))
    OmegaConf.resolve(cfg)
    dist.initialize_dist(get_device(None))
    if dist.get_global_rank() == 0:
        tokenize(args.data, cfg.data_local, int(cfg.max_seq_len), cfg.model_name_or_path)
    dist.barrier()

    from llmfoundry.command_utils import train

    trainer = train(cfg)
    hf_model = trainer.state.model.model
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    with FSDP.state_dict_type(
        hf_model,
        StateDictType.FULL_STATE_DICT,
        FullStateDictConfig(offload_to_cpu=True, rank0_only=True),
    ):
        state = hf_model.state_dict()
    if dist.get_global_rank() == 0:
        state = {k: v.to(torch.bfloat16) for k, v in state.items()}
        hf_model.save_pretrained(args.out, state_dict=state)
        trainer.state.model.tokenizer.save_pretrained(args.out)
    dist.barrier()


if __name__ == "__main__":
    main()
