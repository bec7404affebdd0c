"""``rebench serve`` against OpenEnv's own clients: a real server subprocess, real sessions.

The server runs ``rebench serve`` (mini OptimizeKernel, bwrap) as a subprocess; the clients are
``openenv.core.GenericEnvClient`` (async, and its ``.sync()`` wrapper) and, for malformed
messages, a raw ``websockets`` connection. The server's cache has seeded anchors, so resets do
not calibrate; everything else (sandboxes, scoring, the run store) is the real thing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("openenv")

from openenv.core import GenericEnvClient
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from rebench_gym.results.store import RunStore
from tests.conftest import HAVE_BWRAP

pytestmark = [pytest.mark.bwrap, pytest.mark.skipif(not HAVE_BWRAP, reason="needs bubblewrap")]

ENV_ID = "RE-Bench/OptimizeKernel-v0"
TOKEN = "test-token-0123456789abcdef"
SERVE = [sys.executable, "-m", "rebench_gym.cli", "serve", ENV_ID, "--scale", "mini"]


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _seed_anchors(cache: Path) -> None:
    """Anchors in the server's cache, so that its resets skip the ~1-minute calibration."""
    from rebench_gym.calibration import anchors_path
    from rebench_gym.tasks import get_task

    path = anchors_path(get_task("optimize_kernel"), "mini", cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"start": 3.0, "reference": 1.0, "details": "set by the test"}))


def _get(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except urllib.error.URLError:
        return 0  # not listening (yet)


class Server:
    """A ``rebench serve`` subprocess and what it was started with."""

    def __init__(self, cache: Path, db: Path, host: str, *flags: str, token: str | None = None):
        self.host = host
        self.port = _free_port(host)
        self.db = db
        env = dict(os.environ, REBENCH_CACHE_DIR=str(cache), REBENCH_DB=str(db))
        env.pop("REBENCH_SERVE_TOKEN", None)
        if token is not None:
            env["REBENCH_SERVE_TOKEN"] = token
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - read until the server stops
        self.proc = subprocess.Popen(
            [*SERVE, "--sandbox", "bwrap", "--host", host, "--port", str(self.port), *flags],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120  # imports take a while on a busy 2-core machine
        while _get(f"{self.base}/health", self.headers) != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"rebench serve did not start:\n{self.output()}")
            time.sleep(0.2)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; uvicorn ends by re-raising the signal."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


@pytest.fixture(scope="module")
def cache() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rebench-serve-cache-") as d:
        path = Path(d)
        _seed_anchors(path)
        yield path


@pytest.fixture(scope="module")
def server(cache: Path) -> Iterator[Server]:
    """One server for the module: at most 2 sessions, idle after 2 s."""
    s = Server(cache, cache / "runs.db", "127.0.0.1", "--max-sessions", "2", "--idle-timeout", "2")
    try:
        yield s
    finally:
        code = s.stop()
    assert code in (0, -signal.SIGTERM), s.output()
    assert "Traceback" not in s.output(), s.output()
    with RunStore(s.db) as store:  # shutdown closed every session: nothing left running
        assert store.episodes(status="running") == []


def _sandbox_processes(marker: str) -> list[str]:
    """Command lines of live processes that hold ``marker`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            found.append(cmdline)
    return found


def _wait_until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return bool(predicate())


# ----- an episode --------------------------------------------------------------------------------
@pytest.mark.slow
def test_sync_client_plays_an_episode_recorded_in_the_store(server: Server) -> None:
    with GenericEnvClient(base_url=server.base).sync() as client:
        first = client.reset()
        obs = first.observation
        assert "masked prefix sum" in obs["terminal"] and "solution/" in obs["files"]
        assert obs["info"]["anchors"]["start"] == 3.0 and first.done is False
        result = client.step({"command": "echo hello from $(pwd)"})
        assert "hello from" in result.observation["terminal"]
        assert result.observation["info"]["exit_code"] == 0 and result.reward == 0.0
        result = client.step(
            {"tool": "write_file", "arguments": {"path": "solution/notes.txt", "content": "hi"}}
        )
        assert "wrote 2 bytes" in result.observation["terminal"]
        assert "notes.txt" in result.observation["files"]
        scored = client.step({"command": "score"})
        info = scored.observation["info"]
        assert scored.observation["terminal"].startswith("[score]")
        assert info["score"]["valid"] is True and len(info["score_log"]) == 1
        state = client.state()
        assert state["step_count"] == 3 and state["done"] is False
        submitted = client.step({"command": "submit"})
        assert submitted.done is True and submitted.observation["info"]["terminated"] is True
        assert submitted.observation["info"]["end_reason"] == "submit"
        episode_id = int(state["episode_id"])
    with RunStore(server.db) as store:
        (record,) = [r for r in store.episodes() if r.episode_id == episode_id]
    assert record.status == "finished" and record.agent == "openenv" and record.steps == 4
    assert record.end_reason == "submit" and len(record.score_rows) == 1
    assert record.anchors is not None and record.anchors["start"] == 3.0
    assert record.normalized_score == pytest.approx(info["best_normalized"])


# ----- sessions ----------------------------------------------------------------------------------
def test_concurrent_sessions_do_not_see_each_others_files(server: Server) -> None:
    async def main() -> None:
        a = GenericEnvClient(base_url=server.base)
        b = GenericEnvClient(base_url=server.base)
        async with a, b:
            await asyncio.gather(a.reset(), b.reset())
            wrote = await a.step(
                {"tool": "write_file", "arguments": {"path": "solution/only_a.txt", "content": "A"}}
            )
            assert "only_a.txt" in wrote.observation["files"]
            seen_a, seen_b = await asyncio.gather(
                a.step({"command": "cat solution/only_a.txt; pwd"}),
                b.step({"command": "cat solution/only_a.txt; ls -R"}),
            )
            assert seen_a.observation["terminal"].startswith("A")
            assert "only_a.txt" not in seen_b.observation["files"]
            assert "No such file" in seen_b.observation["terminal"]
            assert "only_a" not in seen_b.observation["terminal"].replace(
                "cat: solution/only_a.txt", ""
            )

    asyncio.run(main())


def test_third_session_is_refused_past_max_sessions(server: Server) -> None:
    ws_url = server.base.replace("http", "ws", 1) + "/ws"

    async def main() -> None:
        a = GenericEnvClient(base_url=server.base)
        b = GenericEnvClient(base_url=server.base)
        async with a, b:
            await asyncio.gather(a.state(), b.state())  # both sessions exist
            async with connect(ws_url) as third:  # the server's refusal, as sent
                refusal = json.loads(await third.recv())
            assert refusal["type"] == "error" and refusal["data"]["code"] == "CAPACITY_REACHED"
            assert "2/2 sessions" in refusal["data"]["message"]
            # OpenEnv's client fails too (with the refusal, or the closed socket that follows)
            with pytest.raises((RuntimeError, ConnectionError, ConnectionClosed)):
                await GenericEnvClient(base_url=server.base).state()
        # the two sessions closed with their clients: a new one is accepted again
        async with GenericEnvClient(base_url=server.base) as d:
            assert (await d.state())["step_count"] == 0

    asyncio.run(main())


_KILLED_CLIENT = """
import sys
from openenv.core import GenericEnvClient
client = GenericEnvClient(base_url=sys.argv[1]).sync()
client.connect()
client.reset()
marker = "-".join(sys.argv[2:])  # given in parts: this process's command line lacks it
client.step({"command": f"(exec -a {marker} sleep 300) > /dev/null 2>&1 &"})
print("started", flush=True)
sys.stdin.read()  # until killed
"""


def test_killed_clients_session_is_reaped_with_its_sandbox(server: Server) -> None:
    marker = f"rebench-serve-test-{os.getpid()}-{time.monotonic_ns()}"
    client = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CLIENT, server.base, *marker.split("-", 1)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None and client.stdout.readline().strip() == "started"
        assert _wait_until(lambda: _sandbox_processes(marker), 10), "the process did not start"
        client.kill()
        client.wait()
        assert _wait_until(lambda: not _sandbox_processes(marker), 30), (
            "the killed client's sandbox processes are still running"
        )
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    with RunStore(server.db) as store:
        failed = [r for r in store.episodes(status="failed") if "session ended" in (r.error or "")]
    assert failed, "the abandoned episode was not recorded as failed"


def test_idle_session_is_reaped_but_a_long_step_is_not(server: Server) -> None:
    async def main() -> None:
        async with GenericEnvClient(base_url=server.base, message_timeout_s=120) as client:
            await client.reset()
            # busy for 4 idle timeouts: still the same session afterwards
            slow = await client.step({"command": "sleep 8; echo survived"})
            assert "survived" in slow.observation["terminal"]
            assert (await client.state())["step_count"] == 1
            await asyncio.sleep(9)  # idle: 2 s timeout, the reaper looks every 5 s
            with pytest.raises(Exception):  # noqa: B017 - closed by the server: any error
                await client.step({"command": "true"})

    asyncio.run(main())


# ----- bad input ---------------------------------------------------------------------------------
def test_malformed_messages_get_error_replies_and_the_server_stays_up(server: Server) -> None:
    ws_url = server.base.replace("http", "ws", 1) + "/ws"

    async def main() -> list[dict[str, Any]]:
        replies = []
        async with connect(ws_url) as ws:
            for message in (
                "this is not json",
                json.dumps({"type": "dance"}),
                json.dumps({"type": "step", "data": {"command": "ls"}}),  # before reset
                json.dumps({"type": "step", "data": {"bogus": 1}}),
                json.dumps({"type": "step", "data": {"command": "ls", "tool": "bash"}}),
                json.dumps({"type": "reset", "data": {"seed": "abc"}}),
                json.dumps({"type": "step"}),
            ):
                await ws.send(message)
                replies.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"type": "reset", "data": {"seed": 1}}))
            replies.append(json.loads(await ws.recv()))
        return replies

    replies = asyncio.run(main())
    *errors, ok = replies
    assert [r["type"] for r in errors] == ["error"] * 7
    codes = [r["data"]["code"] for r in errors]
    assert codes[:3] == ["INVALID_JSON", "UNKNOWN_TYPE", "EXECUTION_ERROR"]
    assert "reset()" in errors[2]["data"]["message"]
    assert codes[3:5] == ["VALIDATION_ERROR", "VALIDATION_ERROR"]
    assert "seed" in errors[5]["data"]["message"]
    assert ok["type"] == "observation"
    assert "masked prefix sum" in ok["data"]["observation"]["terminal"]
    assert _get(f"{server.base}/health") == 200


def test_stateless_http_reset_is_not_served(server: Server) -> None:
    # each would build a sandbox outside the session limit
    request = urllib.request.Request(f"{server.base}/reset", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=5)
    assert e.value.code in (404, 405)


# ----- the token (refused without one: test_app.py) ----------------------------------------------
def _non_loopback_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_every_request_needs_the_token_on_a_non_loopback_bind(cache: Path) -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    s = Server(cache, cache / "token.db", address, "--max-sessions", "1", token=TOKEN)
    try:
        assert _get(f"{s.base}/health") == 401
        assert _get(f"{s.base}/schema", {"Authorization": "Bearer wrong-token-xxxxxxxxxx"}) == 401
        assert _get(f"{s.base}/health", {"Authorization": f"Bearer {TOKEN}"}) == 200
        basic = base64.b64encode(f"rebench:{TOKEN}".encode()).decode()
        assert _get(f"{s.base}/schema", {"Authorization": f"Basic {basic}"}) == 200

        async def main() -> None:
            with pytest.raises(ConnectionError):
                await GenericEnvClient(base_url=s.base).connect()
            with pytest.raises(ConnectionError):
                await GenericEnvClient(base_url=f"http://rebench:nope@{address}:{s.port}").connect()
            authorized = f"http://rebench:{TOKEN}@{address}:{s.port}"
            async with GenericEnvClient(base_url=authorized) as client:
                first = await client.reset()
                assert "masked prefix sum" in first.observation["terminal"]

        asyncio.run(main())
    finally:
        assert s.stop() in (0, -signal.SIGTERM), s.output()


# ----- shutdown ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_shutdown_ends_a_running_step_and_closes_its_session(cache: Path) -> None:
    marker = f"rebench-serve-stop-{os.getpid()}-{time.monotonic_ns()}"
    s = Server(cache, cache / "stop.db", "127.0.0.1")
    client = subprocess.Popen(
        [sys.executable, "-c", _LONG_STEP_CLIENT, s.base, *marker.split("-", 1)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert _wait_until(lambda: _sandbox_processes(marker), 60), "the step did not start"
        started = time.monotonic()
        assert s.stop() in (0, -signal.SIGTERM), s.output()
        assert time.monotonic() - started < 40, "shutdown waited for the 300 s command"
        assert not _sandbox_processes(marker), "the sandbox outlived the server"
    finally:
        if client.poll() is None:
            client.kill()
        client.wait()
    with RunStore(cache / "stop.db") as store:
        (record,) = store.episodes()
    assert record.status == "failed" and "session ended" in (record.error or "")


_LONG_STEP_CLIENT = """
import sys
from openenv.core import GenericEnvClient
client = GenericEnvClient(base_url=sys.argv[1], message_timeout_s=600).sync()
client.connect()
client.reset()
marker = "-".join(sys.argv[2:])  # given in parts: this process's command line lacks it
client.step({"command": f"exec -a {marker} sleep 300"})
"""
