"""The starting scaffold: one plain prompt, one sample, no checking."""

from __future__ import annotations

import asyncio
from typing import Any

from rust_codecontests_utils import extract_rust_code

MODEL = "gpt-3.5-turbo-0125"  # the proxy sends every call to the configured model


async def generate_solution(client: Any, semaphore: asyncio.Semaphore, problem: dict) -> str:
    """Ask the model once for a Rust program solving ``problem`` and return its code."""
    prompt = (
        "Write a Rust program that solves the following competitive programming problem. "
        "Read from standard input and write to standard output.\n\n" + problem["description"]
    )
    async with semaphore:
        reply = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=1500
        )
    return extract_rust_code(reply.choices[0].message.content or "")
