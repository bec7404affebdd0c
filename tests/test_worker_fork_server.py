"""Trusted workers run as forks of the fork server (procs.run_worker): each a fresh process with
the driver's environment and working directory at the call, the same results and messages as a
fresh interpreter, timeouts that end the worker with what it started, and a server that comes
back when killed and stays out of reach of its children."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from rebench_gym import procs

MODULE = "tests.worker_sample"


@pytest.fixture(autouse=True)
def _fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(procs.SCORING_PATH_ENV, "fast")


def _server_pid() -> int:
    procs.run_worker(MODULE, {}, 60)
    proc = procs._FORK_SERVER._proc
    assert proc is not None and proc.poll() is None
    return proc.pid


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


def test_each_worker_is_a_fresh_fork_of_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    server = _server_pid()
    monkeypatch.setenv("RB_FORK_TEST", "set-at-the-call")
    first, error = procs.run_worker(MODULE, {"env": "RB_FORK_TEST"}, 60)
    second, _ = procs.run_worker(MODULE, {}, 60)
    assert error == "" and first is not None and second is not None
    assert first["ppid"] == server and second["ppid"] == server
    assert first["pid"] != second["pid"]
    assert first["env"] == "set-at-the-call"
    assert first["cwd"] == os.getcwd()


def test_failures_read_as_they_do_from_a_fresh_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    for path in ("fast", "baseline"):
        monkeypatch.setenv(procs.SCORING_PATH_ENV, path)
        assert procs.run_worker(MODULE, {"raise": "hidden text"}, 60) == (
            None,
            "evaluation crashed (exit 1): ValueError",
        )
        assert procs.run_worker(MODULE, {"exit": 3}, 60, "the check") == (
            None,
            "the check crashed (exit 3)",
        )
        assert procs.run_worker("tests.no_such_worker", {}, 60)[1].startswith(
            "evaluation crashed (exit 1)"
        )
        result, error = procs.run_worker(MODULE, {"sleep": 30}, 1)
        assert (result, error) == (None, "evaluation timed out after 1 s")


def test_a_timed_out_worker_ends_with_what_it_started() -> None:
    # (a fresh interpreter's timeout, the baseline path, ends the worker only: this fails there)
    mark = f"600.{os.getpid()}{time.monotonic_ns() % 1000}"
    _, error = procs.run_worker(MODULE, {"helper": mark, "sleep": 30}, 3)
    assert error == "evaluation timed out after 3 s"

    def helpers() -> list[str]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if mark.encode() in cmdline and not _gone(int(entry.name)):
                found.append(entry.name)
        return found

    assert helpers() == []


def test_a_killed_server_is_restarted_and_the_server_is_not_dumpable() -> None:
    server = _server_pid()
    # the server's own report at start (PR_GET_DUMPABLE): a child cannot reach its memory
    assert procs._FORK_SERVER._replies[0]["dumpable"] == 0
    os.kill(server, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while not _gone(server) and time.monotonic() < deadline:
        time.sleep(0.01)
    result, error = procs.run_worker(MODULE, {}, 60)
    assert error == "" and result is not None
    assert result["ppid"] != server
    assert procs._FORK_SERVER._replies[0]["dumpable"] == 0


def test_a_forked_driver_starts_its_own_server() -> None:
    # a vector env's worker forked from a driver that already ran a worker
    server = _server_pid()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the forked driver
        code = 1
        try:
            os.close(read_end)
            result, error = procs.run_worker(MODULE, {}, 60)
            os.write(write_end, json.dumps([result, error]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result, error = json.loads(data)
    assert error == "" and result["ppid"] not in (server, 0)
    again, _ = procs.run_worker(MODULE, {}, 60)  # the parent's server still answers the parent
    assert again is not None and again["ppid"] == server
