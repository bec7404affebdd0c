#!/bin/bash
# Finetune ../base_model on ../train_data.jsonl; the weights go to trained_model/.
set -euo pipefail
cd "$(dirname "$0")"
BASE_MODEL=../base_model

rm -rf finetuning_tokens
python -c "import minifoundry.data; minifoundry.data.clean_stale_shared_memory()"
time python scripts/data_prep/convert_finetuning_dataset.py \
  --dataset json \
  --splits train \
  --data_files ../train_data.jsonl \
  --out_root finetuning_tokens \
  --skip-preprocessing \
  --max_seq_len 128 \
  --tokenizer "${BASE_MODEL}"
cp -r finetuning_tokens/train finetuning_tokens/valid

rm -rf ftout
time python scripts/train/train.py \
  finetune.yaml \
  data_local=finetuning_tokens \
  model_name_or_path="${BASE_MODEL}" \
  train_loader.dataset.split=train \
  eval_loader.dataset.split=valid \
  save_folder=ftout

rm -rf trained_model
time python scripts/inference/convert_composer_to_hf.py \
  --composer_path ftout/latest-rank0.pt \
  --hf_output_path trained_model \
  --output_precision fp32
