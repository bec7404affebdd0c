"""Turn a training checkpoint into a model directory (like LLM Foundry's converter).

    python scripts/inference/convert_composer_to_hf.py --composer_path ftout/latest-rank0.pt \
        --hf_output_path trained_model --output_precision fp32
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from minifoundry.model import CausalLM, ModelConfig  # noqa: E402

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--composer_path", required=True)
    parser.add_argument("--hf_output_path", required=True)
    parser.add_argument("--output_precision", choices=sorted(PRECISIONS), default="fp32")
    args = parser.parse_args()
    checkpoint = torch.load(args.composer_path, map_location="cpu", weights_only=True)
    state = checkpoint["state"]
    model = CausalLM(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    model.to(PRECISIONS[args.output_precision])
    model.save_pretrained(args.hf_output_path)
    print(f"wrote {args.hf_output_path}")


if __name__ == "__main__":
    main()
