"""The isolating sandboxes hold against an agent that attacks the host (issue 20).

CI runs these as root, the case in which bubblewrap used to map the agent to host root. Each
attack is tried from inside; the host's state is read before and after, and the sandbox keeps
working afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rebench_gym import procs
from rebench_gym.errors import ActionError, SandboxUnavailableError
from rebench_gym.sandbox import Sandbox, default_sandbox_name, make_sandbox
from rebench_gym.sandbox.leftovers import find_leftovers
from tests.conftest import HAVE_BWRAP


def _docker_ok() -> bool:
    try:
        from rebench_gym.sandbox.docker_images import docker_client, find_image

        docker_client()
        return find_image("optimize_kernel", "mini") is not None
    except Exception:
        return False


ISOLATING = [
    pytest.param("bwrap", marks=pytest.mark.skipif(not HAVE_BWRAP, reason="no bubblewrap")),
    pytest.param(
        "docker",
        marks=[
            pytest.mark.docker,
            pytest.mark.skipif(not _docker_ok(), reason="no Docker engine or kernel image"),
        ],
    ),
]
CANARY = "rebench-driver-secret-4711"


def _make(name: str, workspace: Path, **options: object) -> Sandbox:
    if name == "docker":
        return make_sandbox(name, workspace, image="optimize_kernel", image_variant="mini")
    return make_sandbox(name, workspace, options=options or None)


@pytest.fixture(params=ISOLATING)
def sandbox(
    request: pytest.FixtureRequest, tmp_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Sandbox]:
    monkeypatch.setenv("REBENCH_TEST_SECRET", CANARY)  # in the driver's environment only
    sb = _make(request.param, tmp_workspace)
    sb.start()
    yield sb
    assert sb.exec("echo still-here", 20).output == "still-here\n"
    sb.close()


def test_proc_sys_is_read_only(sandbox: Sandbox) -> None:
    knob = Path("/proc/sys/kernel/printk_ratelimit")
    before = knob.read_text()
    new = str(int(before) + 2)
    result = sandbox.exec(f"echo {new} > {knob}; cat {knob}", 20)
    assert knob.read_text() == before
    assert "Read-only" in result.output or "Permission denied" in result.output
    for path in ("/proc/sys/kernel/core_pattern", "/proc/sys/vm/drop_caches"):
        assert sandbox.exec(f"test -w {path}", 10).exit_code != 0


def test_root_only_host_files_are_unreadable(sandbox: Sandbox) -> None:
    result = sandbox.exec("cat /etc/shadow /etc/gshadow; echo; id -u", 20)
    assert "root:" not in result.output
    assert result.output.split()[-1] != "0"


def test_no_process_of_the_agent_holds_host_root(sandbox: Sandbox) -> None:
    if sandbox.name != "bwrap":
        pytest.skip("a container's processes are seen through the engine")
    sandbox.exec("sleep 60 &", 10)
    shell = sandbox.shell  # type: ignore[attr-defined]
    agent = [shell.bash_pid, *procs.descendants(shell.bash_pid)]
    assert len(agent) >= 2
    for pid in agent:
        status = Path(f"/proc/{pid}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        caps = next(line for line in status.splitlines() if line.startswith("CapEff:")).split()[1]
        assert "0" not in uids and int(caps, 16) == 0


def test_setuid_file_made_in_the_workspace_gives_nothing(sandbox: Sandbox) -> None:
    result = sandbox.exec("cp /usr/bin/id ./myid && chmod 4755 ./myid; ./myid -u", 20)
    assert result.exit_code == 0 and result.output.strip() != "0"
    info = (sandbox.workspace / "myid").stat()
    assert info.st_uid != 0 or not info.st_mode & 0o4000  # no setuid-root file on the host
    status = sandbox.exec("grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status", 10).output
    assert "NoNewPrivs:\t1" in status and "Seccomp:\t2" in status


def test_namespaces_and_mounts_are_refused(sandbox: Sandbox) -> None:
    assert sandbox.exec("unshare -Urm true", 20).exit_code != 0
    assert sandbox.exec("unshare -n true", 20).exit_code != 0
    assert sandbox.exec("mount -t tmpfs none /tmp", 20).exit_code != 0
    clone = sandbox.exec(
        'python3 -c "import ctypes,os; l=ctypes.CDLL(None,use_errno=True); '
        'r=l.unshare(0x10000000); print(r, ctypes.get_errno())"',
        30,
    )
    assert clone.output.split()[0] == "-1"


def test_processes_outside_the_sandbox_cannot_be_traced_or_read(sandbox: Sandbox) -> None:
    outside = subprocess.Popen(["sleep", "60"])
    try:
        code = (
            "import ctypes; l=ctypes.CDLL(None,use_errno=True); "
            f"r=l.ptrace(16, {outside.pid}, 0, 0); print(r, ctypes.get_errno())"
        )
        result = sandbox.exec(f'python3 -c "{code}"', 30)
        assert result.output.split()[0] == "-1"
        assert Path(f"/proc/{outside.pid}/status").read_text().count("TracerPid:\t0") == 1
        environ = sandbox.exec("cat /proc/1/environ /proc/*/environ 2>/dev/null", 20).output
        assert CANARY not in environ
    finally:
        outside.kill()
        outside.wait()


def test_scratch_filesystems_are_bounded(tmp_workspace: Path) -> None:
    if not HAVE_BWRAP:
        pytest.skip("no bubblewrap")
    sb = make_sandbox("bwrap", tmp_workspace, options={"tmp_gb": 0.01, "shm_gb": 0.01})
    try:
        sb.start()
        for path in ("/tmp", "/dev/shm"):
            result = sb.exec(f"head -c 30M /dev/zero > {path}/fill; echo rc=$?", 60)
            assert "No space left" in result.output, result.output
            sb.exec(f"rm -f {path}/fill", 10)
        sizes = sb.exec("df -k --output=size /var/tmp | tail -1", 10).output.strip()
        assert int(sizes) <= 300 * 1024
        assert sb.exec("echo ok", 10).output == "ok\n"
    finally:
        sb.close()


def test_shared_memory_is_bounded(sandbox: Sandbox) -> None:
    size_kb = int(sandbox.exec("df -k --output=size /dev/shm | tail -1", 10).output.strip())
    assert size_kb <= 2**20  # 1 GiB (bwrap's default) or Docker's 64 MiB, not half the host's RAM


def test_bwrap_options_are_checked(tmp_workspace: Path) -> None:
    if not HAVE_BWRAP:
        pytest.skip("no bubblewrap")
    from rebench_gym.errors import UsageError

    with pytest.raises(UsageError, match="no option"):
        make_sandbox("bwrap", tmp_workspace, options={"network": True})
    with pytest.raises(UsageError, match="tmp_gb"):
        make_sandbox("bwrap", tmp_workspace, options={"tmp_gb": -1})
    if os.geteuid() == 0:
        with pytest.raises(UsageError, match="host root"):
            make_sandbox("bwrap", tmp_workspace, options={"uid": 0})


def test_copy_out_stays_inside_the_workspace(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.exec(
        "mkdir -p solution/sub && echo hi > solution/a.py && chmod 6777 solution/a.py && "
        "ln -s /etc/passwd solution/passwd && ln -s ../a.py solution/sub/ok && "
        "ln -s ../../x solution/sub/out && mkfifo solution/fifo",
        20,
    )
    dest = tmp_path / "copy"
    copied = sandbox.copy_out("solution", dest, max_bytes=1000)
    assert copied == 3 and (dest / "a.py").read_text() == "hi\n"
    assert (dest / "a.py").stat().st_mode & 0o7002 == 0  # no setuid, setgid, sticky, o+w
    assert sorted(p.name for p in dest.rglob("*")) == ["a.py", "ok", "sub"]
    with pytest.raises(ActionError, match="more than 2 bytes"):
        sandbox.copy_out("solution", tmp_path / "small", max_bytes=2)
    sandbox.exec("rm -rf solution && ln -s /etc solution", 10)
    with pytest.raises(ActionError, match=r"outside the workspace|symlink"):
        sandbox.copy_out("solution", tmp_path / "etc", max_bytes=10**9)


def test_local_is_never_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    with pytest.raises(SandboxUnavailableError, match="bubblewrap"):
        default_sandbox_name()


def test_sigkilled_driver_leftovers_are_removed_by_cleanup(tmp_path: Path) -> None:
    script = """
import time
from rebench_gym.sandbox.leftovers import scratch_dir, shm_scratch_dir
from rebench_gym.sandbox import make_sandbox
ws = scratch_dir("env") / "workspace"
ws.mkdir()
io = shm_scratch_dir("io")
sb = make_sandbox("local", ws)
sb.start()
print(ws.parent, io, flush=True)
time.sleep(300)
"""
    live = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    dead = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout is not None and dead.stdout is not None
        live_dirs = [Path(p) for p in live.stdout.readline().split()]
        dead_dirs = [Path(p) for p in dead.stdout.readline().split()]
        dead.send_signal(signal.SIGKILL)
        dead.wait(timeout=30)
        time.sleep(0.2)
        assert all(p.exists() for p in dead_dirs)
        assert {p for p in dead_dirs} <= {item.path for item in find_leftovers()}
        out = subprocess.run(
            [sys.executable, "-m", "rebench_gym.cli", "sandbox", "cleanup", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert not any(p.exists() for p in dead_dirs)
        assert all(p.exists() for p in live_dirs)  # a running driver's are kept
    finally:
        for proc in (live, dead):
            proc.kill()
            proc.wait()
        subprocess.run(
            [sys.executable, "-m", "rebench_gym.cli", "sandbox", "cleanup"],
            capture_output=True,
            timeout=120,
        )


def test_agent_processes_are_stopped_while_paused(sandbox: Sandbox) -> None:
    """A score call pauses the agent: its background jobs can neither contend nor time it."""
    sandbox.exec("(while true; do echo t >> ticks; sleep 0.02; done) >/dev/null 2>&1 &", 10)
    ticks = sandbox.workspace / "ticks"
    deadline = time.monotonic() + 10
    while not ticks.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with sandbox.paused():
        time.sleep(0.2)
        before = ticks.stat().st_size
        time.sleep(0.5)
        assert ticks.stat().st_size == before
    time.sleep(0.5)
    assert ticks.stat().st_size > before  # resumed
