"""The docker sandbox: real containers, isolation, scoring in a scoring container, no leaks.

Every test needs a Docker engine and the mini OptimizeKernel image (``.ci/docker-setup`` makes
both); without them the tests are skipped with the reason.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import rebench_gym
from rebench_gym import agents
from rebench_gym.rollout import rollout

KERNEL = "RE-Bench/OptimizeKernel-v0"
pytestmark = pytest.mark.docker


def docker_skip_reason() -> str | None:
    """Why the docker tests cannot run here (None: they can)."""
    try:
        from rebench_gym.sandbox.docker_images import docker_client
    except ImportError as e:  # pragma: no cover - docker-py missing
        return f"docker-py is not installed ({e}); pip install 'rebench-gym[docker]'"
    try:
        docker_client()
    except Exception as e:
        return f"no Docker engine: {e}"
    return docker_image_missing(KERNEL)


def docker_image_missing(env_id: str) -> str | None:
    """Why ``env_id``'s mini image cannot be used (None: it is built)."""
    from rebench_gym.envs.registration import task_name
    from rebench_gym.sandbox.docker_images import find_image

    try:
        if find_image(task_name(env_id), "mini") is None:
            return f"the mini image of {env_id} is not built (run .ci/docker-setup)"
    except Exception as e:
        return f"no Docker engine: {e}"
    return None


_SKIP = docker_skip_reason()
if _SKIP is not None:
    pytestmark = [pytest.mark.docker, pytest.mark.skip(reason=_SKIP)]


def _containers(label: str) -> list[str]:
    from rebench_gym.sandbox.docker_images import docker_client

    return [c.name for c in docker_client().containers.list(all=True, filters={"label": label})]


@pytest.fixture
def env() -> Iterator[gym.Env]:  # type: ignore[type-arg]
    e = gym.make(KERNEL, scale="mini", sandbox="docker", anchors=(4.0, 3.0))
    yield e
    e.close()


def test_check_env_passes(env: gym.Env) -> None:  # type: ignore[type-arg]
    check_env(env.unwrapped, skip_render_check=True)


def test_agent_runs_as_non_root_without_network_or_hidden_files(
    env: gym.Env,  # type: ignore[type-arg]
    cache_dir: Path,
) -> None:
    env.reset()
    package = Path(rebench_gym.__file__).resolve().parent

    def run(cmd: str) -> str:
        obs, *_ = env.step(cmd)
        return obs["terminal"]

    assert "uid=1000" in run("id")
    assert "/home/agent" in run("pwd")
    for hidden in (package, package / "tasks/optimize_kernel/reference", cache_dir):
        out = run(f"ls {hidden} && echo VISIBLE || echo HIDDEN")
        assert "HIDDEN" in out and "VISIBLE" not in out, out
    out = run('python3 -c "import rebench_gym" 2>&1 && echo IMPORTED || echo NOPE')
    assert "NOPE" in out, out
    net = run(
        "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)\" "
        "2>&1 && echo ONLINE || echo OFFLINE"
    )
    assert "OFFLINE" in net, net
    # Its own pid namespace: none of the host's processes (this test) is visible.
    procs = run("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")
    assert "pytest" not in procs and "dockerd" not in procs, procs


def test_timeout_kills_the_command_and_keeps_the_shell(env: gym.Env) -> None:  # type: ignore[type-arg]
    env.reset()
    env.step("cd solution && export KEEP=kept && (sleep 300 &) && echo started")
    start = time.monotonic()
    obs, _, _, _, info = env.step(
        '{"tool": "bash", "command": "sleep 100 & sleep 100", "timeout": 1}'
    )
    assert info["timed_out"] and time.monotonic() - start < 15
    obs, *_ = env.step("pwd; echo $KEEP; cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    text = obs["terminal"]
    assert "/home/agent/solution" in text and "kept" in text
    assert "sleep 100" not in text  # the timed-out command and its background child are gone
    assert "sleep 300" in text  # an earlier command's background process survives


def test_warm_reset_reuses_the_container_and_kills_its_processes(
    env: gym.Env,  # type: ignore[type-arg]
) -> None:
    env.reset()
    sandbox = env.unwrapped.sandbox  # type: ignore[attr-defined]
    first = sandbox.container.id
    env.step("sleep 500 & echo scratch > solution/extra.txt")
    env.reset()
    assert sandbox.container.id == first
    obs, *_ = env.step("ls solution; cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert "extra.txt" not in obs["terminal"] and "sleep 500" not in obs["terminal"]


def test_agent_cannot_take_the_container_down(env: gym.Env) -> None:  # type: ignore[type-arg]
    env.reset()
    container = env.unwrapped.sandbox.container  # type: ignore[attr-defined]
    env.step("kill -9 1; kill -9 -1")
    obs, *_ = env.step("echo still-here")
    assert "still-here" in obs["terminal"]
    assert env.unwrapped.sandbox.container.id == container.id  # type: ignore[attr-defined]


def test_write_file_is_editable_by_the_agent(env: gym.Env) -> None:  # type: ignore[type-arg]
    env.reset()
    env.step('{"tool": "write_file", "path": "notes/a.txt", "content": "one"}')
    obs, *_ = env.step("echo two >> notes/a.txt && cat notes/a.txt")
    assert "one" in obs["terminal"] and "two" in obs["terminal"]


def test_close_removes_the_container() -> None:
    e = gym.make(KERNEL, scale="mini", sandbox="docker", anchors=(4.0, 3.0))
    e.reset()
    episode = e.unwrapped.sandbox.episode_id  # type: ignore[attr-defined]
    assert _containers(f"rebench_gym.episode={episode}")
    e.close()
    e.close()
    assert not _containers(f"rebench_gym.episode={episode}")


@pytest.mark.slow
def test_reference_reaches_one_and_noop_stays_at_zero(cache_dir: Path) -> None:
    e = gym.make(KERNEL, scale="mini", sandbox="docker", cache_dir=str(cache_dir))
    try:
        ref = rollout(e, agents.make("reference", env_id=KERNEL, scale="mini"))
        noop = rollout(e, agents.make("noop"))
    finally:
        e.close()
    assert ref.normalized_score >= 0.9, ref.score_log
    assert noop.normalized_score <= 0.1, noop.score_log


_DRIVER = textwrap.dedent(
    """
    import os, signal, sys, gymnasium as gym, rebench_gym
    # Ctrl-C must raise KeyboardInterrupt even when the test runner was started in the
    # background (a non-interactive shell starts background jobs with SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    env = gym.make("RE-Bench/OptimizeKernel-v0", scale="mini", sandbox="docker",
                   anchors=(4.0, 3.0))
    env.reset()
    print("READY", flush=True)
    env.step('{"tool": "bash", "command": "sleep 1000", "timeout": 900}')
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_driver_leaves_no_container(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _DRIVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tempfile.gettempdir(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert b"READY" in line, proc.stderr.read() if proc.stderr else b""
        label = f"rebench_gym.pid={proc.pid}"
        assert _containers(label)
        time.sleep(0.5)
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        # SIGINT: atexit closes the sandbox. SIGKILL: the session's reaper process sees its
        # parent gone and removes the containers (within a few seconds).
        deadline = time.monotonic() + 30
        while _containers(label) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert not _containers(label)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cleanup_command_removes_leftovers_but_not_live_containers(
    env: gym.Env,  # type: ignore[type-arg]
) -> None:
    import contextlib

    from rebench_gym.cli import main
    from rebench_gym.sandbox.docker_images import docker_client, find_image

    env.reset()
    live = env.unwrapped.sandbox.episode_id  # type: ignore[attr-defined]
    leftover = docker_client().containers.run(
        find_image("optimize_kernel", "mini"),
        ["sleep", "60"],
        detach=True,
        labels={"rebench_gym": "1", "rebench_gym.test": "1", "rebench_gym.pid": "999999999"},
    )
    try:
        assert main(["sandbox", "cleanup"]) == 0
        assert not _containers("rebench_gym.test=1")
        assert _containers(f"rebench_gym.episode={live}")  # its driver (this test) is alive
    finally:
        with contextlib.suppress(Exception):
            leftover.remove(force=True)
