"""Tokenize a prompt/response JSON-lines file into shards (like LLM Foundry's script).

    python scripts/data_prep/convert_finetuning_dataset.py --dataset json --splits train \
        --data_files ../train_data.jsonl --out_root finetuning_tokens --max_seq_len 256
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from minifoundry.data import read_jsonl, tokenize_rows, write_split  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="json")
    parser.add_argument("--splits", nargs="+", default=["train"])
    parser.add_argument("--data_files", required=True)
    parser.add_argument("--out_root", required=True)
    parser.add_argument("--max_seq_len", type=int, required=True)
    parser.add_argument("--tokenizer", default="bytes")
    parser.add_argument("--skip-preprocessing", action="store_true")
    args = parser.parse_args()
    if args.dataset != "json":
        raise SystemExit("only --dataset json is supported")
    rows = read_jsonl(args.data_files)
    for split in args.splits:
        write_split(tokenize_rows(rows, args.max_seq_len), Path(args.out_root) / split)
        print(f"wrote {len(rows)} samples to {Path(args.out_root) / split}")


if __name__ == "__main__":
    main()
