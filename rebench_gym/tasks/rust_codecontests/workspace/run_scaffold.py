"""Run your scaffold over a problem file, as the scorer does, and optionally test the programs.

    python run_scaffold.py --problems data/valid.jsonl --evaluate

calls ``generate_solution(client, semaphore, problem)`` of ``solution/solve_code_contests_rust.py``
once per problem (concurrently; the semaphore bounds concurrent model calls; with
``--batch-size N`` the problems go in batches of N, each batch started when the previous one is
done, as the original task's evaluator runs them), writes one JSON line per problem to ``--out``
as soon as it is done, and with ``--evaluate`` compiles and tests
each program on all the tests the problem file has, printing the fraction solved. The scorer
runs this same file on the held-out problems (which carry only their public tests), then
compiles and tests the programs itself in a separate process. There, what your module prints
and the text of its exceptions are never shown to you (they could hold the held-out problems):
the score message gives only counts and exception type names. Run this file on the visible
problems to see tracebacks and output.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import rust_codecontests_utils as utils  # noqa: E402


def load_module(path: Path):  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("solve_code_contests_rust", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["solve_code_contests_rust"] = module
    spec.loader.exec_module(module)
    return module


async def run(args: argparse.Namespace) -> int:
    problems = utils.load_problems(args.problems)
    try:
        module = load_module(Path(args.solution))
        generate = module.generate_solution
    except Exception as e:
        print("IMPORT-ERROR\n" + traceback.format_exc(), file=sys.stderr, flush=True)
        if args.status:  # the exception's type name only: the scorer shows nothing else
            Path(args.status).write_text(json.dumps({"import_error": type(e).__name__}))
        return 3
    client = utils.make_client()
    semaphore = asyncio.Semaphore(args.concurrency)
    out = open(args.out, "a", buffering=1)  # noqa: SIM115 - one line per finished problem
    solved = 0

    async def one(problem: dict) -> None:
        nonlocal solved
        started = time.monotonic()
        code, error, kind = "", "", ""
        try:
            code = await asyncio.wait_for(
                generate(client, semaphore, problem), timeout=args.per_problem_timeout
            )
            if not isinstance(code, str):
                kind = "not_str"
                code, error = "", f"generate_solution returned {type(code).__name__}, not str"
        except asyncio.TimeoutError:
            kind = "timeout"
            error = f"generate_solution took more than {args.per_problem_timeout:g} s"
        except Exception as e:
            kind = type(e).__name__
            error = f"{kind}: {e}"
        record = {
            "name": problem["name"],
            "code": code,
            "error": error,
            "error_type": kind,
            "seconds": round(time.monotonic() - started, 3),
        }
        if args.evaluate and code:
            result = await utils.evaluate_rust_code(problem, code)
            record["evaluation"] = result
            solved += bool(result["succeeded"])
        out.write(json.dumps(record) + "\n")

    size = args.batch_size if args.batch_size > 0 else max(1, len(problems))
    for start in range(0, len(problems), size):
        await asyncio.gather(*(one(p) for p in problems[start : start + size]))
    out.close()
    if args.evaluate:
        print(f"solved {solved}/{len(problems)} = {solved / max(1, len(problems)):.3f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", default=str(HERE / "data" / "valid.jsonl"))
    parser.add_argument(
        "--solution", default=str(HERE / "solution" / "solve_code_contests_rust.py")
    )
    parser.add_argument("--out", default="/dev/stdout")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--per-problem-timeout", type=float, default=300.0)
    parser.add_argument("--batch-size", type=int, default=0, help="0: all problems at once")
    parser.add_argument("--evaluate", action="store_true")
    parser.add_argument("--status", default="", help="where to note an import error's type")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
