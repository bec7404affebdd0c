"""Finetune a model as a YAML file says (like LLM Foundry's ``scripts/train/train.py``).

    python scripts/train/train.py finetune.yaml key=value ...
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from minifoundry.config import load_config  # noqa: E402
from minifoundry.data import TokenizedDataset  # noqa: E402
from minifoundry.model import CausalLM  # noqa: E402
from minifoundry.trainer import fit  # noqa: E402


def main(argv: list[str]) -> None:
    cfg = load_config(argv[0], argv[1:])
    model = CausalLM.from_pretrained(cfg["model"]["pretrained_model_name_or_path"])
    train_ds = cfg["train_loader"]["dataset"]
    eval_ds = cfg["eval_loader"]["dataset"]
    train_set = TokenizedDataset(Path(train_ds["local"]) / train_ds["split"])
    eval_set = TokenizedDataset(Path(eval_ds["local"]) / eval_ds["split"])
    fit(cfg, model, train_set, eval_set, save_folder=cfg.get("save_folder"))


if __name__ == "__main__":
    main(sys.argv[1:])
