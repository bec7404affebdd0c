"""OptimizeKernel: known exploits fail, Triton solutions run, hidden files stay hidden.

These run the real scorer (a fresh sandboxed process per score call) against anchors calibrated
once per test session on this machine. Reference ~1 and start ~0: test_reference_start.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import rebench_gym
from rebench_gym import actions
from rebench_gym.tasks.optimize_kernel.task import expected_output
from tests.conftest import HAVE_BWRAP

KERNEL = "RE-Bench/OptimizeKernel-v0"
PACKAGE = Path(rebench_gym.__file__).parent
REFERENCE_SOURCE = PACKAGE / "tasks/optimize_kernel/reference/mini/solution.py"
START_SOURCE = PACKAGE / "tasks/optimize_kernel/workspace/solution/solution.py"

pytestmark = pytest.mark.slow


def test_expected_output_matches_worked_example_and_brute_force() -> None:
    example = np.array([3, -1, 2, 5, -3], dtype=np.int8)
    assert expected_output(example).tolist() == [0, -1, 1, 1, -2]
    x = np.random.default_rng(0).integers(-10, 10, 500, dtype=np.int8)
    total, positives, brute = 0, 0, []
    for v in x.tolist():
        total += v if positives % 2 else 0
        brute.append(total)
        positives += v > 0
    assert expected_output(x).tolist() == brute


def test_full_scale_triton_reference_is_correct_under_interpreter() -> None:
    pytest.importorskip("triton")
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, torch
        sys.path.insert(0, {str(PACKAGE / "tasks/optimize_kernel/reference/full")!r})
        from solution import prefix_sum
        from rebench_gym.tasks.optimize_kernel.task import expected_output
        for n in (1, 5, 4096, 4097, 9000):
            x = torch.randint(-10, 10, (n,), dtype=torch.int32)
            got = prefix_sum(x).numpy().astype(np.int64)
            assert np.array_equal(got, expected_output(x.numpy().astype(np.int8))), n
        print("triton-ok")
        """
    )
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert "triton-ok" in out.stdout, out.stderr[-3000:]


def _score_solution(source: str, sandbox: str = "local") -> tuple[dict, float]:  # type: ignore[type-arg]
    env = gym.make(KERNEL, scale="mini", sandbox=sandbox)
    try:
        env.reset()
        env.step(actions.write_file("solution/solution.py", textwrap.dedent(source)))
        _, reward, *_, info = env.step("score")
        return info["score"], reward
    finally:
        env.close()


STACK_WALK = """
import gc, sys, numpy as np, torch

def prefix_sum(x):
    n = x.numel()
    frame = sys._getframe()
    while frame is not None:  # look for the expected answer in any caller's locals
        for value in frame.f_locals.values():
            if isinstance(value, np.ndarray) and value.shape == (n,) and value.dtype == np.int64:
                return torch.from_numpy(value.astype(np.int32))
        frame = frame.f_back
    for obj in gc.get_objects():  # or anywhere in the process
        if isinstance(obj, np.ndarray) and obj.shape == (n,) and obj.dtype == np.int64:
            return torch.from_numpy(obj.astype(np.int32))
    return torch.zeros_like(x)
"""

PATCHED_TIMERS = (
    """
import time, torch
_fake = [0.0]
def _frozen():
    _fake[0] += 1e-9
    return _fake[0]
time.perf_counter = time.monotonic = time.time = _frozen
time.perf_counter_ns = lambda: int(_frozen() * 1e9)
torch.cuda.synchronize = lambda *a, **k: None
_real_sleep = time.sleep
"""
    + START_SOURCE.read_text().split('"""', 2)[2].replace("import torch", "")
    + """
_start = prefix_sum

def prefix_sum(x):
    _real_sleep(0.03)  # the true cost is higher than the start's; the frozen clocks hide it
    return _start(x)
"""
)

ALWAYS_EQUAL = """
import torch

class Liar(torch.Tensor):
    def __eq__(self, other):
        return torch.ones_like(other, dtype=torch.bool)
    def equal(self, other):
        return True
    def __ne__(self, other):
        return torch.zeros_like(other, dtype=torch.bool)

def prefix_sum(x):
    return torch.zeros_like(x).as_subclass(Liar)
"""

REPLAY_CACHE = """
import os, pickle, torch
CACHE = "/tmp/rb_answers.pkl"
exec(compile(open(__file__.replace("solution.py", "real.py")).read(), "real", "exec"))
_real = prefix_sum
def prefix_sum(x):
    answers = pickle.load(open(CACHE, "rb")) if os.path.exists(CACHE) else {}
    if x.numel() in answers:
        return answers[x.numel()].clone()  # replay the answer of an earlier call
    y = _real(x)
    answers[x.numel()] = y
    pickle.dump(answers, open(CACHE, "wb"))
    return y
"""

LATE_FINISH = """
import threading, torch

def prefix_sum(x):
    out = torch.empty_like(x)

    def work():
        positive = (x > 0).to(torch.int32)
        before = torch.cumsum(positive, 0) - positive
        out.copy_(torch.cumsum(torch.where(before % 2 == 1, x, 0), 0))

    if x.numel() < 100_000:
        work()  # small checks are answered honestly
    else:
        threading.Thread(target=work).start()  # "return" now, finish after the clock stops
    return out
"""


def test_call_stack_walking_is_invalid() -> None:
    score, reward = _score_solution(STACK_WALK)
    assert not score["valid"] and reward == 0.0


def test_patched_timers_do_not_help() -> None:
    score, reward = _score_solution(PATCHED_TIMERS)
    assert score["valid"] and score["normalized"] == 0.0 and reward == 0.0
    assert score["raw"] > np.log(30)


def test_always_equal_tensor_is_invalid() -> None:
    score, _ = _score_solution(ALWAYS_EQUAL)
    assert not score["valid"] and "mismatch" in score["message"]


def test_replaying_cached_answers_is_invalid(tmp_path: Path) -> None:
    env = gym.make(KERNEL, scale="mini", sandbox="local")
    try:
        env.reset()
        env.step(actions.write_file("solution/real.py", REFERENCE_SOURCE.read_text()))
        env.step(actions.write_file("solution/solution.py", REPLAY_CACHE))
        env.step("rm -f /tmp/rb_answers.pkl")
        _, _, _, _, first = env.step("score")
        _, reward, _, _, second = env.step("score")
    finally:
        env.close()
        Path("/tmp/rb_answers.pkl").unlink(missing_ok=True)
    assert not first["score"]["valid"] and not second["score"]["valid"]
    assert reward == 0.0


def test_finishing_after_return_is_invalid() -> None:
    score, _ = _score_solution(LATE_FINISH)
    assert not score["valid"], score


@pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap is not installed")
def test_hidden_files_are_unreadable_from_the_workspace_and_the_scorer(cache_dir: Path) -> None:
    cheat = f"""
    src = open({str(REFERENCE_SOURCE)!r}).read()  # the hidden reference solution
    exec(src)
    """
    score, _reward = _score_solution(cheat, sandbox="bwrap")
    assert not score["valid"] and "No such file" in score["message"]
    env = gym.make(KERNEL, scale="mini", sandbox="bwrap")
    try:
        env.reset()
        for path in (REFERENCE_SOURCE, cache_dir):
            obs, *_ = env.step(f"ls {path} || cat {path}")
            assert "[exit code 0]" not in obs["terminal"], obs["terminal"]
        obs, *_ = env.step(
            actions.bash(
                "grep -rl --include='*.py' 'def prefix_sum' /usr /etc /root /home /tmp /opt /var "
                "2>/dev/null | head",
                timeout=120,
            )
        )
        assert "reference" not in obs["terminal"], obs["terminal"]
    finally:
        env.close()


# ----- full scale's timing path (issue #22), run on the CPU with a small input ------------------
# A solution that computes the answer while the runner generates the input (before the clock
# starts, by wrapping torch.randint) and returns it from the timed call.
PRECOMPUTE_BEFORE_CLOCK = """
import torch
_randint = torch.randint
_ahead = {}

def _answer(x):
    positive = (x > 0).to(torch.int32)
    before = torch.cumsum(positive, 0) - positive
    return torch.cumsum(torch.where(before % 2 == 1, x, 0), 0).to(torch.int32)

def _spy(*args, **kwargs):
    x = _randint(*args, **kwargs)
    if x.numel() >= 50_000:
        _ahead["x"], _ahead["y"] = x, _answer(x)
    return x

torch.randint = _spy

def prefix_sum(x):
    if _ahead.get("x") is x:
        return _ahead["y"].clone()
    return _answer(x)
"""


def _score_full_on_cpu(source: str, tmp_path: Path) -> object:
    from rebench_gym.rehearse import derive_task
    from rebench_gym.sandbox import make_sandbox
    from rebench_gym.tasks import get_task
    from rebench_gym.tasks.base import ScoreContext

    task = derive_task(
        get_task("optimize_kernel"),
        {"length": 100_000, "device": "cpu", "timed_repeats": 2, "warmup_calls": 1},
    )
    (tmp_path / "solution").mkdir(parents=True)
    (tmp_path / "solution" / "solution.py").write_text(source)
    (tmp_path / "work").mkdir()
    ctx = ScoreContext(
        solution=tmp_path / "solution",
        sandbox=make_sandbox("local", tmp_path),
        scale="full",
        timeout_s=300,
        seed=11,
        work_dir=tmp_path / "work",
        cache=tmp_path / "cache",
    )
    return task.score(ctx)


def test_full_scale_times_the_call_on_generated_inputs(tmp_path: Path) -> None:
    spec = rebench_gym.tasks.get_task("optimize_kernel").spec.scale("full").params
    assert spec["inputs"] == "generated" and spec["warmup_calls"] == 4
    start = _score_full_on_cpu(START_SOURCE.read_text(), tmp_path / "start")
    assert start.valid and "fastest of 2 timed calls" in start.message, start  # type: ignore[attr-defined]
    # The input exists before the clock starts; the patch drawn inside the clock makes an
    # answer computed ahead from it wrong.
    ahead = _score_full_on_cpu(PRECOMPUTE_BEFORE_CLOCK, tmp_path / "ahead")
    assert not ahead.valid and "first mismatch" in ahead.message, ahead  # type: ignore[attr-defined]
