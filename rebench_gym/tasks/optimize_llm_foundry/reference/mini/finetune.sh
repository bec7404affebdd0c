#!/bin/bash
# Finetune ../base_model on ../train_data.jsonl; the weights go to trained_model/.
# One process: tokenize in memory, train without evaluation passes, checkpoints or dataloader
# workers, and save the weights straight from memory.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf trained_model
python finetune_fast.py finetune.yaml \
  --data ../train_data.jsonl \
  --out trained_model \
  model_name_or_path=../base_model
