"""Behaviour every sandbox provider must have: a persistent shell with bounded, safe commands."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rebench_gym.errors import ActionError
from rebench_gym.sandbox import Sandbox, make_sandbox
from tests.conftest import HAVE_BWRAP, SANDBOXES


@pytest.fixture(params=SANDBOXES)
def sandbox(request: pytest.FixtureRequest, tmp_workspace: Path):  # type: ignore[no-untyped-def]
    sb = make_sandbox(request.param, tmp_workspace, max_output_bytes=20_000)
    sb.start()
    yield sb
    sb.close()


def test_cd_and_exports_persist(sandbox: Sandbox) -> None:
    sandbox.exec("mkdir -p sub && cd sub && export GREETING=hello", 10)
    result = sandbox.exec('echo "$GREETING from $(basename "$PWD")"', 10)
    assert result.output == "hello from sub\n"
    assert result.exit_code == 0


def test_exit_codes_and_stderr(sandbox: Sandbox) -> None:
    result = sandbox.exec("echo oops >&2; false", 10)
    assert result.exit_code == 1 and "oops" in result.output


def test_unbalanced_quotes_do_not_hang(sandbox: Sandbox) -> None:
    result = sandbox.exec('echo "unterminated', 10)
    assert result.exit_code == 2 and not result.timed_out
    assert sandbox.exec("echo ok", 10).output == "ok\n"


def test_stdin_is_not_the_control_pipe(sandbox: Sandbox) -> None:
    result = sandbox.exec("cat; echo after-cat", 10)
    assert result.output == "after-cat\n"


def test_timeout_kills_command_and_keeps_shell(sandbox: Sandbox) -> None:
    sandbox.exec("export KEEP=1", 10)
    start = time.monotonic()
    result = sandbox.exec("sleep 1000", 1)
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - start < 10
    assert sandbox.exec("echo $KEEP", 10).output == "1\n"


def test_busy_shell_builtin_loop_restarts_shell(sandbox: Sandbox) -> None:
    result = sandbox.exec("while true; do :; done", 1)
    assert result.timed_out and result.shell_restarted
    assert "restarted" in result.note
    assert sandbox.exec("echo alive", 10).output == "alive\n"


def test_exit_restarts_shell(sandbox: Sandbox) -> None:
    result = sandbox.exec("exit 7", 10)
    assert result.exit_code == 7 and result.shell_restarted
    assert sandbox.exec("echo alive", 10).output == "alive\n"


def test_huge_output_is_bounded(sandbox: Sandbox) -> None:
    result = sandbox.exec("head -c 100000000 /dev/zero | tr '\\0' x", 60)
    assert result.exit_code == 0
    assert result.output_bytes == 100_000_000
    assert result.omitted_bytes > 99_000_000
    assert len(result.output) < 25_000 and "omitted" in result.output


def test_binary_output_is_decoded_safely(sandbox: Sandbox) -> None:
    result = sandbox.exec("printf '\\xff\\xfe\\x00\\x01ok\\x1b[31m'", 10)
    assert "\x00" not in result.output and "\x1b" not in result.output
    assert "ok" in result.output and "\ufffd" in result.output


def test_bounded_fork_loop_is_cleaned_up(sandbox: Sandbox) -> None:
    marker = f"rbfork{time.time_ns()}"
    result = sandbox.exec(
        f"for i in $(seq 2000); do (exec -a {marker} sleep 300) & done; echo spawned", 120
    )
    assert "spawned" in result.output
    assert len(_host_processes_named(marker)) > 1000
    sandbox.reset()
    assert not _host_processes_named(marker)


def test_background_processes_survive_steps_but_not_reset(sandbox: Sandbox) -> None:
    marker = f"rbmark{time.time_ns()}"
    sandbox.exec(f"bash -c 'exec -a {marker} sleep 300' &", 10)
    assert marker in sandbox.exec("ps -eo args", 10).output
    sandbox.reset()
    assert marker not in sandbox.exec("ps -eo args", 10).output
    assert not _host_processes_named(marker)


def test_close_kills_everything_and_is_idempotent(tmp_workspace: Path) -> None:
    for name in [p if isinstance(p, str) else p.values[0] for p in SANDBOXES]:
        sb = make_sandbox(name, tmp_workspace)
        sb.start()
        marker = f"rbclose{time.time_ns()}"
        sb.exec(f"setsid bash -c 'exec -a {marker} sleep 300' &", 10)
        time.sleep(0.2)
        sb.close()
        sb.close()
        time.sleep(0.2)
        assert not _host_processes_named(marker), name


def test_paths_outside_workspace_are_refused(sandbox: Sandbox) -> None:
    for bad in ["../escape.txt", "/etc/passwd", "a/../../b"]:
        with pytest.raises(ActionError):
            sandbox.write_file(bad, b"x")
    sandbox.exec("ln -s /etc evil", 10)
    with pytest.raises(ActionError, match="outside"):
        sandbox.read_file("evil/passwd")
    sandbox.write_file("inside/ok.txt", b"fine")
    assert sandbox.read_file(f"{sandbox.workspace_inside}/inside/ok.txt") == b"fine"


def _host_processes_named(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap is not installed")
def test_bwrap_isolation(tmp_workspace: Path) -> None:
    import rebench_gym

    hidden = tmp_workspace.parent / "secret"
    hidden.mkdir()
    (hidden / "answer.txt").write_text("42")
    sb = make_sandbox("bwrap", tmp_workspace, hidden=[hidden])
    try:
        sb.start()
        package = Path(rebench_gym.__file__).parent
        assert sb.exec(f"ls {package}/tasks", 10).exit_code != 0
        assert sb.exec(f"cat {hidden}/answer.txt", 10).exit_code != 0
        assert sb.exec("python3 -c 'import rebench_gym'", 30).exit_code != 0
        assert sb.exec("python3 -c 'import torch, numpy; print(1)'", 60).output.strip() == "1"
        net = sb.exec(
            "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 80), 3)\"", 30
        )
        assert net.exit_code != 0
        assert sb.exec("ps -e --no-headers | wc -l", 10).output.strip() in {
            str(i) for i in range(1, 8)
        }
        assert sb.exec("id -u", 10).output.strip() == str(sb.agent_uid)  # type: ignore[attr-defined]
        assert sb.exec("touch /usr/x", 10).exit_code != 0
    finally:
        sb.close()


@pytest.mark.parametrize("name", SANDBOXES)
@pytest.mark.parametrize("signame", ["SIGINT", "SIGKILL"])
def test_nothing_survives_the_driver_being_interrupted(
    name: str, signame: str, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys

    if name == "local" and signame == "SIGKILL":
        pytest.skip("a SIGKILLed driver cannot clean up detached local processes")
    marker = f"rbdriver{time.time_ns()}"
    # The driver restores Ctrl-C's default handler: a runner started in the background by a
    # non-interactive shell passes SIGINT on ignored, and an ignoring driver cannot be interrupted.
    script = f"""
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from pathlib import Path
from rebench_gym.sandbox import make_sandbox
sb = make_sandbox({name!r}, Path({str(tmp_path)!r}))
sb.start()
sb.exec("bash -c 'exec -a {marker} sleep 300' & echo started", 10)
print("ready", flush=True)
time.sleep(300)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    assert _host_processes_named(marker)
    proc.send_signal(getattr(signal, signame))
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while _host_processes_named(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _host_processes_named(marker)
