"""A deterministic synthetic corpus with real structure for small language models to learn.

The corpus describes a small fixed world: people with a home city, a job, a pet and a favourite
colour (facts a model must memorise, so the token embeddings matter), questions about those
facts with their answers, small-number arithmetic, counting runs, and sentences with
subject-verb agreement. Everything is drawn from :class:`random.Random` with a fixed seed, so
the same seed gives the same corpus on every machine and Python version.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "kevin",
    "laura",
    "mallory",
    "nina",
    "oscar",
    "peggy",
    "quentin",
    "rita",
    "sybil",
    "trent",
    "ursula",
    "victor",
    "wendy",
    "xavier",
    "yvonne",
    "zack",
    "amara",
    "boris",
    "celia",
    "dmitri",
    "elena",
    "felix",
    "gloria",
    "hugo",
    "iris",
    "jonas",
    "kira",
    "leon",
    "mira",
    "nadia",
]
CITIES = [
    "paris",
    "lima",
    "oslo",
    "cairo",
    "tokyo",
    "quito",
    "dakar",
    "hanoi",
    "perth",
    "riga",
    "sofia",
    "tunis",
    "vienna",
    "warsaw",
    "zagreb",
]
JOBS = [
    "baker",
    "pilot",
    "doctor",
    "farmer",
    "teacher",
    "painter",
    "sailor",
    "lawyer",
    "chemist",
    "tailor",
    "miner",
    "poet",
]
PETS = ["cat", "dog", "parrot", "rabbit", "turtle", "horse", "goat", "hamster"]
COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]
NUMBERS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
]
ADJECTIVES = ["big", "small", "old", "young", "quick", "slow", "happy", "sad", "tall", "short"]
NOUNS = [
    ("dog", "dogs"),
    ("bird", "birds"),
    ("child", "children"),
    ("robot", "robots"),
    ("farmer", "farmers"),
    ("fox", "foxes"),
]
VERBS = [
    ("runs", "run"),
    ("sleeps", "sleep"),
    ("sings", "sing"),
    ("jumps", "jump"),
    ("waits", "wait"),
    ("eats", "eat"),
]
ADVERBS = ["quickly", "slowly", "loudly", "quietly", "today", "again"]
FUNCTION_WORDS = [
    "the",
    "a",
    "lives",
    "in",
    "works",
    "as",
    "has",
    "have",
    "likes",
    "things",
    "where",
    "does",
    "live",
    "what",
    "do",
    "is",
    "plus",
    "minus",
    "count",
    "from",
    "to",
    "and",
    "who",
    "named",
    "pet",
    "color",
    "job",
]
PUNCTUATION = [".", "?", ","]
EOT = "<eot>"


@dataclass(frozen=True)
class Person:
    name: str
    city: str
    job: str
    pet: str
    color: str


def world(seed: int = 0) -> list[Person]:
    """The fixed facts of the corpus (the same for every document)."""
    rng = random.Random(seed)
    return [
        Person(n, rng.choice(CITIES), rng.choice(JOBS), rng.choice(PETS), rng.choice(COLORS))
        for n in NAMES
    ]


def vocabulary() -> list[str]:
    """Every word the corpus can contain, in a fixed order (the tokenizer's vocabulary)."""
    words = [EOT]
    for group in (
        NAMES,
        CITIES,
        JOBS,
        PETS,
        COLORS,
        NUMBERS,
        ADJECTIVES,
        ADVERBS,
        FUNCTION_WORDS,
        PUNCTUATION,
    ):
        words += group
    for pair in NOUNS + VERBS:
        words += list(pair)
    return list(dict.fromkeys(words))


def _sentence(rng: random.Random, people: list[Person]) -> str:
    kind = rng.random()
    p = rng.choice(people)
    if kind < 0.35:
        return rng.choice(
            [
                f"{p.name} lives in {p.city} .",
                f"{p.name} works as a {p.job} .",
                f"{p.name} has a {p.pet} .",
                f"{p.name} likes {p.color} things .",
                f"the {p.job} named {p.name} lives in {p.city} .",
            ]
        )
    if kind < 0.55:
        return rng.choice(
            [
                f"where does {p.name} live ? {p.name} lives in {p.city} .",
                f"what pet does {p.name} have ? a {p.pet} .",
                f"what job does {p.name} do ? {p.name} works as a {p.job} .",
                f"who lives in {p.city} ? {p.name} does .",
            ]
        )
    if kind < 0.72:
        a, b = rng.randrange(11), rng.randrange(11)
        if rng.random() < 0.5 and a + b <= 20:
            return f"{NUMBERS[a]} plus {NUMBERS[b]} is {NUMBERS[a + b]} ."
        hi, lo = max(a, b), min(a, b)
        return f"{NUMBERS[hi]} minus {NUMBERS[lo]} is {NUMBERS[hi - lo]} ."
    if kind < 0.82:
        start = rng.randrange(15)
        end = min(20, start + rng.randrange(2, 7))
        return (
            f"count from {NUMBERS[start]} to {NUMBERS[end]} : ".replace(" :", "")
            + " ".join(NUMBERS[start : end + 1])
            + " ."
        )
    plural = rng.random() < 0.5
    noun = rng.choice(NOUNS)[int(plural)]
    verb = rng.choice(VERBS)[int(plural)]
    article = "the" if plural or rng.random() < 0.5 else "a"
    return f"{article} {rng.choice(ADJECTIVES)} {noun} {verb} {rng.choice(ADVERBS)} ."


def documents(n_docs: int, seed: int, *, world_seed: int = 0) -> list[str]:
    """``n_docs`` documents of 3-12 sentences each; ``seed`` picks the sentences."""
    rng = random.Random(seed)
    people = world(world_seed)
    return [
        " ".join(_sentence(rng, people) for _ in range(rng.randrange(3, 13))) for _ in range(n_docs)
    ]
