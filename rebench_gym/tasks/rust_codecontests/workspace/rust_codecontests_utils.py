"""Helpers for your scaffold: an LLM client, Rust code extraction, compiling and testing.

Your module may import this file (``import rust_codecontests_utils``); at scoring time an
identical, pristine copy is importable the same way. Nothing here is used to score you: the
scorer compiles and tests the returned programs itself, in another process.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

#: where the LLM proxy listens (a Unix socket); the scorer sets RB_LLM_SOCKET to its own proxy
DEFAULT_SOCKET = Path(__file__).resolve().parent / "llm.sock"
TEST_SETS = ("public_tests", "private_tests", "generated_tests")


def make_client(socket_path: str | os.PathLike[str] | None = None, **kwargs: Any) -> Any:
    """An ``openai.AsyncOpenAI`` client that talks to the task's LLM proxy over its socket.

    The proxy chooses the model (the ``model`` you pass is replaced) and counts your usage.
    """
    import openai

    path = str(socket_path or os.environ.get("RB_LLM_SOCKET") or DEFAULT_SOCKET)
    # openai's HTTP client class is an httpx(2) AsyncClient subclass; take the transport class
    # from the same module so the pair always matches.
    base = openai.DefaultAsyncHttpxClient.__mro__[1]
    httpx_module = __import__(base.__module__.split(".")[0])
    transport = httpx_module.AsyncHTTPTransport(uds=path)
    http_client = openai.DefaultAsyncHttpxClient(transport=transport)
    kwargs.setdefault("max_retries", 3)
    kwargs.setdefault("timeout", 300.0)
    return openai.AsyncOpenAI(
        base_url="http://llm-proxy/v1", api_key="via-proxy", http_client=http_client, **kwargs
    )


def load_problems(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Problems from a JSON-lines file (CodeContests fields: name, description, *_tests...)."""
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


_FENCE = re.compile(r"```(?:rust|rs)?[^\n]*\n(.*?)```", re.DOTALL)


def extract_rust_code(text: str) -> str:
    """The first fenced code block of ``text`` (preferring ```rust), else the whole text."""
    rust = re.search(r"```(?:rust|rs)\s*\n(.*?)```", text, re.DOTALL)
    if rust:
        return rust.group(1).strip() + "\n"
    any_block = _FENCE.search(text)
    return (any_block.group(1) if any_block else text).strip() + "\n"


def rustc_path() -> str:
    """The rustc to use: $RUSTC, else the one on PATH."""
    found = os.environ.get("RUSTC") or shutil.which("rustc")
    if not found:
        raise FileNotFoundError("rustc is not available in this environment")
    return found


def outputs_match(got: str, expected: str) -> bool:
    """Equal up to trailing spaces on each line and trailing blank lines (as the scorer)."""

    def norm(s: str) -> list[str]:
        lines = [line.rstrip() for line in s.replace("\r\n", "\n").split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    return norm(got) == norm(expected)


async def compile_rust(code: str, workdir: str | os.PathLike[str]) -> tuple[str | None, str]:
    """Compile ``code`` with ``rustc --edition 2018``; returns ``(binary or None, messages)``."""
    src = Path(workdir) / "main.rs"
    binary = Path(workdir) / "main"
    src.write_text(code)
    proc = await asyncio.create_subprocess_exec(
        rustc_path(), "--edition", "2018", "-o", str(binary), str(src),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return None, "compilation timed out"
    if proc.returncode != 0:
        return None, err.decode(errors="replace")
    return str(binary), ""


async def run_binary(binary: str, stdin: str, timeout: float = 2.0) -> tuple[str | None, str]:
    """Run a compiled program on ``stdin``; ``(stdout or None on failure, why it failed)``."""
    proc = await asyncio.create_subprocess_exec(
        binary, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout=timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return None, "timed out"
    if proc.returncode != 0:
        return None, f"exit code {proc.returncode}"
    return out.decode(errors="replace"), ""


async def evaluate_rust_code(
    problem: dict[str, Any], code: str, test_sets: tuple[str, ...] = TEST_SETS,
    timeout: float = 2.0,
) -> dict[str, Any]:
    """Compile ``code`` and run it on the problem's tests in ``test_sets`` that it has.

    Returns ``{"succeeded": bool, "compiled": bool, "passed": int, "total": int, "error": str}``.
    At scoring time a problem carries only its ``public_tests``.
    """
    with tempfile.TemporaryDirectory(prefix="rcc-") as tmp:
        binary, err = await compile_rust(code, tmp)
        if binary is None:
            return {"succeeded": False, "compiled": False, "passed": 0, "total": 0, "error": err}
        passed = total = 0
        error = ""
        for name in test_sets:
            tests = problem.get(name) or {}
            for inp, expected in zip(tests.get("input", []), tests.get("output", [])):
                total += 1
                out, why = await run_binary(binary, inp, timeout)
                if out is not None and outputs_match(out, expected):
                    passed += 1
                elif not error:
                    error = why or "wrong answer"
        return {
            "succeeded": passed == total, "compiled": True, "passed": passed, "total": total,
            "error": error,
        }
