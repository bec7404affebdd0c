"""The mini scale's synthetic instructions, drawn from the package corpus's world.

Every instruction asks about a person's facts (city, pet, job or colour), small arithmetic or
counting, optionally with the format constraint "answer in one word". Each has one *ideal*
response (what a perfect assistant says) from which the judge's rules derive what is correct.
Pre-training documents in the chat format pair instructions with responses of mixed quality
(ideal, verbose, wrong, off-topic, repetitive), so the pre-trained model has seen the format but
answers as unreliably as a base model does.

Two disjoint spaces (issue #21: a held-out set that is the training prompts' template space minus
the training prompts can be rebuilt exactly):

* the **training space**: the 40 corpus people and the training phrasings ("where does X live
  ?", "what is A plus B ?", "count from A to B ."); every instruction of it is a training
  instruction (the agent sees them all);
* the **held-out space**: questions about :data:`HIDDEN_NAMES` (people whose facts only the
  pre-training corpus states) in either phrasing, and questions in the held-out phrasings
  (:data:`HELDOUT_WORDS`: "in what town does X live ?", "how much is A plus B ?", ...) about
  anyone. Every held-out instruction contains a word of :func:`hidden_words`, which no workspace
  file shows (the workspace vocabulary masks them); the pre-training corpus uses them, so the
  model knows the people and understands the phrasings.

This module is part of the hidden task code: the judge's rules depend on it.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from rebench_gym.lmkit import corpus
from rebench_gym.lmkit.corpus import CITIES, COLORS, JOBS, NUMBERS, PETS, Person

#: words the chat format adds to the corpus vocabulary
CHAT_WORDS = ["instruction", "response", ":", "answer", "word", "like"]
ONE_WORD = "answer in one word :"
KINDS = ("city", "pet", "job", "color", "plus", "minus", "count")
FACT_KINDS = ("city", "pet", "job", "color")
#: people only the pre-training corpus and the held-out instructions mention
HIDDEN_NAMES = [
    "zorin",
    "talia",
    "marek",
    "odile",
    "pavel",
    "renata",
    "soren",
    "tamsin",
    "ulrich",
    "vesna",
    "wilma",
    "yusuf",
    "zelda",
    "anouk",
    "bram",
    "cosmo",
]
#: the words of the held-out phrasings (never in a training instruction or workspace file)
HELDOUT_WORDS = ["town", "animal", "keep", "profession", "colour", "how", "much", "say", "numbers"]
#: the seed of the hidden people's facts
HIDDEN_WORLD_SEED = 101


def hidden_words() -> list[str]:
    """The vocabulary words the workspace masks: hidden names and held-out phrasing words."""
    return HIDDEN_NAMES + HELDOUT_WORDS


def chat_vocabulary() -> list[str]:
    """The corpus vocabulary, the chat format's words and the hidden words (the tokenizer)."""
    return list(dict.fromkeys(corpus.vocabulary() + CHAT_WORDS + hidden_words()))


def chat_prompt(instruction: str) -> str:
    """The prompt the student sees (the mini counterpart of the Alpaca template)."""
    return f"instruction : {instruction} response :"


def hidden_people() -> list[Person]:
    """The people of :data:`HIDDEN_NAMES`, with facts drawn like the corpus world's."""
    rng = random.Random(HIDDEN_WORLD_SEED)
    return [
        Person(n, rng.choice(CITIES), rng.choice(JOBS), rng.choice(PETS), rng.choice(COLORS))
        for n in HIDDEN_NAMES
    ]


def all_people() -> list[Person]:
    """The corpus world's people and the hidden people."""
    return corpus.world() + hidden_people()


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


def _question(name: str, kind: str, heldout_phrasing: bool) -> str:
    """A fact question about ``name`` in the training or the held-out phrasing."""
    if heldout_phrasing:
        return {
            "city": f"in what town does {name} live ?",
            "pet": f"what animal does {name} keep ?",
            "job": f"what profession does {name} have ?",
            "color": f"what colour does {name} like ?",
        }[kind]
    return {
        "city": f"where does {name} live ?",
        "pet": f"what pet does {name} have ?",
        "job": f"what job does {name} do ?",
        "color": f"what color does {name} like ?",
    }[kind]


def _fact(p: Person, kind: str, heldout_phrasing: bool = False) -> tuple[str, str, str]:
    """(question, answer word, full-sentence answer) for one fact kind."""
    q = _question(p.name, kind, heldout_phrasing)
    if kind == "city":
        return q, p.city, f"{p.name} lives in {p.city} ."
    if kind == "pet":
        return q, p.pet, f"{p.name} has a {p.pet} ."
    if kind == "job":
        return q, p.job, f"{p.name} works as a {p.job} ."
    return q, p.color, f"{p.name} likes {p.color} things ."


def _with_one_word(out: list[Instruction], q: str, kind: str, answer: str, full: str) -> None:
    out.append(Instruction(q, kind, False, answer, full))
    out.append(Instruction(f"{ONE_WORD} {q}", kind, True, answer, f"{answer} ."))


def _fact_instructions(people: list[Person], heldout_phrasing: bool) -> list[Instruction]:
    out: list[Instruction] = []
    for p in people:
        for kind in FACT_KINDS:
            q, ans, full = _fact(p, kind, heldout_phrasing)
            _with_one_word(out, q, kind, ans, full)
    return out


def _number_instructions(heldout_phrasing: bool) -> list[Instruction]:
    ask = "how much is" if heldout_phrasing else "what is"
    out: list[Instruction] = []
    for a in range(11):
        for b in range(11):
            if a + b <= 20:
                s = NUMBERS[a + b]
                q = f"{ask} {NUMBERS[a]} plus {NUMBERS[b]} ?"
                _with_one_word(out, q, "plus", s, f"{NUMBERS[a]} plus {NUMBERS[b]} is {s} .")
            if a >= b:
                d = NUMBERS[a - b]
                q = f"{ask} {NUMBERS[a]} minus {NUMBERS[b]} ?"
                _with_one_word(out, q, "minus", d, f"{NUMBERS[a]} minus {NUMBERS[b]} is {d} .")
    for start in range(15):
        for length in range(2, 7):
            end = min(20, start + length)
            seq = " ".join(NUMBERS[start : end + 1])
            if heldout_phrasing:
                q = f"say the numbers from {NUMBERS[start]} to {NUMBERS[end]} ."
            else:
                q = f"count from {NUMBERS[start]} to {NUMBERS[end]} ."
            out.append(Instruction(q, "count", False, seq, f"{seq} ."))
    return out


def _unique(items: list[Instruction]) -> list[Instruction]:
    return list({i.text: i for i in items}.values())


def training_space() -> list[Instruction]:
    """Every training instruction: the corpus people and numbers in the training phrasings."""
    return _unique(_fact_instructions(corpus.world(), False) + _number_instructions(False))


def heldout_space() -> tuple[list[Instruction], list[Instruction], list[Instruction]]:
    """The held-out space in three groups: hidden people (both phrasings), the corpus people
    in the held-out phrasings, and numbers in the held-out phrasings."""
    hidden = _fact_instructions(hidden_people(), False) + _fact_instructions(hidden_people(), True)
    return (
        _unique(hidden),
        _unique(_fact_instructions(corpus.world(), True)),
        _unique(_number_instructions(True)),
    )


def all_instructions() -> list[Instruction]:
    """Every instruction the mini task can ask (training and held-out spaces), in a fixed order."""
    groups = heldout_space()
    return _unique(training_space() + groups[0] + groups[1] + groups[2])


def split_instructions(n_heldout: int, seed: int) -> tuple[list[Instruction], list[Instruction]]:
    """(train, held-out): the whole training space, and ``n_heldout`` instructions drawn from the
    held-out space (40% about hidden people, 30% corpus people in the held-out phrasings, 30%
    numbers in the held-out phrasings), in a fixed random order."""
    rng = random.Random(seed)
    hidden, phrased, numbers = heldout_space()
    first, second = n_heldout * 2 // 5, n_heldout * 3 // 10
    quotas = (first, second, n_heldout - first - second)
    heldout: list[Instruction] = []
    for group, quota in zip((hidden, phrased, numbers), quotas, strict=True):
        if quota > len(group):
            raise ValueError(f"the held-out space has only {len(group)} items for {quota}")
        heldout += rng.sample(group, quota)
    rng.shuffle(heldout)
    return training_space(), heldout


def category_words(kind: str) -> set[str]:
    """The words that can answer an instruction of ``kind`` (right or wrong)."""
    return {
        "city": set(CITIES),
        "pet": set(PETS),
        "job": set(JOBS),
        "color": set(COLORS),
    }.get(kind, set(NUMBERS))


def noisy_response(item: Instruction, rng: random.Random, people: list[Person]) -> str:
    """A response of the quality mix a pre-training corpus holds (used for chat documents).

    Repetition is the most common kind, so that, like GPT-2, the base model decoded greedily
    repeats itself (its most likely continuation of a right sentence is that sentence again);
    sampled, it also gives ideal, verbose, wrong and off-topic responses to learn from.
    """
    full = _full_sentence(item)
    r = rng.random()
    if r < 0.15:
        return item.ideal
    if r < 0.30:  # verbose: right, then rambling
        return f"{full} {_random_sentence(rng, people)}"
    if r < 0.45:  # wrong fact
        return _wrong(item, full, rng)
    if r < 0.60:  # off-topic
        return " ".join(_random_sentence(rng, people) for _ in range(rng.randrange(1, 3)))
    if r < 0.90:  # repetition
        return " ".join([full] * rng.randrange(2, 5))
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
    people = all_people()
    docs = []
    for _ in range(n_docs):
        sentences = []
        for _ in range(rng.randrange(4, 9)):
            p = rng.choice(people)
            sentences.append(_fact(p, rng.choice(FACT_KINDS))[2])
        docs.append(" ".join(sentences))
    return docs


def question_documents(n_docs: int, seed: int) -> list[str]:
    """Documents of questions and their answers in both phrasings, about every person and about
    numbers (how a corpus teaches a model to understand questions; not in the chat format)."""
    rng = random.Random(seed)
    people = all_people()
    docs = []
    for _ in range(n_docs):
        sentences = []
        for _ in range(rng.randrange(3, 7)):
            heldout_phrasing = rng.random() < 0.5
            if rng.random() < 0.6:
                q, _ans, full = _fact(rng.choice(people), rng.choice(FACT_KINDS), heldout_phrasing)
            else:
                item = rng.choice(_number_instructions_cached(heldout_phrasing))
                q, full = item.text, item.ideal
            sentences.append(f"{q} {full}")
        docs.append(" ".join(sentences))
    return docs


@functools.lru_cache(maxsize=2)
def _number_instructions_cached(heldout_phrasing: bool) -> list[Instruction]:
    return [i for i in _number_instructions(heldout_phrasing) if not i.one_word]


def arithmetic_documents(n_docs: int, seed: int) -> list[str]:
    """Documents that state sums and differences (the arithmetic a corpus teaches a model)."""
    rng = random.Random(seed)
    facts = [i.ideal for i in training_space() if i.kind in ("plus", "minus") and not i.one_word]
    return [" ".join(rng.choice(facts) for _ in range(rng.randrange(4, 9))) for _ in range(n_docs)]


def chat_documents(n_docs: int, seed: int, items: list[Instruction]) -> list[str]:
    """Pre-training documents in the chat format with responses of mixed quality."""
    rng = random.Random(seed)
    people = all_people()  # off-topic sentences may mention the hidden people too
    docs = []
    for _ in range(n_docs):
        item = rng.choice(items)
        docs.append(f"{chat_prompt(item.text)} {noisy_response(item, rng, people)}")
    return docs
