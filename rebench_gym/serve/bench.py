"""``rebench bench`` rows for ``rebench serve``: what the server adds to a step, and how its
sessions overlap. Both are ratios against a baseline measured in the same run:

* step overhead: ``{"command": "true"}`` through the server (OpenEnv's async client, loopback
  WebSocket) against ``env.step("true")`` in process — target: < 3 ms added at p50;
* concurrency: steps per second of ``sleep 0.5`` over 16 sessions against one — target >= 12x.

The server is a separate process (``serve`` with seeded anchors, a scratch run store), as a
trainer's would be.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym

ENV_ID = "RE-Bench/OptimizeKernel-v0"
_SERVER = """
import sys
from rebench_gym.runs import RunOptions
from rebench_gym.serve import serve
options = RunOptions(sys.argv[1], "bench", scale="mini", sandbox=sys.argv[2],
                     make_kwargs={"anchors": (1.0, 0.0)}, db=sys.argv[3])
serve(options, port=int(sys.argv[4]), max_sessions=int(sys.argv[5]), idle_timeout=None)
"""


class _BenchServer:
    """A ``rebench serve`` process on a free loopback port, stopped on exit."""

    def __init__(self, sandbox: str, max_sessions: int) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="rebench-serve-bench-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        db = str(Path(self._dir.name) / "runs.db")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, ENV_ID, sandbox, db, str(self.port), str(max_sessions)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/health", timeout=2):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("the benchmark server did not start") from None
                time.sleep(0.2)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._dir.cleanup()

    def __enter__(self) -> _BenchServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _in_process_step_times(sandbox: str, repeats: int) -> list[float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make(ENV_ID, scale="mini", sandbox=sandbox, anchors=(1.0, 0.0))
    try:
        env.reset()
        times = []
        for i in range(repeats + 10):
            start = time.perf_counter()
            env.step("true")
            if i >= 10:
                times.append(time.perf_counter() - start)
        return times
    finally:
        env.close()


async def _served_step_times(base: str, repeats: int) -> list[float]:
    from openenv.core import GenericEnvClient

    times = []
    async with GenericEnvClient(base_url=base) as client:
        await client.reset()
        for i in range(repeats + 10):
            start = time.perf_counter()
            await client.step({"command": "true"})
            if i >= 10:
                times.append(time.perf_counter() - start)
    return times


async def _served_throughput(base: str, sessions: int, steps: int, command: str) -> float:
    """Steps per second of ``command`` with ``sessions`` sessions stepping concurrently."""
    from openenv.core import GenericEnvClient

    clients = [GenericEnvClient(base_url=base, message_timeout_s=300) for _ in range(sessions)]
    try:
        await asyncio.gather(*(c.reset() for c in clients))

        async def play(client: Any) -> None:
            for _ in range(steps):
                await client.step({"command": command})

        start = time.perf_counter()
        await asyncio.gather(*(play(c) for c in clients))
        return sessions * steps / (time.perf_counter() - start)
    finally:
        await asyncio.gather(*(c.close() for c in clients))


def serve_benchmarks(
    sandbox: str, repeats: int = 200, sessions: int = 16, sleep_s: float = 0.5, steps: int = 3
) -> dict[str, Any]:
    """The two ``rebench serve`` rows: step overhead and concurrent-session throughput."""
    local = _in_process_step_times(sandbox, repeats)
    with _BenchServer(sandbox, max_sessions=sessions) as server:
        served = asyncio.run(_served_step_times(server.base, repeats))
        command = f"sleep {sleep_s}"
        one = asyncio.run(_served_throughput(server.base, 1, steps, command))
        many = asyncio.run(_served_throughput(server.base, sessions, steps, command))
    local_p50, served_p50 = statistics.median(local), statistics.median(served)
    return {
        "sandbox": sandbox,
        "in_process_step_p50_ms": local_p50 * 1000,
        "served_step_p50_ms": served_p50 * 1000,
        "added_p50_ms": (served_p50 - local_p50) * 1000,
        "target_added_ms": 3.0,
        "sessions": sessions,
        "one_session_steps_per_s": one,
        "sessions_steps_per_s": many,
        "ratio": many / one,
        "target_ratio": 12.0,
    }


def serve_lines(row: dict[str, Any]) -> list[str]:
    """The rows as ``rebench bench`` prints them."""
    return [
        f"rebench serve step overhead ({row['sandbox']}, OpenEnv client over loopback): "
        f"{row['served_step_p50_ms']:.3f} ms p50 vs {row['in_process_step_p50_ms']:.3f} ms "
        f"in process = {row['added_p50_ms']:.3f} ms added (target < 3 ms)",
        f"rebench serve throughput (`sleep 0.5` on {row['sessions']} sessions): "
        f"{row['sessions_steps_per_s']:.2f} steps/s vs {row['one_session_steps_per_s']:.2f} for "
        f"one session = {row['ratio']:.1f}x (target >= 12x)",
    ]


__all__ = ["serve_benchmarks", "serve_lines"]
