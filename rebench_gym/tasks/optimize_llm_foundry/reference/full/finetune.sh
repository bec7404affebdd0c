#!/bin/bash
# Reference: one launch of 4 processes that tokenize (rank 0), train and save the weights in
# Hugging Face format straight from memory.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf finetuning_tokens trained_model
composer finetune_fast.py finetune.yaml \
  --data ../train_data.jsonl \
  --out trained_model \
  data_local=finetuning_tokens \
  model_name_or_path=../base_model
