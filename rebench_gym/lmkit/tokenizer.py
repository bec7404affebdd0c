"""A word-level tokenizer over the corpus vocabulary (ids fit nanoGPT's uint16 files)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from rebench_gym.lmkit.corpus import EOT, vocabulary


class WordTokenizer:
    """Splits on spaces; every word must be in the vocabulary."""

    def __init__(self, words: list[str]) -> None:
        if len(words) >= 2**16:
            raise ValueError("vocabulary too large for uint16 token files")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.eot_id = self.index[EOT]

    @classmethod
    def default(cls) -> WordTokenizer:
        return cls(vocabulary())

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.index[w] for w in text.split()]
        except KeyError as e:
            raise ValueError(f"word {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.words[int(i)] for i in ids)

    def encode_documents(self, docs: Iterable[str]) -> np.ndarray:
        """All documents as one uint16 stream, each followed by the end-of-text token."""
        out: list[int] = []
        for doc in docs:
            out += self.encode(doc)
            out.append(self.eot_id)
        return np.asarray(out, dtype=np.uint16)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"type": "word", "words": self.words}))

    @classmethod
    def load(cls, path: Path) -> WordTokenizer:
        return cls(json.loads(path.read_text())["words"])
