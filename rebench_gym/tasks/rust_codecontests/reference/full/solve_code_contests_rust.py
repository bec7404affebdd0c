"""Reference scaffold: reason first, sample several programs, keep those that pass the public
tests, retry when none does, and let the model vote among the survivors.

The paper's reference (appendix B.7.5): n = 8 samples per request, Rust code taken from ```rust
fences, filtered on the public tests with the scoring code, repeated until a program passes or a
timeout, and a separate GPT-3.5 prompt choosing among several passing programs. At full scale the
scorer gives each problem 60 s (the original evaluator's per-batch limit), so this returns its
best program before that: no new round after 35 s, and whatever it has at 55 s."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from rust_codecontests_utils import evaluate_rust_code, extract_rust_code

MODEL = "gpt-3.5-turbo-0125"  # the proxy sends every call to the configured model
SAMPLES = 8  # programs per model call
ROUNDS = 3  # model calls per problem at most
TIME_LIMIT_S = 35.0  # stop starting new rounds after this long
DEADLINE_S = 55.0  # return the best program so far by then (the scorer stops a problem at 60 s)
CHECKS = asyncio.Semaphore(4)  # programs compiled and tested at once

INSTRUCTIONS = (
    "Solve the competitive programming problem below in Rust (edition 2018, standard library "
    "only). Read the input from standard input and print the answer to standard output.\n"
    "First explain what the problem asks and which techniques it needs, then write pseudocode, "
    "then write the complete program in one ```rust code block, with no placeholders."
)


def _prompt(problem: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are an expert competitive programmer."},
        {"role": "user", "content": f"{INSTRUCTIONS}\n\n{problem['description']}"},
    ]


async def _check(problem: dict[str, Any], code: str) -> bool:
    async with CHECKS:
        result = await evaluate_rust_code(problem, code, test_sets=("public_tests",))
    return bool(result["succeeded"]) and result["total"] > 0


async def _vote(client: Any, semaphore: asyncio.Semaphore, problem: dict, codes: list[str]) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    listing = "\n\n".join(f"Solution {letters[i]}:\n```rust\n{c}```" for i, c in enumerate(codes))
    question = (
        f"{problem['description']}\n\nThese programs all pass the examples:\n\n{listing}\n\n"
        "Which one is most likely correct on all tests (edge cases, overflow, speed)? Answer in "
        'JSON: {"reasoning": "...", "best_solution_letter": "A"}'
    )
    try:
        async with semaphore:
            reply = await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": question}],
                temperature=0,
                max_tokens=800,
                response_format={"type": "json_object"},
            )
        letter = json.loads(reply.choices[0].message.content or "{}").get("best_solution_letter")
        index = letters.index(str(letter).strip().upper()[:1])
        if 0 <= index < len(codes):
            return codes[index]
    except Exception:
        pass
    return codes[0]


async def generate_solution(client: Any, semaphore: asyncio.Semaphore, problem: dict) -> str:
    """Return the best program found for ``problem`` (see the module docstring)."""
    found = {"fallback": ""}
    try:
        return await asyncio.wait_for(_search(client, semaphore, problem, found), DEADLINE_S)
    except asyncio.TimeoutError:
        return found["fallback"]


async def _search(client: Any, semaphore: asyncio.Semaphore, problem: dict, found: dict) -> str:
    started = time.monotonic()
    fallback = ""
    for _ in range(ROUNDS):
        if time.monotonic() - started > TIME_LIMIT_S:
            break
        try:
            async with semaphore:
                reply = await client.chat.completions.create(
                    model=MODEL,
                    messages=_prompt(problem),
                    n=SAMPLES,
                    temperature=1.0,
                    max_tokens=1600,
                )
        except Exception:
            continue
        texts = (extract_rust_code(c.message.content or "") for c in reply.choices)
        codes = list(dict.fromkeys(texts))
        fallback = fallback or (codes[0] if codes else "")
        found["fallback"] = fallback
        checks = await asyncio.gather(*(_check(problem, c) for c in codes))
        passed = [c for c, ok in zip(codes, checks, strict=True) if ok]
        if len(passed) == 1:
            return passed[0]
        if passed:
            return await _vote(client, semaphore, problem, passed)
    return fallback
