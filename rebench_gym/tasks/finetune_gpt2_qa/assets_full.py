"""Full-scale assets of FinetuneGPT2QA, from a directory the user provides.

Layout of ``SOURCE`` (``rebench assets prepare RE-Bench/FinetuneGPT2QA-v0 --scale full --source
SOURCE``):

* ``gpt2/``, ``gpt2-medium/``, ``gpt2-large/``, ``gpt2-xl/``: Hugging Face GPT-2 checkpoints
  (``config.json``, ``pytorch_model.bin`` or ``model.safetensors``, ``vocab.json``,
  ``merges.txt``); at least the student you will use (``task_options["student_model"]``,
  default gpt2-xl). Each present one becomes a student checkpoint.
* ``alpaca/train.jsonl`` and ``alpaca/heldout.jsonl``: one JSON object per line with
  ``instruction`` and optionally ``input`` (Alpaca's fields; an ``output`` is ignored: the agent
  never sees ground-truth responses). An input is appended to its instruction after a blank line.
* for each reference model (``gpt2-xl`` and ``gpt2-alpaca``), either
  ``reference_outputs/NAME.jsonl`` (``instruction``, optional ``input``, ``output``: its response
  to every held-out instruction; for a score comparable with the student's, decoded greedily
  with the task's template) or ``reference_models/NAME/`` (a Hugging Face GPT-2 checkpoint that
  is decoded here greedily, on a GPU when one is present, with the task's template, as the
  scorer decodes the student).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rebench_gym.errors import AssetsError
from rebench_gym.lmkit.bpe import GPT2BPE
from rebench_gym.lmkit.model import save_checkpoint
from rebench_gym.lmkit.sample import generate
from rebench_gym.tasks.base import ProgressFn

if TYPE_CHECKING:
    from rebench_gym.tasks.finetune_gpt2_qa.task import FinetuneGPT2QAFullParams

STUDENTS = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")


def instruction_text(row: dict[str, Any]) -> str:
    """An Alpaca row's instruction, with its input (if any) after a blank line."""
    text = str(row.get("instruction", "")).strip()
    extra = str(row.get("input") or "").strip()
    return f"{text}\n\n{extra}" if extra else text


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file (clear errors for malformed lines)."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise AssetsError(f"{path}:{n} is not JSON ({e})") from None
        if not isinstance(row, dict) or not str(row.get("instruction", "")).strip():
            raise AssetsError(f"{path}:{n} needs an 'instruction'")
        rows.append(row)
    if not rows:
        raise AssetsError(f"{path} holds no instructions")
    return rows


def build_full(
    out: Path, source: Path, params: FinetuneGPT2QAFullParams, progress: ProgressFn | None = None
) -> None:
    """Fill ``out`` from ``source`` (see the module docstring)."""
    from rebench_gym.lmkit.hf_gpt2 import load_hf_gpt2

    say = progress or (lambda _m: None)
    present = [name for name in STUDENTS if (source / name / "config.json").exists()]
    if not present:
        raise AssetsError(f"{source} lacks a GPT-2 checkpoint ({', '.join(STUDENTS)})")
    for needed in ("alpaca/train.jsonl", "alpaca/heldout.jsonl"):
        if not (source / needed).is_file():
            raise AssetsError(f"{source} lacks {needed} (see `rebench assets prepare --help`)")
    tokenizer_dir = source / present[0]
    tok = GPT2BPE.from_dir(tokenizer_dir)  # validates the files
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(tokenizer_dir / name, out / name)
    (out / "students").mkdir()
    for name in present:
        say(f"finetune_gpt2_qa (full): converting the student {name}")
        model = load_hf_gpt2(source / name)
        if model.config.vocab_size < tok.vocab_size:
            raise AssetsError(f"{name}'s vocabulary is smaller than its tokenizer's")
        save_checkpoint(model, out / "students" / f"{name}.pt")
    train = [instruction_text(r) for r in read_jsonl(source / "alpaca/train.jsonl")]
    heldout = [instruction_text(r) for r in read_jsonl(source / "alpaca/heldout.jsonl")]
    overlap = set(train) & set(heldout)
    if overlap:
        raise AssetsError(f"{len(overlap)} held-out instructions also appear in train.jsonl")
    references: dict[str, list[str]] = {}
    for ref in params.references:
        references[ref] = _reference_outputs(source, str(ref), heldout, tok, params, say)
    with (out / "heldout.jsonl").open("w") as fh:
        for n, text in enumerate(heldout):
            row = {"instruction": text, "references": {r: references[r][n] for r in references}}
            fh.write(json.dumps(row) + "\n")
    with (out / "train_instructions.jsonl").open("w") as fh:
        for text in train:
            fh.write(json.dumps({"instruction": text}) + "\n")
    (out / "meta.json").write_text(json.dumps({"tokenizer": "bpe", "students": present}))


def _reference_outputs(
    source: Path,
    name: str,
    heldout: list[str],
    tok: GPT2BPE,
    params: FinetuneGPT2QAFullParams,
    say: ProgressFn,
) -> list[str]:
    outputs = source / "reference_outputs" / f"{name}.jsonl"
    if outputs.is_file():
        by_text = {instruction_text(r): str(r.get("output", "")) for r in read_jsonl(outputs)}
        missing = [t for t in heldout if t not in by_text]
        if missing:
            raise AssetsError(
                f"{outputs} has no output for {len(missing)} held-out instruction(s), e.g. "
                f"{missing[0][:80]!r}"
            )
        return [by_text[t] for t in heldout]
    model_dir = source / "reference_models" / name
    if not (model_dir / "config.json").exists():
        raise AssetsError(
            f"{source} needs reference_outputs/{name}.jsonl or reference_models/{name}/ "
            "(a Hugging Face GPT-2 checkpoint to sample)"
        )
    from rebench_gym.lmkit.hf_gpt2 import load_hf_gpt2

    say(f"finetune_gpt2_qa (full): decoding the reference model {name} (greedy)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_hf_gpt2(model_dir).to(device)
    max_new = min(params.max_new_tokens, model.config.block_size // 2)
    keep = model.config.block_size - max_new
    template = params.template
    prompts = [tok.encode(template.replace("{instruction}", t))[-keep:] for t in heldout]
    out = generate(
        model,
        prompts,
        max_new_tokens=max_new,
        eot_id=tok.eot_id,
        temperature=0.0,  # greedy, as the scorer decodes the student (issue #21)
        batch_size=16,
        device=device,
    )
    return [tok.decode(ids).strip() for ids in out]
