"""OptimizeKernel's forked scoring path: one sandboxed runner imports torch once and forks a fresh
solution process per share of the timed calls. These check what that path must keep: the parent
is out of the solution's reach, each solution process is fresh and ends with everything it
started before the next one, the baseline path (``REBENCH_SCORING=baseline``) still scores, and a
score call's phases are recorded for ``rebench bench --scoring``.
"""

from __future__ import annotations

import textwrap

import gymnasium as gym
import pytest

from rebench_gym import actions, procs
from rebench_gym.tasks import phases
from tests.conftest import HAVE_BWRAP
from tests.tasks.test_optimize_kernel import KERNEL, REFERENCE_SOURCE

SANDBOXES = ["local", *(["bwrap"] if HAVE_BWRAP else [])]

pytestmark = pytest.mark.slow  # real score calls, as the kernel's other scorer tests

# Probes the parent (the process that forked this one) and raises with what it found.
PROBE_PARENT = """
import os

def prefix_sum(x):
    ppid = os.getppid()
    found = []
    probes = (("mem", f"/proc/{ppid}/mem", "r+b"), ("environ", f"/proc/{ppid}/environ", "rb"))
    for what, path, mode in probes:
        try:
            open(path, mode).close()
            found.append(what + "-open")
        except OSError:
            found.append(what + "-denied")
    try:
        os.listdir(f"/proc/{ppid}/fd")
        found.append("fd-listed")
    except OSError:
        found.append("fd-denied")
    cmdline = open(f"/proc/{ppid}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
    raise RuntimeError(f"PROBE {' '.join(found)} parent={cmdline.strip()}")
"""

# Correct in the first process; the second reports what it inherited from the first.
CARRY_OVER = (
    REFERENCE_SOURCE.read_text()
    + """
import os, subprocess, sys

_STATE = "/tmp/rb_forked_state"
if not os.path.exists(_STATE):
    helper = subprocess.Popen(["sleep", "600"], start_new_session=True)
    sys.modules["rb_marker_from_first"] = sys
    with open(_STATE, "w") as fh:
        fh.write(f"{os.getpid()} {helper.pid}")
else:
    first, helper = (int(v) for v in open(_STATE).read().split())
    try:  # a zombie (killed, not yet reaped by whoever inherited it) counts as gone
        stat = open(f"/proc/{helper}/stat").read()
        alive = "helper-gone" if stat[stat.rfind(")") + 2] in "ZX" else "helper-alive"
    except OSError:
        alive = "helper-gone"
    marker = "marker-inherited" if "rb_marker_from_first" in sys.modules else "marker-absent"
    fresh = "same-pid" if first == os.getpid() else "new-pid"
    raise RuntimeError(f"SECOND {alive} {marker} {fresh}")
"""
)


def _score(source: str, sandbox: str) -> dict:  # type: ignore[type-arg]
    env = gym.make(KERNEL, scale="mini", sandbox=sandbox, anchors=(1.0, 0.0))
    try:
        env.reset()
        env.step(actions.write_file("solution/solution.py", textwrap.dedent(source)))
        _, _, _, _, info = env.step("score")
        return info["score"]
    finally:
        env.close()


@pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap is not installed")
def test_the_parent_is_out_of_reach_of_the_solution() -> None:
    # bwrap only: the local sandbox runs the solution as the driver's user (root here), which
    # no process boundary keeps from anything
    score = _score(PROBE_PARENT, "bwrap")
    assert score["valid"] is False
    message = score["message"]
    assert "PROBE mem-denied environ-denied fd-denied" in message, message
    assert "runner.py" in message  # the parent is the runner, which never imports the solution


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_each_solution_process_is_fresh_and_ends_with_all_it_started(sandbox: str) -> None:
    score = _score(CARRY_OVER, sandbox)
    assert score["valid"] is False
    # the second process was forked after the first one (and its detached helper) were killed,
    # from a parent that never imported the solution
    assert "SECOND helper-gone marker-absent new-pid" in score["message"], score["message"]


# Each solution process notes its parent and itself in the runner's io directory (writable,
# and the runner's own: a new runner has a new one), then fails.
PARENTS = """
import os

_LOG = os.path.join(os.environ["RB_IO_DIR"], "rb_parents")
with open(_LOG, "a") as fh:
    fh.write(f"{os.getppid()}:{os.getpid()} ")

def prefix_sum(x):
    raise RuntimeError("SEEN " + open(_LOG).read())
"""


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_the_runner_is_kept_across_an_episodes_score_calls(sandbox: str) -> None:
    """One runner (one torch import) serves every score call of an episode, each solution
    process still a fresh fork; a new episode gets a new runner."""
    env = gym.make(KERNEL, scale="mini", sandbox=sandbox, anchors=(1.0, 0.0))
    try:
        seen = []
        for _episode in range(2):
            env.reset()
            env.step(actions.write_file("solution/solution.py", PARENTS))
            for _ in range(2):
                _, _, _, _, info = env.step("score")
                message = info["score"]["message"]
                seen.append(message.split("RuntimeError: SEEN ", 1)[1].split("\n")[0].split())
        first, second, third, fourth = seen
        assert len(first) == 1 and second[:1] == first and len(second) == 2, seen
        parents = {entry.split(":")[0] for entry in second}
        assert len(parents) == 1 and len({entry.split(":")[1] for entry in second}) == 2, seen
        assert len(third) == 1 and len(fourth) == 2, seen  # the next episode: a new runner
    finally:
        env.close()


@pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap is not installed")
def test_fast_and_baseline_paths_both_score_the_reference_and_record_phases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for path in ("fast", "baseline"):
        monkeypatch.setenv(procs.SCORING_PATH_ENV, path)
        with phases.recording() as log:
            score = _score(REFERENCE_SOURCE.read_text(), "bwrap")
        assert score["valid"], score
        assert "16 timed calls in 2 process(es)" in score["message"]
        for name in ("spawn", "imports", "checks", "timed work", "teardown"):
            assert log.seconds.get(name, 0.0) > 0.0, (path, name, log.seconds)
