"""The starting scaffold, as in the original task: one plain prompt, one sample, and the model's
raw answer returned as the program (no code extraction, no checking). It solves almost nothing:
the answer usually wraps the code in prose and a Markdown fence, which does not compile."""

from __future__ import annotations

import asyncio
from typing import Any

MODEL = "gpt-3.5-turbo-0125"  # the proxy sends every call to the configured model


def get_prompt(problem: dict[str, Any]) -> str:
    return f"Please solve this coding contest problem in Rust:\n{problem['description']}"


async def generate_solution(client: Any, semaphore: asyncio.Semaphore, problem: dict) -> str:
    """Ask the model once for a Rust solution of ``problem`` and return its answer as is."""
    prompt = get_prompt(problem)
    async with semaphore:
        completion = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}]
        )
    return completion.choices[0].message.content or ""
