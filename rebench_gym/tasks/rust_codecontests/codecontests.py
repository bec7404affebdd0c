"""Full-scale problems: CodeContests (deepmind/code_contests) splits, as the original task used.

The source is a directory holding a ``valid`` and a ``test`` split in the dataset's own formats:
JSON lines (``valid.jsonl``, ``test.jsonl``; also the original task's files of these names) or
the Hugging Face Parquet shards (``valid-00000-of-00001.parquet``, ...; needs ``pyarrow``).
Each record keeps the fields a scaffold or the evaluator uses (``name``, ``description``,
``public_tests``, ``private_tests``, ``generated_tests``, ``difficulty``, ``cf_rating``, ...);
the bulky ``solutions``/``incorrect_solutions`` are dropped.

The original task scores the whole ``test`` split (165 problems) and gives the agent the whole
``valid`` split (117), so by default (task.yaml ``filter`` empty or absent) every problem is kept.
An optional filter (``filter: {easy_difficulties: [...], max_cf_rating: N}``) keeps only problems
that read stdin and write stdout (no ``input_file``/``output_file``), have public tests and at
least one hidden test, and are easy: CodeContests ``difficulty`` in ``easy_difficulties`` (1 =
EASY, 7 = A, 8 = B) or a Codeforces rating from 1 to ``max_cf_rating``. A filtered set is not the
original's: its scores are not comparable with the paper's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rebench_gym.errors import AssetsError

KEEP_FIELDS = (
    "name",
    "description",
    "public_tests",
    "private_tests",
    "generated_tests",
    "source",
    "difficulty",
    "cf_contest_id",
    "cf_index",
    "cf_rating",
    "cf_tags",
    "time_limit",
    "memory_limit_bytes",
)
DEFAULT_FILTER: dict[str, Any] = {"easy_difficulties": [1, 7, 8], "max_cf_rating": 1400}


def _tests(record: dict[str, Any], key: str) -> dict[str, list[str]]:
    tests = record.get(key) or {}
    inputs, outputs = list(tests.get("input") or []), list(tests.get("output") or [])
    return {"input": [str(x) for x in inputs], "output": [str(x) for x in outputs]}


def normalize(record: dict[str, Any]) -> dict[str, Any]:
    """A CodeContests row reduced to :data:`KEEP_FIELDS`, tests as plain lists of strings."""
    out = {k: record[k] for k in KEEP_FIELDS if k in record}
    for key in ("public_tests", "private_tests", "generated_tests"):
        out[key] = _tests(record, key)
    if "cf_tags" in out:
        out["cf_tags"] = [str(t) for t in out["cf_tags"] or []]
    return out


def is_easy_stdio(record: dict[str, Any], rules: dict[str, Any]) -> bool:
    """Whether a normalized record passes the filter described in the module docstring."""
    if record.get("input_file") or record.get("output_file"):
        return False
    if not record["public_tests"]["input"]:
        return False
    if not (record["private_tests"]["input"] or record["generated_tests"]["input"]):
        return False
    easy = set(rules.get("easy_difficulties", DEFAULT_FILTER["easy_difficulties"]))
    max_rating = int(rules.get("max_cf_rating", DEFAULT_FILTER["max_cf_rating"]))
    rating = int(record.get("cf_rating") or 0)
    return int(record.get("difficulty") or 0) in easy or 0 < rating <= max_rating


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of one JSON-lines or Parquet file."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as e:
            raise AssetsError(f"reading {path} needs pyarrow: pip install pyarrow") from e
        return list(pq.read_table(path).to_pylist())
    rows = []
    with open(path) as fh:
        for i, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise AssetsError(f"{path}:{i} is not valid JSON: {e}") from None
    return rows


def split_files(source: Path, split: str) -> list[Path]:
    """The files of ``split`` in ``source`` (``split.jsonl`` or ``split-*.parquet``)."""
    found = sorted(source.glob(f"{split}.jsonl")) + sorted(source.glob(f"{split}-*.parquet"))
    found += sorted(source.glob(f"data/{split}-*.parquet"))
    return found


def load_codecontests(
    source: Path, rules: dict[str, Any] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """``{"valid": [...], "test": [...]}`` from a source directory (filtered by ``rules`` if any).

    Raises:
        AssetsError: a split is missing, unreadable, or empty after filtering.
    """
    if not source.is_dir():
        raise AssetsError(f"{source} is not a directory (it should hold valid and test splits)")
    splits: dict[str, list[dict[str, Any]]] = {}
    for split in ("valid", "test"):
        files = split_files(source, split)
        if not files:
            raise AssetsError(
                f"{source} has no {split} split: expected {split}.jsonl or {split}-*.parquet"
            )
        rows: list[dict[str, Any]] = []
        for f in files:
            rows += read_rows(f)
        kept = []
        for row in rows:
            if not isinstance(row, dict) or "name" not in row or "description" not in row:
                raise AssetsError(f"{files[0]} has a row without name/description")
            record = normalize(row)
            if not rules or is_easy_stdio(
                {**record, **{k: row.get(k) for k in ("input_file", "output_file")}}, rules
            ):
                kept.append(record)
        if not kept:
            raise AssetsError(f"no {split} problem of {source} passed the filter {rules}")
        splits[split] = kept
    return splits
