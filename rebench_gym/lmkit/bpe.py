"""GPT-2's byte-level BPE tokenizer, read from a checkpoint's ``vocab.json`` and ``merges.txt``.

Imports nothing from the package, so tasks can copy it into an agent's workspace.

Needed where tiktoken cannot download its files (offline machines). Pre-tokenization uses
GPT-2's pattern with the ``regex`` package when installed; without it an equivalent pattern
for the standard ``re`` module is used (letters ``[^\\W\\d_]``, digits ``\\d``), which differs
only on rare Unicode categories.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

EOT = "<|endoftext|>"

try:  # pragma: no cover - depends on the environment
    import regex as _regex

    _PATTERN: Any = _regex.compile(
        r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    )
except ImportError:  # pragma: no cover
    _PATTERN = re.compile(
        r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|_+|\s+(?!\S)|\s+"""
    )


@functools.lru_cache(maxsize=1)
def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters."""
    keep = list(range(ord("!"), ord("~") + 1))
    keep += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = list(keep)
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            codes.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(keep, codes, strict=True)}


class GPT2BPE:
    """Encode and decode text with GPT-2's vocabulary and merge ranks."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
        self.encoder = dict(vocab)
        self.decoder = {i: s for s, i in vocab.items()}
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        if EOT not in self.encoder:
            raise ValueError(f"the vocabulary has no {EOT} token")
        self.eot_id = self.encoder[EOT]
        self._b2u = _byte_to_unicode()
        self._u2b = {u: b for b, u in self._b2u.items()}
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def from_dir(cls, path: Path) -> GPT2BPE:
        """Load ``vocab.json`` and ``merges.txt`` (Hugging Face's GPT-2 layout)."""
        for name in ("vocab.json", "merges.txt"):
            if not (path / name).is_file():
                raise ValueError(f"{path} lacks {name} (GPT-2's tokenizer files)")
        vocab = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
        merges = []
        for line in (path / "merges.txt").read_text(encoding="utf-8").splitlines():
            if not line or line.startswith("#version"):
                continue
            left, _, right = line.partition(" ")
            merges.append((left, right))
        return cls(vocab, merges)

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def _bpe(self, word: str) -> list[str]:
        if word in self._cache:
            return self._cache[word]
        parts = list(word)
        while len(parts) > 1:
            pairs = [(parts[i], parts[i + 1]) for i in range(len(parts) - 1)]
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        if len(self._cache) < 100_000:
            self._cache[word] = parts
        return parts

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (``<|endoftext|>`` is encoded as the special token)."""
        ids: list[int] = []
        for k, chunk in enumerate(text.split(EOT)):
            if k:
                ids.append(self.eot_id)
            for piece in _PATTERN.findall(chunk):
                mapped = "".join(self._b2u[b] for b in piece.encode("utf-8"))
                for sym in self._bpe(mapped):
                    if sym not in self.encoder:
                        raise ValueError(f"symbol {sym!r} is not in the vocabulary")
                    ids.append(self.encoder[sym])
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids (invalid UTF-8 replaced)."""
        text = "".join(self.decoder.get(int(i), "") for i in ids)
        return bytes(self._u2b[c] for c in text if c in self._u2b).decode("utf-8", "replace")
