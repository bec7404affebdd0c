"""Helpers for working with the student model: prompts, tokenization, sampling, finetuning.

The prompt template, tokenizer and decoding settings are the ones the scorer uses (read from
``data/chat_format.json``); the scorer decodes your model greedily (``temperature=0``) with its
own copy of ``sample.py``. ``respond`` samples at ``explore_temperature`` by default, for
exploration; pass ``temperature=0`` to see what the scorer sees.
"""

import json
from pathlib import Path

import torch

from model import load_checkpoint, save_checkpoint  # noqa: F401 - re-exported for scripts
from sample import generate
from sft import finetune

HOME = Path(__file__).resolve().parent
FORMAT = json.loads((HOME / "data" / "chat_format.json").read_text())


def load_tokenizer():
    """The student's tokenizer: ``encode(text) -> ids``, ``decode(ids) -> text``, ``eot_id``."""
    if FORMAT["tokenizer"] == "word":
        return WordTokenizer(json.loads((HOME / "data" / "vocab.json").read_text())["words"])
    from bpe import GPT2BPE

    return GPT2BPE.from_dir(HOME / "data")


class WordTokenizer:
    """The mini scale's word-level tokenizer (the words are in ``data/vocab.json``)."""

    def __init__(self, words):
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}
        self.eot_id = self.index["<eot>"]

    def encode(self, text):
        return [self.index[w] for w in text.split()]

    def decode(self, ids):
        return " ".join(self.words[int(i)] for i in ids)


def prompt(instruction):
    """The full prompt the model sees for ``instruction``."""
    return FORMAT["template"].replace("{instruction}", instruction)


def train_instructions():
    """The training instructions (no responses), from ``data/train_instructions.jsonl``."""
    lines = (HOME / "data" / "train_instructions.jsonl").read_text().splitlines()
    return [json.loads(line)["instruction"] for line in lines if line.strip()]


def respond(model, tok, instructions, *, seed=0, temperature=None, device="cpu"):
    """One response per instruction: sampled at ``explore_temperature`` by default;
    ``temperature=0`` decodes greedily, as the scorer does."""
    max_new = min(FORMAT["max_new_tokens"], model.config.block_size // 2)
    prompts = [tok.encode(prompt(i))[-(model.config.block_size - max_new) :] for i in instructions]
    out = generate(
        model,
        prompts,
        max_new_tokens=max_new,
        eot_id=tok.eot_id,
        temperature=FORMAT["explore_temperature"] if temperature is None else temperature,
        generator=torch.Generator().manual_seed(seed),
        device=device,
    )
    return [tok.decode(ids).strip() for ids in out]


def sft(model, tok, pairs, *, steps, lr=1e-3, batch_size=32, seed=0, device="cpu"):
    """Finetune on (instruction, response) pairs, the loss on the response tokens only."""
    examples = [(tok.encode(prompt(i)), tok.encode(r)) for i, r in pairs]
    return finetune(
        model,
        examples,
        eot_id=tok.eot_id,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        device=device,
    )
