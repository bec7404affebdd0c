"""Tokenize, train and save in one process, with the hyperparameters of finetune.yaml.

    python finetune_fast.py finetune.yaml --data ../train_data.jsonl --out trained_model [k=v]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from minifoundry.config import load_config  # noqa: E402
from minifoundry.data import read_jsonl, tokenize_rows  # noqa: E402
from minifoundry.model import CausalLM  # noqa: E402
from minifoundry.trainer import fit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    args, overrides = parser.parse_known_args()
    cfg = load_config(args.config, overrides)
    # No evaluation, no checkpoints and no worker processes: none of them changes the weights.
    cfg["train_loader"]["num_workers"] = 0
    samples = tokenize_rows(read_jsonl(args.data), int(cfg["max_seq_len"]))
    model = CausalLM.from_pretrained(cfg["model"]["pretrained_model_name_or_path"])
    fit(cfg, model, samples, eval_set=None, save_folder=None, log=False)
    model.save_pretrained(args.out)


if __name__ == "__main__":
    main()
