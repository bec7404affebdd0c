"""The mini scale's synthetic instructions, drawn from the package corpus's world.

Every instruction asks about the corpus's facts (a person's city, pet, job or colour), small
arithmetic or counting, optionally with the format constraint "answer in one word". Each has one
*ideal* response (what a perfect assistant says) from which the judge's rules derive what is
correct. Pre-training documents in the chat format pair instructions with responses of mixed
quality (ideal, verbose, wrong, off-topic, repetitive), so the pre-trained model has seen the
format but answers as unreliably as a base model does.

This module is part of the hidden task code: the judge's rules depend on it.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from rebench_gym.lm import corpus
from rebench_gym.lm.corpus import CITIES, COLORS, JOBS, NUMBERS, PETS, Person

#: words the chat format adds to the corpus vocabulary
CHAT_WORDS = ["instruction", "response", ":", "answer", "word", "like"]
ONE_WORD = "answer in one word :"
KINDS = ("city", "pet", "job", "color", "plus", "minus", "count")


def chat_vocabulary() -> list[str]:
    """The corpus vocabulary plus the chat format's words (the mini student's tokenizer)."""
    return list(dict.fromkeys(corpus.vocabulary() + CHAT_WORDS))


def chat_prompt(instruction: str) -> str:
    """The prompt the student sees (the mini counterpart of the Alpaca template)."""
    return f"instruction : {instruction} response :"


@dataclass(frozen=True)
class Instruction:
    """One synthetic instruction with what a perfect answer is."""

    text: str
    kind: str
    one_word: bool
    answer: str  # the fact or number word (for "count": the whole sequence)
    ideal: str  # the ideal response

    def to_dict(self) -> dict[str, object]:
        return {"instruction": self.text}


def _fact(p: Person, kind: str) -> tuple[str, str, str]:
    """(question, answer word, full-sentence answer) for one fact kind."""
    if kind == "city":
        return f"where does {p.name} live ?", p.city, f"{p.name} lives in {p.city} ."
    if kind == "pet":
        return f"what pet does {p.name} have ?", p.pet, f"{p.name} has a {p.pet} ."
    if kind == "job":
        return f"what job does {p.name} do ?", p.job, f"{p.name} works as a {p.job} ."
    return f"what color does {p.name} like ?", p.color, f"{p.name} likes {p.color} things ."


def all_instructions(world_seed: int = 0) -> list[Instruction]:
    """Every instruction the mini task can ask, in a fixed order."""
    out: list[Instruction] = []
    for p in corpus.world(world_seed):
        for kind in ("city", "pet", "job", "color"):
            q, ans, full = _fact(p, kind)
            out.append(Instruction(q, kind, False, ans, full))
            out.append(Instruction(f"{ONE_WORD} {q}", kind, True, ans, f"{ans} ."))
    for a in range(11):
        for b in range(11):
            if a + b <= 20:
                q = f"what is {NUMBERS[a]} plus {NUMBERS[b]} ?"
                s = NUMBERS[a + b]
                full = f"{NUMBERS[a]} plus {NUMBERS[b]} is {s} ."
                out.append(Instruction(q, "plus", False, s, full))
                out.append(Instruction(f"{ONE_WORD} {q}", "plus", True, s, f"{s} ."))
            if a >= b:
                q = f"what is {NUMBERS[a]} minus {NUMBERS[b]} ?"
                d = NUMBERS[a - b]
                full = f"{NUMBERS[a]} minus {NUMBERS[b]} is {d} ."
                out.append(Instruction(q, "minus", False, d, full))
                out.append(Instruction(f"{ONE_WORD} {q}", "minus", True, d, f"{d} ."))
    for start in range(15):
        for length in range(2, 7):
            end = min(20, start + length)
            seq = " ".join(NUMBERS[start : end + 1])
            q = f"count from {NUMBERS[start]} to {NUMBERS[end]} ."
            out.append(Instruction(q, "count", False, seq, f"{seq} ."))
    return list({i.text: i for i in out}.values())


def split_instructions(
    n_heldout: int, seed: int, world_seed: int = 0
) -> tuple[list[Instruction], list[Instruction]]:
    """(train, held-out): a fixed random split of every instruction."""
    items = all_instructions(world_seed)
    random.Random(seed).shuffle(items)
    return items[n_heldout:], items[:n_heldout]


def category_words(kind: str) -> set[str]:
    """The words that can answer an instruction of ``kind`` (right or wrong)."""
    return {
        "city": set(CITIES),
        "pet": set(PETS),
        "job": set(JOBS),
        "color": set(COLORS),
    }.get(kind, set(NUMBERS))


def noisy_response(item: Instruction, rng: random.Random, people: list[Person]) -> str:
    """A response of the quality mix a pre-training corpus holds (used for chat documents)."""
    full = _full_sentence(item)
    r = rng.random()
    if r < 0.25:
        return item.ideal
    if r < 0.45:  # verbose: right, then rambling
        return f"{full} {_random_sentence(rng, people)}"
    if r < 0.60:  # wrong fact
        return _wrong(item, full, rng)
    if r < 0.75:  # off-topic
        return " ".join(_random_sentence(rng, people) for _ in range(rng.randrange(1, 3)))
    if r < 0.85:  # repetition
        return " ".join([full] * rng.randrange(2, 4))
    return full if item.one_word else f"{full} {_random_sentence(rng, people)}"


def _full_sentence(item: Instruction) -> str:
    if not item.one_word:
        return item.ideal
    return _ideal_by_text().get(item.text.removeprefix(ONE_WORD + " "), item.ideal)


@functools.lru_cache(maxsize=1)
def _ideal_by_text() -> dict[str, str]:
    return {i.text: i.ideal for i in all_instructions()}


def _wrong(item: Instruction, full: str, rng: random.Random) -> str:
    if item.kind == "count":
        words = item.answer.split()
        i = rng.randrange(len(words))
        words[i] = rng.choice([n for n in NUMBERS if n != words[i]])
        return " ".join(words) + " ."
    choices = sorted(category_words(item.kind) - {item.answer})
    wrong = rng.choice(choices)
    text = f"{wrong} ." if item.one_word and rng.random() < 0.7 else full
    words = text.split()
    # replace the last occurrence of the answer (the result, not an operand)
    for i in range(len(words) - 1, -1, -1):
        if words[i] == item.answer:
            words[i] = wrong
            break
    return " ".join(words)


def _random_sentence(rng: random.Random, people: list[Person]) -> str:
    return corpus._sentence(rng, people)


def fact_documents(n_docs: int, seed: int) -> list[str]:
    """Documents that state the people's facts (what a pre-training corpus teaches a model)."""
    rng = random.Random(seed)
    people = corpus.world()
    docs = []
    for _ in range(n_docs):
        sentences = []
        for _ in range(rng.randrange(4, 9)):
            p = rng.choice(people)
            sentences.append(_fact(p, rng.choice(("city", "pet", "job", "color")))[2])
        docs.append(" ".join(sentences))
    return docs


def arithmetic_documents(n_docs: int, seed: int) -> list[str]:
    """Documents that state sums and differences (the arithmetic a corpus teaches a model)."""
    rng = random.Random(seed)
    facts = [i.ideal for i in all_instructions() if i.kind in ("plus", "minus") and not i.one_word]
    return [" ".join(rng.choice(facts) for _ in range(rng.randrange(4, 9))) for _ in range(n_docs)]


def chat_documents(n_docs: int, seed: int, items: list[Instruction]) -> list[str]:
    """Pre-training documents in the chat format with responses of mixed quality."""
    rng = random.Random(seed)
    people = corpus.world()
    docs = []
    for _ in range(n_docs):
        item = rng.choice(items)
        docs.append(f"{chat_prompt(item.text)} {noisy_response(item, rng, people)}")
    return docs
