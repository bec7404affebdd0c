"""Training data for the task: prompt/response JSON lines drawn from a seed.

Mini scale draws the rows from the package's synthetic corpus (:mod:`rebench_gym.lmkit.corpus`):
each document is cut at a sentence boundary into a prompt and a response. Every score call uses
a fresh seed, so the solution never sees its training data before it runs. Full scale draws its
rows from the prepared pool (see :mod:`rebench_gym.tasks.optimize_llm_foundry.full`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rebench_gym.lmkit.corpus import documents

#: the seed of the example ``train_data.jsonl`` in the workspace (scoring never uses it)
EXAMPLE_SEED = 20_240_001


def corpus_rows(n_rows: int, seed: int) -> list[dict[str, str]]:
    """``n_rows`` prompt/response pairs cut from corpus documents drawn with ``seed``."""
    rng = random.Random(seed)
    rows = []
    for doc in documents(n_rows, seed):
        sentences = [s.strip() + " ." for s in doc.split(" .") if s.strip()]
        sentences = sentences[: rng.randint(2, 4)]
        cut = rng.randint(1, len(sentences) - 1) if len(sentences) > 1 else 1
        rows.append({"prompt": " ".join(sentences[:cut]), "response": " ".join(sentences[cut:])})
    return rows


def sample_rows(pool: Sequence[dict[str, Any]], n_rows: int, seed: int) -> list[dict[str, Any]]:
    """``n_rows`` rows drawn without replacement from ``pool`` in a seeded random order."""
    if n_rows > len(pool):
        raise ValueError(f"the data pool has {len(pool)} rows; {n_rows} are needed")
    return random.Random(seed).sample(list(pool), n_rows)


def write_jsonl(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write ``rows`` as JSON lines."""
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read JSON lines, checking each row is an object with string prompt and response."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not (
                isinstance(row, dict)
                and isinstance(row.get("prompt"), str)
                and isinstance(row.get("response"), str)
            ):
                raise ValueError(f"{path}:{number}: each row needs string 'prompt' and 'response'")
            rows.append(row)
    return rows
