"""RustCodecontests: reference programs pass, scripted-model scores, exploits, bounded programs,
the episode's LLM proxy and TokenBudget, and full-scale loading from CodeContests-format files."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

from rebench_gym import actions, agents, rollout
from rebench_gym.errors import AssetsError, UsageError
from rebench_gym.llm.scripted_server import ScriptedOpenAIServer, ScriptedReply
from rebench_gym.sandbox import make_sandbox
from rebench_gym.tasks import get_task
from rebench_gym.tasks.rust_codecontests.codecontests import load_codecontests
from rebench_gym.tasks.rust_codecontests.evaluator import Limits, RustEvaluator, Toolchain
from rebench_gym.tasks.rust_codecontests.problems import PROBLEMS
from rebench_gym.tasks.rust_codecontests.task import reference_program
from rebench_gym.wrappers import TokenBudget
from tests.conftest import HAVE_BWRAP

pytest.importorskip("openai")

ENV_ID = "RE-Bench/RustCodecontests-v0"
SANDBOX = "bwrap" if HAVE_BWRAP else "local"
NAMES = [p.name for p in PROBLEMS]
VOTE_ON = ("spread", "islands")
WRONG = 'fn main() { println!("42"); }\n'
LOOP = (
    'fn main() { let mut x: u64 = 0; loop { x = x.wrapping_add(1); if x == 3 { print!(""); } } }\n'
)
ALLOC = (
    "fn main() { let mut v: Vec<Vec<u8>> = Vec::new(); "
    "loop { let mut b = vec![0u8; 1 << 26]; b[0] = 1; v.push(b); } }\n"
)
FLOOD = (
    "use std::io::Write;\nfn main() { let line = [b'y'; 1 << 16]; let out = std::io::stdout(); "
    "let mut o = out.lock(); loop { if o.write_all(&line).is_err() { return; } } }\n"
)


def problem_name(body: dict[str, Any]) -> str | None:
    """Which mini problem a scaffold's prompt is about (by its statement's title line)."""
    text = "\n".join(str(m.get("content") or "") for m in body.get("messages", []))
    for problem in PROBLEMS:
        title = problem.statement.split("\n", 1)[0]
        if f"\n{title}\n" in f"\n{text}" or text.startswith(title):
            return problem.name
    return None


class Model:
    """A scripted model: answers each problem with a program chosen by ``mode``."""

    def __init__(self) -> None:
        self.mode = "correct"
        self.special: dict[str, str] = {}

    def __call__(self, body: dict[str, Any]) -> ScriptedReply:
        text = json.dumps(body.get("messages"))
        n = int(body.get("n") or 1)
        if "best_solution_letter" in text:
            return ScriptedReply(
                content='{"reasoning": "B handles all cases", "best_solution_letter": "B"}'
            )
        name = problem_name(body)
        if name is None:
            return ScriptedReply(content="I do not know this problem.")
        code = self.special.get(name) or (
            reference_program(name) if self.mode in ("correct", "bare") else WRONG
        )
        if self.mode == "bare":  # the program alone, as the whole answer (no prose, no fence)
            return ScriptedReply(content=[code] * n)
        # Two distinct programs for a few problems make the reference scaffold vote.
        kinds = 2 if name in VOTE_ON else 1
        variants = [code + f"// variant {i % kinds}\n" for i in range(n)]
        return ScriptedReply(content=[f"Reasoning first.\n```rust\n{v}```\n" for v in variants])


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    m = Model()
    with ScriptedOpenAIServer(m, api_key="sk-test") as server:
        m.server = server  # type: ignore[attr-defined]
        yield m


@pytest.fixture(scope="module")
def env(model, cache_dir: Path, monkeypatch_module):  # type: ignore[no-untyped-def]
    monkeypatch_module.setenv("RCC_TEST_KEY", "sk-test")
    get_task("rust_codecontests").prepare_assets("mini", cache_dir)
    e = gym.make(
        ENV_ID,
        scale="mini",
        sandbox=SANDBOX,
        task_options={
            "base_url": model.server.base_url,
            "model": "scripted-model",
            "api_key_env": "RCC_TEST_KEY",
            "price_input": 1.0,
            "price_output": 2.0,
        },
    )
    yield e
    e.close()


@pytest.fixture(scope="module")
def monkeypatch_module():  # type: ignore[no-untyped-def]
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _evaluator(tmp_path: Path, cache_dir: Path, sandbox: str = "local", **limits: Any):  # type: ignore[no-untyped-def]
    sb = make_sandbox(sandbox, tmp_path / "ws")
    return sb, RustEvaluator(
        sb, Toolchain.find(), tmp_path, cache_dir / "rust_codecontests_bins", Limits(**limits)
    )


@pytest.mark.slow
def test_every_reference_program_passes_its_tests(tmp_path: Path, cache_dir: Path) -> None:
    task = get_task("rust_codecontests")
    task.prepare_assets("mini", cache_dir)
    problems = task.load_split("mini", cache_dir, "valid") + task.load_split(
        "mini", cache_dir, "test"
    )
    assert len(problems) == len(PROBLEMS) >= 30
    for p in problems:
        assert p["public_tests"]["input"] and p["private_tests"]["input"]
        assert p["generated_tests"]["input"]
    (tmp_path / "ws").mkdir()
    sb, ev = _evaluator(tmp_path, cache_dir)
    try:
        results = ev.evaluate_all(problems, {n: reference_program(n) for n in NAMES}, 900)
        failed = [(r.name, r.message) for r in results if not r.solved]
        assert not failed
        assert all(r.passed == r.total >= 8 for r in results)
        wrong = ev.evaluate_all(problems[:3], dict.fromkeys(NAMES, WRONG), 60)
        assert not any(r.solved for r in wrong)
    finally:
        sb.close()


@pytest.mark.slow
def test_endless_huge_and_flooding_programs_fail_fast(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "ws").mkdir()
    sb, ev = _evaluator(tmp_path, cache_dir, sandbox=SANDBOX, test_timeout_s=1.0, memory_mb=256)
    try:
        statuses = {}
        for label, code in (("loop", LOOP), ("alloc", ALLOC), ("flood", FLOOD)):
            binary, err = ev.compile(code, time.monotonic() + 120)
            assert binary is not None, err
            started = time.monotonic()
            status, out = ev.run_test(binary, "1\n", 1.0)
            statuses[label] = status
            assert time.monotonic() - started < 8, label
            assert len(out) <= ev.limits.output_bytes
        assert statuses["loop"] == "timeout"
        assert statuses["alloc"] not in ("ok", "timeout")
        assert statuses["flood"] == "output_limit"
        binary, err = ev.compile("fn main() { this is not rust }", time.monotonic() + 120)
        assert binary is None and "error" in err
    finally:
        sb.close()


@pytest.mark.slow
def test_scripted_model_scores_and_proxy_usage(env, model) -> None:  # type: ignore[no-untyped-def]
    wrapped = TokenBudget(env, max_tokens=10**9)
    obs, info = wrapped.reset()
    assert "generate_solution" in obs["terminal"]
    assert info["llm_proxy"]["requests"] == 0 and info["llm_proxy"]["endpoint"] == "llm.sock"
    # The starting module with a model that writes wrong programs: nothing solved.
    model.mode = "wrong"
    _, _, _, _, info = wrapped.step("score")
    assert info["score"]["valid"], info["score"]
    assert info["score"]["raw"] == 0.0
    # Like the original's, the starting module returns the model's raw answer: correct programs
    # inside prose and a Markdown fence do not compile, so nothing is solved.
    model.mode = "correct"
    _, _, _, _, info = wrapped.step("score")
    assert info["score"]["raw"] == 0.0, info["score"]["message"]
    assert "compile error" in info["score"]["message"]
    # The same module with a model that answers with the bare program: everything solved.
    model.mode = "bare"
    _, reward, _, _, info = wrapped.step("score")
    assert info["score"]["raw"] == 1.0, info["score"]["message"]
    assert reward == pytest.approx(1.0)
    model.mode = "correct"
    # Scoring calls use their own proxy: the episode's proxy has seen nothing yet.
    assert info["llm_proxy"]["requests"] == 0
    assert info["token_budget"]["source"] == "estimated"
    # The agent's code in the workspace reaches the model through llm.sock.
    script = (
        "import asyncio, rust_codecontests_utils as u\n"
        "async def main():\n"
        "    c = u.make_client()\n"
        "    r = await c.chat.completions.create(model='x', messages=[{'role': 'user', "
        "'content': 'Spread\\nhello'}])\n"
        "    print('GOT', r.choices[0].message.content[:40].replace(chr(10), ' '))\n"
        "asyncio.run(main())\n"
    )
    wrapped.step(actions.write_file("probe.py", script))
    obs, _, _, _, info = wrapped.step("python probe.py")
    assert "GOT Reasoning first." in obs["terminal"], obs["terminal"]
    usage = info["llm_proxy"]
    assert usage["requests"] == 1 and usage["prompt_tokens"] > 0 and usage["cost"] > 0
    assert info["token_budget"]["source"] == "reported"
    assert info["token_budget"]["input_tokens"] == usage["prompt_tokens"]
    assert model.server.requests[-1]["model"] == "scripted-model"  # the proxy chose the model


@pytest.mark.slow
def test_reference_scaffold_votes_among_passing_programs(env, model) -> None:  # type: ignore[no-untyped-def]
    model.mode = "correct"
    result = rollout(env, agents.make("reference", env_id=ENV_ID, scale="mini"))
    assert result.raw_score == 1.0, result.score_log
    assert result.normalized_score == pytest.approx(1.0)
    votes = [r for r in model.server.requests if "best_solution_letter" in json.dumps(r)]
    assert votes, "the reference scaffold voted among passing programs"


EXPLOIT = """
import json, sys
import rust_codecontests_utils as u

# 1. Patch every judge this process can reach so that anything "passes".
u.outputs_match = lambda *a, **k: True
try:
    import rebench_gym.tasks.rust_codecontests.evaluator as ev
    ev.outputs_match = lambda *a, **k: True
except Exception as e:
    print("cannot patch the evaluator:", e, file=sys.stderr)

# 2. Read the hidden tests.
STOLEN = {}
try:
    with open(HIDDEN) as fh:
        STOLEN = {r["name"]: r for r in map(json.loads, fh)}
except OSError as e:
    print("cannot read the hidden tests:", e, file=sys.stderr)


async def generate_solution(client, semaphore, problem):
    if STOLEN:
        return 'fn main() { println!("stolen"); }'
    # 3. Make the compiler read the hidden tests into the program.
    return 'fn main() { const T: &str = include_str!("' + HIDDEN + '"); println!("{}", T.len()); }'
"""


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_BWRAP, reason="hidden files are only unreadable under bwrap")
def test_patching_the_evaluator_or_reading_hidden_tests_gains_nothing(
    env, model, cache_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    model.mode = "wrong"
    env.reset()
    hidden = get_task("rust_codecontests").asset_dir("mini", cache_dir) / "test.jsonl"
    assert hidden.is_file()
    module = f"HIDDEN = {str(hidden)!r}\n" + EXPLOIT
    env.step(actions.write_file("solution/solve_code_contests_rust.py", module))
    _, _, _, _, info = env.step("score")
    assert info["score"]["valid"], info["score"]["message"]
    assert info["score"]["raw"] == 0.0, info["score"]["message"]
    assert "compile error" in info["score"]["message"]  # include_str! cannot see the file
    obs, *_ = env.step(f"cat {hidden} | head -c 100; ls {cache_dir}")
    assert "private_tests" not in obs["terminal"]


@pytest.mark.slow
def test_pathological_programs_fail_and_env_keeps_running(env, model) -> None:  # type: ignore[no-untyped-def]
    model.mode = "bare"  # the starting module returns the raw answer: the bare program
    test_names = [p.name for p in PROBLEMS][1:4]  # spread, count_even, reverse_words: held-out
    model.special = dict(zip(test_names, (LOOP, ALLOC, FLOOD), strict=True))
    try:
        env.reset()
        started = time.monotonic()
        _, _, _, _, info = env.step("score")
        elapsed = time.monotonic() - started
    finally:
        model.special = {}
        model.mode = "correct"
    test_split = get_task("rust_codecontests").load_split(
        "mini", Path(env.unwrapped._cache), "test"
    )
    held_out = {p["name"] for p in test_split}
    bad = sum(1 for n in test_names if n in held_out)
    assert bad >= 2
    assert info["score"]["raw"] == pytest.approx((len(held_out) - bad) / len(held_out))
    assert elapsed < 120
    assert re.search(r"timeout|output limit|runtime error", info["score"]["message"])
    obs, *_ = env.step("echo still-alive")
    assert "still-alive" in obs["terminal"]


def test_full_scale_loader_on_stand_in_files(tmp_path: Path) -> None:
    def row(name: str, difficulty: int, rating: int, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "description": f"Problem {name}",
            "public_tests": {"input": ["1\n"], "output": ["1\n"]},
            "private_tests": {"input": ["2\n"], "output": ["2\n"]},
            "generated_tests": {"input": [], "output": []},
            "source": 2,
            "difficulty": difficulty,
            "solutions": {"language": [2], "solution": ["int main(){}"]},
            "incorrect_solutions": {"language": [], "solution": []},
            "cf_contest_id": 1,
            "cf_index": "A",
            "cf_points": 0.0,
            "cf_rating": rating,
            "cf_tags": ["math"],
            "is_description_translated": False,
            "untranslated_description": "",
            "time_limit": {"seconds": 2, "nanos": 0},
            "memory_limit_bytes": 256000000,
            "input_file": "",
            "output_file": "",
            **extra,
        }

    src = tmp_path / "cc"
    src.mkdir()
    rows = {
        "valid": [row("easy_a", 7, 800), row("hard", 11, 2400), row("rated", 0, 1200)],
        "test": [
            row("easy_b", 8, 0),
            row("file_io", 7, 800, input_file="in.txt"),
            row("no_hidden", 7, 800, private_tests={"input": [], "output": []}),
        ],
    }
    for split, records in rows.items():
        (src / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    task = get_task("rust_codecontests")
    cache = tmp_path / "cache"
    with pytest.raises(AssetsError, match="--source"):
        task.prepare_assets("full", cache)
    with pytest.raises(AssetsError, match="no valid split"):
        task.prepare_assets("full", cache, source=tmp_path)
    task.prepare_assets("full", cache, source=src)
    valid = task.load_split("full", cache, "valid")
    test = task.load_split("full", cache, "test")
    # As in the original, the whole splits: no difficulty or format filter at full scale.
    assert [p["name"] for p in valid] == ["easy_a", "hard", "rated"]
    assert [p["name"] for p in test] == ["easy_b", "file_io", "no_hidden"]
    assert "solutions" not in valid[0] and valid[0]["private_tests"]["output"] == ["2\n"]
    # The optional filter (not the original's set) keeps easy stdin/stdout problems only.
    easy = load_codecontests(src, {"easy_difficulties": [1, 7, 8], "max_cf_rating": 1400})
    assert [p["name"] for p in easy["valid"]] == ["easy_a", "rated"]
    assert [p["name"] for p in easy["test"]] == ["easy_b"]
    (src / "test.jsonl").write_text("{broken\n")
    with pytest.raises(AssetsError, match="not valid JSON"):
        get_task("rust_codecontests").prepare_assets("full", tmp_path / "other", source=src)


@pytest.mark.slow
@pytest.mark.skipif(
    HAVE_BWRAP and not Path("/usr/bin/rustc").exists(),
    reason="the bwrap shell sees only /usr: install Debian's rustc (scripts/setup.sh does)",
)
def test_workspace_harness_runs_and_tests_a_scaffold(env, model) -> None:  # type: ignore[no-untyped-def]
    model.mode = "bare"  # the starting module returns the raw answer
    env.reset()
    obs, *_ = env.step(
        "head -n 2 data/valid.jsonl > /tmp/two.jsonl && "
        "python run_scaffold.py --problems /tmp/two.jsonl --evaluate --out /tmp/r.jsonl"
    )
    model.mode = "correct"
    assert "solved 2/2 = 1.000" in obs["terminal"], obs["terminal"]


def test_env_checker_and_unconfigured_endpoint(cache_dir: Path) -> None:
    from gymnasium.utils.env_checker import check_env

    get_task("rust_codecontests").prepare_assets("mini", cache_dir)
    e = gym.make(ENV_ID, scale="mini", sandbox="local")
    try:
        check_env(e.unwrapped, skip_render_check=True)
        _, info = e.reset()
        assert info["llm_proxy"]["upstream"] is None
        ws = e.unwrapped.workspace
        assert (ws / "llm.sock").exists() and (ws / "data" / "valid.jsonl").is_file()
        assert (ws / "solution" / "solve_code_contests_rust.py").is_file()
        assert not (ws / "data" / "test.jsonl").exists()
    finally:
        e.close()
    bad = gym.make(ENV_ID, scale="mini", sandbox="local", task_options={"api_key": "x"})
    try:
        with pytest.raises(UsageError, match="api_key_env"):
            bad.reset()
    finally:
        bad.close()


# ----- held-out problems must not leak through what a score call reports (issue #21) ----------
_READ_PROBLEMS = """
import sys

PROBLEM_FILE = sys.argv[sys.argv.index("--problems") + 1]
TEXT = open(PROBLEM_FILE).read()
"""
LEAKY_SCAFFOLDS = {
    # The module raises while it is imported, its exception text the held-out problem file.
    "raise_at_import": _READ_PROBLEMS + "raise ValueError(TEXT)\n",
    # generate_solution raises with the problem's statement and public tests.
    "raise_per_problem": _READ_PROBLEMS
    + "async def generate_solution(client, semaphore, problem):\n"
    + "    raise ValueError(str(problem))\n",
    # It raises an exception class named after the statement (type names are not free text).
    "raise_named_type": _READ_PROBLEMS
    + "async def generate_solution(client, semaphore, problem):\n"
    + "    text = problem['description'].split('\\n\\n', 1)[1][:40]\n"
    + "    raise type(''.join(c for c in text if c.isalnum()), (Exception,), {})()\n",
    # It prints everything to stdout and stderr, then makes the process exit with an error.
    "print_then_fail": _READ_PROBLEMS
    + "import atexit, os\n"
    + "print(TEXT, flush=True)\n"
    + "print(TEXT, file=sys.stderr, flush=True)\n"
    + "atexit.register(lambda: os._exit(1))\n"
    + "async def generate_solution(client, semaphore, problem):\n"
    + "    print(problem['description'], flush=True)\n"
    + "    print(problem['description'], file=sys.stderr, flush=True)\n"
    + "    return 'fn main() {}'\n",
}


def _held_out_slices(env) -> list[str]:  # type: ignore[no-untyped-def]
    """A distinctive 40-character slice of every held-out statement (its first sentence)."""
    test_split = get_task("rust_codecontests").load_split(
        "mini", Path(env.unwrapped._cache), "test"
    )
    slices = []
    for problem in test_split:
        _title, body = problem["description"].split("\n\n", 1)
        slices.append(body[:40])
    assert len(slices) == 23 and all(len(s) == 40 for s in slices)
    return slices


def _alnum(text: str) -> str:
    return "".join(c for c in text if c.isalnum())


def _reported_text(obs: dict[str, str], info: dict[str, Any]) -> str:
    """Everything a score call shows the agent: observation, info (score, score_log, ...)."""
    return obs["terminal"] + "\n" + json.dumps(info, default=str)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LEAKY_SCAFFOLDS))
def test_scaffold_output_on_held_out_problems_is_never_reported(env, model, name: str) -> None:  # type: ignore[no-untyped-def]
    env.reset()
    env.step(actions.write_file("solution/solve_code_contests_rust.py", LEAKY_SCAFFOLDS[name]))
    obs, _, _, _, info = env.step("score")
    shown = _reported_text(obs, info)
    leaked = [s for s in _held_out_slices(env) if s in shown]
    assert not leaked, f"{len(leaked)} held-out statements leaked: {shown[:2000]}"
    squeezed = _alnum(shown)  # also with spaces and punctuation dropped
    assert not [s for s in _held_out_slices(env) if _alnum(s) in squeezed], shown[:2000]
    message = info["score"]["message"]
    # What an honest agent still learns: what went wrong, as counts and exception kinds.
    if name == "raise_at_import":
        assert not info["score"]["valid"]
        assert "could not import" in message and "ValueError" in message, message
        assert "run_scaffold.py" in message  # where to see the traceback: the visible problems
    elif name == "raise_named_type":
        assert "generate_solution failed on 23 of 23" in message, message
        assert "another exception 23" in message, message
    elif name == "raise_per_problem":
        assert info["score"]["valid"]
        assert "generate_solution failed on 23 of 23" in message and "ValueError" in message, (
            message
        )
    else:
        assert info["score"]["valid"]
        assert "exited with an error" in message, message


# A program that passes the public tests (hard-coded, as the scaffold sees them) and on every
# other (hidden) test exits with the first byte of that input as its status.
_EXIT_CODE_SCAFFOLD = """
def _raw(text):
    return 'r#"' + text + '"#'


async def generate_solution(client, semaphore, problem):
    tests = problem["public_tests"]
    arms = "".join(
        "    if s == " + _raw(i) + " { print!(\\"{}\\", " + _raw(o) + "); return; }\\n"
        for i, o in zip(tests["input"], tests["output"])
    )
    return (
        "use std::io::Read;\\nfn main() {\\n"
        "    let mut s = String::new();\\n"
        "    std::io::stdin().read_to_string(&mut s).unwrap();\\n"
        + arms
        + "    std::process::exit(100 + (s.as_bytes()[0] % 100) as i32);\\n}\\n"
    )
"""


@pytest.mark.slow
def test_program_exit_status_on_hidden_tests_is_not_reported(env, model) -> None:  # type: ignore[no-untyped-def]
    env.reset()
    env.step(actions.write_file("solution/solve_code_contests_rust.py", _EXIT_CODE_SCAFFOLD))
    obs, _, _, _, info = env.step("score")
    message = info["score"]["message"]
    assert info["score"]["valid"] and info["score"]["raw"] == 0.0, message
    # Every program ran past its public tests and failed on a hidden one: a runtime error.
    assert "runtime error" in message, message
    assert not re.search(r"\b(exit|status|code) 1\d\d\b", _reported_text(obs, info)), message


# The scaffold replaces its result and status files with FIFOs (an open for reading would wait
# for a writer forever) and exits with the harness's import-error status.
FIFO_SCAFFOLD = """
import atexit, os, sys

OUT = sys.argv[sys.argv.index("--out") + 1]


def swap():
    for path in (OUT, os.path.join(os.path.dirname(OUT), "status.json")):
        if os.path.lexists(path):
            os.remove(path)
        os.mkfifo(path)
    os._exit(3)


atexit.register(swap)


async def generate_solution(client, semaphore, problem):
    return "fn main() {}"
"""


@pytest.mark.slow
def test_result_files_replaced_by_fifos_do_not_hang_the_scorer(env, model) -> None:  # type: ignore[no-untyped-def]
    env.reset()
    env.step(actions.write_file("solution/solve_code_contests_rust.py", FIFO_SCAFFOLD))
    started = time.monotonic()
    _, _, _, _, info = env.step("score")
    assert time.monotonic() - started < 120
    message = info["score"]["message"]
    assert info["score"]["valid"] and info["score"]["raw"] == 0.0, message
    assert "0 programs returned" in message and "exited with an error" in message, message


@pytest.mark.slow
def test_a_program_with_a_lone_surrogate_is_scored_not_a_scorer_error(env, model) -> None:  # type: ignore[no-untyped-def]
    # JSON lets the scaffold return "\ud800"; writing or hashing it as UTF-8 raised, and the
    # env's "scoring failed: UnicodeEncodeError ... in position N" put a number of the
    # scaffold's choosing in the message.
    env.reset()
    scaffold = (
        "async def generate_solution(client, semaphore, problem):\n"
        "    return 'fn main() {}\\n// ' + chr(0xD800) * len(problem['name'])\n"
    )
    env.step(actions.write_file("solution/solve_code_contests_rust.py", scaffold))
    _, _, _, _, info = env.step("score")
    message = info["score"]["message"]
    assert info["score"]["valid"] and info["score"]["raw"] == 0.0, message
    assert "23 programs returned" in message and "position" not in message, message


BATCH_PROBE = """
import asyncio, time

async def generate_solution(client, semaphore, problem):
    started = time.monotonic()
    await asyncio.sleep(float(problem["description"]))
    return f"{problem['name']} {started}"
"""


def test_harness_runs_problems_in_batches_with_a_per_problem_limit(tmp_path: Path) -> None:
    """run_scaffold.py --batch-size N starts a batch only when the previous one is done (the
    original evaluator's batches); a problem past --per-problem-timeout counts as a timeout."""
    import subprocess
    import sys

    harness = Path(get_task("rust_codecontests").package_dir) / "workspace" / "run_scaffold.py"
    (tmp_path / "probe.py").write_text(BATCH_PROBE)
    delays = ["0.6", "0.6", "0.1", "5"]
    (tmp_path / "p.jsonl").write_text(
        "".join(
            json.dumps({"name": f"p{i}", "description": d}) + "\n" for i, d in enumerate(delays)
        )
    )
    out = tmp_path / "out.jsonl"
    args = ["--solution", str(tmp_path / "probe.py"), "--problems", str(tmp_path / "p.jsonl")]
    args += ["--out", str(out), "--batch-size", "2", "--per-problem-timeout", "1.5"]
    proc = subprocess.run([sys.executable, str(harness), *args], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    records = {r["name"]: r for r in map(json.loads, out.read_text().splitlines())}
    starts = {n: float(r["code"].split()[1]) for n, r in records.items() if r["code"]}
    assert set(starts) == {"p0", "p1", "p2"}
    assert starts["p2"] - starts["p0"] >= 0.55  # the second batch waited for the first
    assert abs(starts["p1"] - starts["p0"]) < 0.3  # a batch runs together
    assert records["p3"]["error_type"] == "timeout" and not records["p3"]["code"]
