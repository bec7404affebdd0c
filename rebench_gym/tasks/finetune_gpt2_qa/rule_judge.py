"""The mini scale's judge: deterministic rules that prefer the response better following the
instruction.

A response is rated by a tuple compared lexicographically:

1. correctness: +1 if it gives the right answer and no wrong one, -1 if it gives a wrong answer,
   0 if it gives none (for arithmetic the last number word is the answer; for counting the
   numbers must be exactly the asked sequence);
2. format: one word when the instruction says "answer in one word", otherwise a single sentence
   ending with a full stop;
3. no repetition: minus the number of repeated word trigrams;
4. length: minus the distance from the ideal response's length.

Equal ratings are broken deterministically and independently of the order in which the two
responses are shown: identical responses go to the first position (so a response compared with
itself wins half of the two orders), others to the response with the smaller hash.

This module is hidden task code: the workspace reaches it only through the judge service.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from rebench_gym.tasks.finetune_gpt2_qa.instructions_mini import (
    Instruction,
    all_instructions,
    category_words,
)

Rating = tuple[int, int, int, int]


class RuleJudge:
    """Pairwise judge over the mini task's instructions."""

    def __init__(self, instructions: list[Instruction] | None = None) -> None:
        items = instructions if instructions is not None else all_instructions()
        self._by_text: Mapping[str, Instruction] = {i.text: i for i in items}

    def knows(self, instruction: str) -> bool:
        """Whether ``instruction`` is one of the task's instructions."""
        return instruction in self._by_text

    def rate(self, instruction: str, response: str) -> Rating:
        """The rating tuple of ``response`` (higher is better); unknown instructions rate 0s."""
        item = self._by_text.get(instruction.strip())
        words = response.split()
        if item is None:
            return (0, 0, -_repeats(words), 0)
        return (
            _correctness(item, words),
            int(_format_ok(item, words)),
            -_repeats(words),
            -abs(len(words) - len(item.ideal.split())),
        )

    def compare(self, instruction: str, response_a: str, response_b: str) -> str:
        """``"a"`` or ``"b"``: the better response (see the module docstring for ties)."""
        ra, rb = self.rate(instruction, response_a), self.rate(instruction, response_b)
        if ra != rb:
            return "a" if ra > rb else "b"
        if response_a == response_b:
            return "a"
        return "a" if _digest(instruction, response_a) < _digest(instruction, response_b) else "b"


def _digest(instruction: str, response: str) -> str:
    return hashlib.sha256(f"{instruction}\x00{response}".encode()).hexdigest()


def _correctness(item: Instruction, words: list[str]) -> int:
    if item.kind == "count":
        numbers = [w for w in words if w in category_words("count")]
        if not numbers:
            return 0
        return 1 if numbers == item.answer.split() else -1
    if item.kind in ("plus", "minus"):
        numbers = [w for w in words if w in category_words(item.kind)]
        if not numbers:
            return 0
        return 1 if numbers[-1] == item.answer else -1
    given = {w for w in words if w in category_words(item.kind)}
    if not given:
        return 0
    return 1 if given == {item.answer} else -1


def _format_ok(item: Instruction, words: list[str]) -> bool:
    if not words:
        return False
    content = [w for w in words if w not in (".", ",", "?")]
    if item.one_word:
        return len(content) == 1 and words[-1] == "." and words.count(".") == 1
    return words[-1] == "." and words.count(".") == 1 and "?" not in words


def _repeats(words: list[str]) -> int:
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    return len(grams) - len(set(grams))
