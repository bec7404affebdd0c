"""Performance benchmarks behind ``rebench bench``: each number is a ratio against a baseline
measured in the same run, so results compare across machines.

* step overhead: ``env.step("true")`` against a raw round trip to a persistent bash (the same
  marker protocol, no env) — target p50 overhead < 2 ms for local and bwrap;
* warm reset: ``env.reset()`` after the first one, against copying the starting workspace.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
import warnings
from typing import Any

import gymnasium as gym


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def raw_bash_roundtrip(repeats: int) -> list[float]:
    """Seconds per ``true`` sent to a persistent bash through pipes, read to an end marker."""
    proc = subprocess.Popen(
        ["bash", "--noprofile", "--norc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
    )
    assert proc.stdin is not None and proc.stdout is not None
    times: list[float] = []
    try:
        for i in range(repeats + 10):
            marker = f"__M{i}__".encode()
            start = time.perf_counter()
            proc.stdin.write(b"true; printf '%s\\n' " + marker + b"\n")
            buf = b""
            while marker not in buf:
                buf += os.read(proc.stdout.fileno(), 65536)
            if i >= 10:
                times.append(time.perf_counter() - start)
    finally:
        proc.kill()
        proc.wait()
    return times


def env_step_times(sandbox: str, repeats: int) -> tuple[list[float], list[float], float]:
    """Step times for ``true``, warm reset times, and the time to copy the starting workspace."""
    import rebench_gym  # noqa: F401
    from rebench_gym.env import ReBenchEnv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make(
            "RE-Bench/OptimizeKernel-v0", scale="mini", sandbox=sandbox, anchors=(1.0, 0.0)
        )
        try:
            env.reset()
            for _ in range(10):
                env.step("true")
            steps = []
            for _ in range(repeats):
                start = time.perf_counter()
                env.step("true")
                steps.append(time.perf_counter() - start)
            resets = []
            for _ in range(5):
                start = time.perf_counter()
                env.reset()
                resets.append(time.perf_counter() - start)
            base = env.unwrapped
            assert isinstance(base, ReBenchEnv)
            src = base.task.package_dir / "workspace"
            copies = []
            for _ in range(5):
                dst = tempfile.mkdtemp()
                start = time.perf_counter()
                shutil.copytree(src, dst, dirs_exist_ok=True)
                copies.append(time.perf_counter() - start)
                shutil.rmtree(dst)
        finally:
            env.close()
    return steps, resets, statistics.median(copies)


def run_benchmarks(sandboxes: list[str] | None = None, repeats: int = 200) -> dict[str, Any]:
    """Run every benchmark; returns numbers and a text table."""
    if sandboxes is None:
        sandboxes = ["local"] + (["bwrap"] if shutil.which("bwrap") else [])
    raw = raw_bash_roundtrip(repeats)
    raw_p50 = statistics.median(raw)
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "raw_bash_roundtrip_p50_ms": raw_p50 * 1000,
        "sandboxes": {},
    }
    lines = [
        f"machine: {report['machine']}",
        f"raw persistent-bash round trip p50: {raw_p50 * 1000:.3f} ms",
        "",
        "| sandbox | step p50 ms | step p90 ms | overhead p50 ms | ratio | "
        "warm reset ms | reset / copy |",
        "|---|---|---|---|---|---|---|",
    ]
    for sb in sandboxes:
        steps, resets, copy_s = env_step_times(sb, repeats)
        p50, p90 = statistics.median(steps), _percentile(steps, 0.9)
        reset = statistics.median(resets)
        entry = {
            "step_p50_ms": p50 * 1000,
            "step_p90_ms": p90 * 1000,
            "overhead_p50_ms": (p50 - raw_p50) * 1000,
            "ratio_vs_raw": p50 / raw_p50,
            "warm_reset_ms": reset * 1000,
            "workspace_copy_ms": copy_s * 1000,
            "reset_vs_copy": reset / copy_s if copy_s else float("nan"),
            "target_overhead_ms": 2.0,
            "meets_target": (p50 - raw_p50) * 1000 < 2.0,
        }
        report["sandboxes"][sb] = entry
        lines.append(
            f"| {sb} | {entry['step_p50_ms']:.3f} | {entry['step_p90_ms']:.3f} | "
            f"{entry['overhead_p50_ms']:.3f} | {entry['ratio_vs_raw']:.1f}x | "
            f"{entry['warm_reset_ms']:.1f} | {entry['reset_vs_copy']:.1f}x |"
        )
    report["text"] = "\n".join(lines)
    return report
