"""Stand-ins for the full-scale rehearsal of RustCodecontests (``rebench rehearse``).

* CodeContests rows in the schema of ``deepmind/code_contests`` (every column, including the
  ``solutions``, ``time_limit`` struct and ``input_file``/``output_file`` the loader filters on),
  as ``valid.jsonl``/``test.jsonl`` (the JSON-lines form the full loader reads; Parquet needs
  pyarrow, which is not a dependency). The problems are the mini set's (real statements and
  tests; one reference Rust program each), plus rows with the dataset's edge cases (a file-I/O
  problem, a hard one, one without hidden tests), which the full scale keeps, as the original
  scores the whole split (an optional ``filter`` would drop them).
* A local OpenAI-API endpoint (:class:`~rebench_gym.llm.scripted_server.ScriptedOpenAIServer`
  on 127.0.0.1) playing a model whose FIRST sample is wrong (a program that compiles and prints
  a constant) on every other problem and whose other samples are correct, with two distinct
  correct variants on a few problems (so the reference scaffold also votes); every answer has a
  sentence before its fenced program. The starting scaffold (one sample, the raw answer
  returned, as the original's) therefore solves none, or at most half if it extracted the code;
  the reference (8 samples, filtered on the public tests) solves them all. The proxy, the
  sandboxed generation, rustc and the evaluator are the full scale's own.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rebench_gym.llm.scripted_server import ScriptedOpenAIServer, ScriptedReply
from rebench_gym.rehearse import StandIns
from rebench_gym.tasks.rust_codecontests.problems import PROBLEMS, build_problems
from rebench_gym.tasks.rust_codecontests.task import reference_program

#: how many problems of each split the rehearsal keeps (time: ~1 s of rustc per program)
N_VALID, N_TEST = 3, 8
WRONG = 'fn main() {\n    println!("42");\n}\n'
#: CodeContests' ``source`` value for Codeforces and ``difficulty`` for a division "A" problem
CODEFORCES, DIFFICULTY_A, DIFFICULTY_HARD = 2, 7, 3
TITLES = {p.statement.split("\n", 1)[0]: p.name for p in PROBLEMS}


def codecontests_row(record: dict[str, Any], index: int) -> dict[str, Any]:
    """A full ``deepmind/code_contests`` row (all columns) for a mini problem record."""
    tests = {k: record[k] for k in ("public_tests", "private_tests", "generated_tests")}
    return {
        "name": f"{1000 + index}_A. {record['name']}",
        "description": record["description"],
        **tests,
        "source": CODEFORCES,
        "difficulty": DIFFICULTY_A,
        # language 2 is C++ in the dataset's enum; the Rust reference stands in for a solution
        "solutions": {"language": [2], "solution": [reference_program(record["name"])]},
        "incorrect_solutions": {"language": [2], "solution": [WRONG]},
        "cf_contest_id": 1000 + index,
        "cf_index": "A",
        "cf_points": 500.0,
        "cf_rating": 800,
        "cf_tags": ["implementation"],
        "is_description_translated": False,
        "untranslated_description": "",
        "time_limit": {"seconds": 2, "nanos": 0},
        "memory_limit_bytes": 256_000_000,
        "input_file": "",
        "output_file": "",
    }


def filtered_rows(base: dict[str, Any]) -> list[dict[str, Any]]:
    """Edge cases of the dataset: file I/O, a hard problem, no hidden tests."""
    empty: dict[str, list[str]] = {"input": [], "output": []}
    return [
        {**base, "name": "9001_A. file io", "input_file": "input.txt", "output_file": "output.txt"},
        {**base, "name": "9002_E. hard", "difficulty": DIFFICULTY_HARD, "cf_rating": 2400},
        {**base, "name": "9003_A. no hidden", "private_tests": empty, "generated_tests": empty},
    ]


def write_source(root: Path) -> Path:
    """``root/codecontests/{valid,test}.jsonl`` in the dataset's schema."""
    splits = build_problems()
    source = root / "codecontests"
    source.mkdir(parents=True)
    index = 0
    for split, n in (("valid", N_VALID), ("test", N_TEST)):
        rows = []
        for record in splits[split][:n]:
            rows.append(codecontests_row(record, index))
            index += 1
        rows += filtered_rows(rows[0])
        with open(source / f"{split}.jsonl", "w") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
    return source


def problem_of(body: dict[str, Any]) -> str | None:
    """The mini problem a request's messages are about (by the statement's title line)."""
    text = "\n".join(str(m.get("content") or "") for m in body.get("messages", []))
    for line in text.splitlines():
        if line.strip() in TITLES:
            return TITLES[line.strip()]
    return None


def first_sample_wrong(name: str) -> bool:
    """Every other problem (by a stable hash of its name) gets a wrong first sample."""
    return zlib.crc32(name.encode()) % 2 == 0


def respond(body: dict[str, Any]) -> ScriptedReply:
    """The scripted model (see the module docstring)."""
    text = json.dumps(body.get("messages"))
    if "best_solution_letter" in text:
        return ScriptedReply(content='{"reasoning": "it handles the edge cases", '
                             '"best_solution_letter": "B"}')  # fmt: skip
    name = problem_of(body)
    if name is None:
        return ScriptedReply(content="I cannot tell which problem this is.")
    n = int(body.get("n") or 1)
    correct = reference_program(name)
    variants = 2 if zlib.crc32(name.encode()) % 3 == 0 else 1
    programs = [
        WRONG if i == 0 and first_sample_wrong(name) else correct + f"// variant {i % variants}\n"
        for i in range(n)
    ]
    return ScriptedReply(
        content=[
            f"The input is small, so a direct approach works.\n```rust\n{p}```\n" for p in programs
        ]
    )


def stand_ins(root: Path, progress: Callable[[str], None] | None = None) -> StandIns:
    say = progress or (lambda _m: None)
    say("rust_codecontests: CodeContests rows in the dataset's schema")
    source = write_source(root)
    server = ScriptedOpenAIServer(respond, model="gpt-3.5-turbo-0125", host="127.0.0.1").start()
    say(f"rust_codecontests: a scripted OpenAI-API model at {server.base_url}")
    return StandIns(
        source=source,
        params={
            # fewer, shorter waits; the limits themselves (2 s per test, rustc, memory) stay
            "generation_timeout_s": 240,
            "per_problem_timeout_s": 120,
            "concurrency": 4,
            "eval_workers": 2,
        },
        # gpt-3.5-turbo-0125 has a known price, so the full scale's cost budget applies as is
        task_options={"base_url": server.base_url, "model": "gpt-3.5-turbo-0125"},
        closers=[server.close],
    )
