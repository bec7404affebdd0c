"""Performance benchmarks behind ``rebench bench``: each number is a ratio against a baseline
measured in the same run, so results compare across machines.

* step overhead: ``env.step("true")`` against a raw round trip to a persistent bash (the same
  marker protocol, no env) — target p50 overhead < 2 ms for local and bwrap;
* warm reset: ``env.reset()`` after the first one, against copying the starting workspace;
* files observation: a step with 50,000 files in the workspace against one with the starting
  workspace — target: within 1 ms;
* resource limits: a sandbox with the mini task's resources against one without (set-up,
  restart, step) — targets: set-up < 200 ms and step < 2 ms added;
* docker (when an engine and the mini image are there): the step also against one
  ``docker exec CONTAINER true`` per command and a raw persistent ``docker exec -i`` bash;
* ``rebench serve`` (extended, with the ``serve`` extra): a step through the server against
  ``env.step`` in process (target < 3 ms added p50), and ``sleep 0.5`` over 16 sessions
  against one (target >= 12x); see :mod:`rebench_gym.serve.bench`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def raw_bash_roundtrip(repeats: int, argv: list[str] | None = None) -> list[float]:
    """Seconds per ``true`` sent to a persistent bash through pipes, read to an end marker."""
    proc = subprocess.Popen(
        argv or ["bash", "--noprofile", "--norc"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,
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


def docker_available() -> bool:
    """Whether a Docker engine answers and the mini OptimizeKernel image is built."""
    try:
        from rebench_gym.sandbox.docker_images import find_image

        return find_image("optimize_kernel", "mini") is not None
    except Exception:
        return False


def docker_raw_times(repeats: int) -> dict[str, list[float]]:
    """Baselines for the docker sandbox, in a fresh container of the mini kernel image.

    Returns seconds per ``true`` for ``exec`` (one ``docker exec CONTAINER true`` per command,
    what a sandbox without a persistent shell pays) and ``persistent`` (a round trip to one
    long-lived ``docker exec -i CONTAINER bash``).
    """
    from rebench_gym.sandbox.docker_images import docker_client, find_image

    client = docker_client()
    container = client.containers.run(
        find_image("optimize_kernel", "mini"),
        ["sleep", "infinity"],
        detach=True,
        init=True,
        network_mode="none",
        labels={"rebench_gym": "1", "rebench_gym.role": "bench"},
    )
    try:
        exec_times: list[float] = []
        for _ in range(min(repeats, 30)):
            start = time.perf_counter()
            subprocess.run(["docker", "exec", container.id, "true"], check=True)
            exec_times.append(time.perf_counter() - start)
        shell = ["docker", "exec", "-i", container.id, "bash", "--noprofile", "--norc"]
        return {"exec": exec_times, "persistent": raw_bash_roundtrip(repeats, argv=shell)}
    finally:
        container.remove(force=True)


def env_step_times(sandbox: str, repeats: int) -> tuple[list[float], list[float], float, float]:
    """Step times for ``true``, warm reset times, copying the starting workspace, cold reset.

    The cold reset is the first ``reset()`` of a new env (sandbox start; assets cached).
    """
    import rebench_gym  # noqa: F401
    from rebench_gym.env import ReBenchEnv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make(
            "RE-Bench/OptimizeKernel-v0", scale="mini", sandbox=sandbox, anchors=(1.0, 0.0)
        )
        try:
            start = time.perf_counter()
            env.reset()
            cold = time.perf_counter() - start
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
    return steps, resets, statistics.median(copies), cold


def step_with_many_files(sandbox: str, repeats: int, files: int = 50_000) -> dict[str, float]:
    """``env.step("true")`` p50 with the starting workspace against the same env after
    ``files`` small files were added to it (as a virtualenv or a dataset would); target:
    within 1 ms."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make(
            "RE-Bench/OptimizeKernel-v0", scale="mini", sandbox=sandbox, anchors=(1.0, 0.0)
        )
        try:
            env.reset()

            def p50() -> float:
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    env.step("true")
                    times.append(time.perf_counter() - start)
                return statistics.median(times) * 1000

            empty = p50()
            make = "mkdir -p venv && cd venv && for d in $(seq 50); do mkdir p$d; (cd p$d && "
            make += f"touch $(seq -f f%g.py {files // 50})); done; cd .."
            env.step(json.dumps({"tool": "bash", "command": make, "timeout": 600}))
            full = p50()
        finally:
            env.close()
    return {"step_p50_ms_empty": empty, "step_p50_ms_files": full, "added_ms": full - empty}


def limits_overhead(sandbox: str, repeats: int) -> dict[str, float]:
    """What the resource limits cost: a sandbox made with the mini kernel task's resources
    (cgroup limits, a loop-device workspace filesystem, sized tmpfs) against one made without,
    same provider, same run: set-up (make + start, the part of an env's first ``reset()`` the
    limits add to), restart (``kill_all`` + ``start``: a warm ``reset()``) and ``exec("true")``."""
    from rebench_gym.sandbox import make_sandbox
    from rebench_gym.tasks import get_task

    resources = get_task("optimize_kernel").spec.scale("mini").resources
    out: dict[str, float] = {}
    for label, res in (("without", None), ("with", resources)):
        setups, restarts, steps = [], [], []
        for _ in range(3):
            root = Path(tempfile.mkdtemp(prefix="rebench-bench-"))
            ws = root / "ws"
            ws.mkdir()
            start = time.perf_counter()
            sb = make_sandbox(sandbox, ws, resources=res, image="optimize_kernel")
            try:
                sb.start()
                sb.exec("true", 10)
                setups.append(time.perf_counter() - start)
                for _ in range(3):
                    start = time.perf_counter()
                    sb.kill_all()
                    sb.start()
                    sb.exec("true", 10)
                    restarts.append(time.perf_counter() - start)
                for _ in range(max(1, repeats // 3)):
                    start = time.perf_counter()
                    sb.exec("true", 10)
                    steps.append(time.perf_counter() - start)
            finally:
                sb.close()
                shutil.rmtree(root, ignore_errors=True)
        out[f"setup_{label}_ms"] = statistics.median(setups) * 1000
        out[f"restart_{label}_ms"] = statistics.median(restarts) * 1000
        out[f"step_{label}_p50_ms"] = statistics.median(steps) * 1000
    out["setup_added_ms"] = out["setup_with_ms"] - out["setup_without_ms"]
    out["restart_added_ms"] = out["restart_with_ms"] - out["restart_without_ms"]
    out["step_added_p50_ms"] = out["step_with_p50_ms"] - out["step_without_p50_ms"]
    return out


def run_benchmarks(
    sandboxes: list[str] | None = None,
    repeats: int = 200,
    extended: bool = True,
    images: bool = False,
) -> dict[str, Any]:
    """Run every benchmark; returns numbers and a text table.

    ``extended`` adds vector throughput, driver memory with 8 envs and score-call times (these
    take a few minutes: mini assets are prepared where missing). ``images`` adds the mini
    images' build times and sizes (:func:`image_builds`; rebuilds them).
    """
    if sandboxes is None:
        sandboxes = ["local"] + (["bwrap"] if shutil.which("bwrap") else [])
        sandboxes += ["docker"] if docker_available() else []
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
        "warm reset ms | reset / copy | cold reset ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for sb in sandboxes:
        steps, resets, copy_s, cold = env_step_times(sb, repeats)
        p50, p90 = statistics.median(steps), _percentile(steps, 0.9)
        reset = statistics.median(resets)
        entry = {
            "step_p50_ms": p50 * 1000,
            "step_p90_ms": p90 * 1000,
            "overhead_p50_ms": (p50 - raw_p50) * 1000,
            "ratio_vs_raw": p50 / raw_p50,
            "warm_reset_ms": reset * 1000,
            "cold_reset_ms": cold * 1000,
            "workspace_copy_ms": copy_s * 1000,
            "reset_vs_copy": reset / copy_s if copy_s else float("nan"),
            "target_overhead_ms": 2.0,
            "meets_target": (p50 - raw_p50) * 1000 < 2.0,
        }
        report["sandboxes"][sb] = entry
        lines.append(
            f"| {sb} | {entry['step_p50_ms']:.3f} | {entry['step_p90_ms']:.3f} | "
            f"{entry['overhead_p50_ms']:.3f} | {entry['ratio_vs_raw']:.1f}x | "
            f"{entry['warm_reset_ms']:.1f} | {entry['reset_vs_copy']:.1f}x | "
            f"{entry['cold_reset_ms']:.0f} |"
        )
    lines += [
        "",
        "resource limits (the mini task's cpus, memory, disk against none; same provider, same "
        "run; targets: set-up < 200 ms added, step < 2 ms added):",
        "",
        "| sandbox | set-up ms without / with | restart ms without / with | "
        "step p50 ms without / with | added: set-up, restart, step ms |",
        "|---|---|---|---|---|",
    ]
    for sb in sandboxes:
        limits = limits_overhead(sb, repeats)
        report["sandboxes"][sb]["limits"] = limits
        lines.append(
            f"| {sb} | {limits['setup_without_ms']:.0f} / {limits['setup_with_ms']:.0f} | "
            f"{limits['restart_without_ms']:.1f} / {limits['restart_with_ms']:.1f} | "
            f"{limits['step_without_p50_ms']:.3f} / {limits['step_with_p50_ms']:.3f} | "
            f"{limits['setup_added_ms']:.0f}, {limits['restart_added_ms']:.1f}, "
            f"{limits['step_added_p50_ms']:.3f} |"
        )
    lines += [
        "",
        "files observation (env.step('true') p50 with the starting workspace, then with 50,000 "
        "more files in it; target: within 1 ms):",
        "",
        "| sandbox | starting workspace ms | + 50,000 files ms | added ms |",
        "|---|---|---|---|",
    ]
    for sb in sandboxes:
        flat = step_with_many_files(sb, max(20, repeats // 4))
        report["sandboxes"][sb]["many_files"] = flat
        lines.append(
            f"| {sb} | {flat['step_p50_ms_empty']:.3f} | {flat['step_p50_ms_files']:.3f} | "
            f"{flat['added_ms']:.3f} |"
        )
    if "docker" in sandboxes:
        raw_docker = docker_raw_times(repeats)
        exec_p50 = statistics.median(raw_docker["exec"])
        shell_p50 = statistics.median(raw_docker["persistent"])
        entry = report["sandboxes"]["docker"]
        entry["raw_docker_exec_p50_ms"] = exec_p50 * 1000
        entry["raw_docker_shell_roundtrip_p50_ms"] = shell_p50 * 1000
        entry["overhead_vs_docker_shell_p50_ms"] = entry["step_p50_ms"] - shell_p50 * 1000
        entry["docker_exec_vs_step"] = exec_p50 * 1000 / entry["step_p50_ms"]
        lines += [
            "",
            f"docker: raw `docker exec CONTAINER true` p50 {exec_p50 * 1000:.1f} ms; raw "
            f"persistent `docker exec -i` bash round trip p50 {shell_p50 * 1000:.3f} ms; "
            f"env.step('true') p50 {entry['step_p50_ms']:.3f} ms "
            f"({entry['docker_exec_vs_step']:.0f}x faster than one docker exec per command)",
        ]
    if images:
        report["images"], more = image_builds("mini")
        lines += more
    if extended:
        sandbox = "bwrap" if "bwrap" in sandboxes else sandboxes[0]
        report["extended"], more = run_extended(sandbox)
        lines += more
    report["text"] = "\n".join(lines)
    return report


def vector_throughput(
    sandbox: str, num_envs: int = 4, sleep_s: float = 0.5, steps: int = 3
) -> dict[str, float]:
    """Steps per second of a sleep-bound command: async vector env of ``num_envs`` vs one env."""
    import rebench_gym  # noqa: F401

    command = f"sleep {sleep_s}"
    kwargs: dict[str, Any] = {"scale": "mini", "sandbox": sandbox, "anchors": (1.0, 0.0)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single = gym.make("RE-Bench/OptimizeKernel-v0", **kwargs)
        try:
            single.reset()
            start = time.perf_counter()
            for _ in range(steps):
                single.step(command)
            one = steps / (time.perf_counter() - start)
        finally:
            single.close()
        envs = gym.make_vec(
            "RE-Bench/OptimizeKernel-v0",
            num_envs=num_envs,
            vectorization_mode="async",
            vector_kwargs={"context": "spawn"},
            **kwargs,
        )
        try:
            envs.reset()
            start = time.perf_counter()
            for _ in range(steps):
                envs.step((command,) * num_envs)
            many = steps * num_envs / (time.perf_counter() - start)
        finally:
            envs.close()
    return {
        "one_env_steps_per_s": one,
        "vector_steps_per_s": many,
        "ratio": many / one,
        "num_envs": num_envs,
    }


def ray_vector_throughput(
    sandbox: str, num_envs: int = 4, sleep_s: float = 0.5, steps: int = 3
) -> dict[str, float]:
    """Steps per second of a sleep-bound command: :class:`RayVectorEnv` vs one env, in one run.

    Uses the running Ray session, or starts a local one with ``num_envs`` CPUs (shut down
    after); each env's actor asks for ``1 / num_envs`` of the cluster's CPUs so all fit.
    """
    import ray

    import rebench_gym  # noqa: F401
    from rebench_gym.vector.ray_cluster import connect
    from rebench_gym.vector.ray_env import RayVectorEnv

    # a new session on loopback (127.0.0.1), or the one this process already has
    started = connect(None, check=False, num_cpus=num_envs, log_to_driver=False)
    try:
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        command = f"sleep {sleep_s}"
        kwargs: dict[str, Any] = {"scale": "mini", "sandbox": sandbox, "anchors": (1.0, 0.0)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            single = gym.make("RE-Bench/OptimizeKernel-v0", **kwargs)
            try:
                single.reset()
                start = time.perf_counter()
                for _ in range(steps):
                    single.step(command)
                one = steps / (time.perf_counter() - start)
            finally:
                single.close()
            envs = RayVectorEnv(
                "RE-Bench/OptimizeKernel-v0",
                num_envs,
                actor_options={"num_cpus": cpus / num_envs},
                **kwargs,
            )
            try:
                envs.reset()
                start = time.perf_counter()
                for _ in range(steps):
                    envs.step((command,) * num_envs)
                many = steps * num_envs / (time.perf_counter() - start)
            finally:
                envs.close()
    finally:
        if started:
            ray.shutdown()
    return {
        "one_env_steps_per_s": one,
        "vector_steps_per_s": many,
        "ratio": many / one,
        "num_envs": num_envs,
    }


def driver_memory(sandbox: str, num_envs: int = 8) -> dict[str, float]:
    """Resident memory of this (driving) process before and with ``num_envs`` envs reset."""
    import rebench_gym  # noqa: F401

    def rss_mib() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    before = rss_mib()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        envs = [
            gym.make(
                "RE-Bench/OptimizeKernel-v0", scale="mini", sandbox=sandbox, anchors=(1.0, 0.0)
            )
            for _ in range(num_envs)
        ]
        try:
            for env in envs:
                env.reset()
                env.step("head -c 10000000 /dev/zero | tr '\\0' x")  # 10 MB of output each
            during = rss_mib()
        finally:
            for env in envs:
                env.close()
    return {
        "rss_before_mib": before,
        "rss_with_envs_mib": during,
        "num_envs": num_envs,
        "target_mib": 1024.0,
    }


def score_call_times(sandbox: str) -> dict[str, float]:
    """Seconds of one score call of the starting solution, per task at mini scale."""
    import rebench_gym

    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for env_id in rebench_gym.ENV_IDS:
            env = gym.make(env_id, scale="mini", sandbox=sandbox, anchors=(1.0, 0.0))
            try:
                env.reset()  # prepares assets if needed (not timed)
                start = time.perf_counter()
                env.step("score")
                out[env_id] = time.perf_counter() - start
            finally:
                env.close()
    return out


def image_builds(scale: str = "mini") -> tuple[dict[str, Any], list[str]]:
    """Build times and sizes of every task's image at ``scale`` (wheels already cached on the
    host, so downloads are not counted): cold = the shared base and the first task's image
    from the root image; warm = each task's image alone on the existing base. Rebuilds the
    images (they end up as before: same recipes, same tags)."""
    from rebench_gym.envs.registration import ENV_IDS, task_name
    from rebench_gym.sandbox.docker_images import (
        DEFAULT_BASE_IMAGES,
        build_image,
        docker_client,
        shared_base_tag,
    )

    client = docker_client()
    ids = sorted(ENV_IDS)
    build_image(ids[0], scale)  # the wheels into the cache, the base present
    start = time.perf_counter()
    build_image(ids[0], scale, force=True)  # base and first task from the root image
    cold = time.perf_counter() - start
    root_id = client.images.get(DEFAULT_BASE_IMAGES[scale]).id
    base_size = int(client.images.get(shared_base_tag(scale, root_id)).attrs["Size"])
    out: dict[str, Any] = {"cold_s": cold, "base_bytes": base_size, "tasks": {}}
    lines = [
        "",
        f"{scale} images (wheels cached): shared base + {ids[0]} cold {cold:.0f} s; base "
        f"{base_size / 1e9:.2f} GB",
        "",
        "| task | warm build s (on the base) | image GB | added to the base MB |",
        "|---|---|---|---|",
    ]
    for env_id in ids:
        tag = build_image(env_id, scale)
        client.images.remove(tag, force=True)
        start = time.perf_counter()
        tag = build_image(env_id, scale)
        warm = time.perf_counter() - start
        size = int(client.images.get(tag).attrs["Size"])
        out["tasks"][task_name(env_id)] = {"warm_s": warm, "bytes": size}
        lines.append(
            f"| {env_id} | {warm:.1f} | {size / 1e9:.2f} | {(size - base_size) / 1e6:.0f} |"
        )
    return out, lines


def run_extended(sandbox: str) -> tuple[dict[str, Any], list[str]]:
    """Vector throughput, driver memory and score-call times, as data and table lines."""
    vec = vector_throughput(sandbox)
    ray_vec: dict[str, float] | None = None
    with contextlib.suppress(ImportError):
        ray_vec = ray_vector_throughput(sandbox)
    mem = driver_memory(sandbox)
    scores = score_call_times(sandbox)
    served: dict[str, Any] | None = None
    serve_lines: list[str] = ["rebench serve: not measured (pip install 'rebench-gym[serve]')"]
    with contextlib.suppress(ImportError):
        from rebench_gym.serve.bench import serve_benchmarks
        from rebench_gym.serve.bench import serve_lines as serve_rows

        served = serve_benchmarks(sandbox)
        serve_lines = serve_rows(served)
    lines = [
        "",
        f"vector throughput ({sandbox}, `sleep 0.5` on {vec['num_envs']} async envs): "
        f"{vec['vector_steps_per_s']:.2f} steps/s vs {vec['one_env_steps_per_s']:.2f} for one "
        f"env = {vec['ratio']:.1f}x (target >= 3x)",
        *(
            [
                f"Ray vector throughput ({sandbox}, `sleep 0.5` on {ray_vec['num_envs']} "
                f"RayVectorEnv actors): {ray_vec['vector_steps_per_s']:.2f} steps/s vs "
                f"{ray_vec['one_env_steps_per_s']:.2f} for one env = {ray_vec['ratio']:.1f}x "
                "(target >= 3x)"
            ]
            if ray_vec
            else ["Ray vector throughput: not measured (pip install 'rebench-gym[ray]')"]
        ),
        f"driver memory with {mem['num_envs']} envs ({sandbox}, each printed 10 MB): "
        f"{mem['rss_with_envs_mib']:.0f} MiB resident (before: {mem['rss_before_mib']:.0f} MiB; "
        "target < 1024 MiB)",
        "",
        "| task (mini) | score call s | target |",
        "|---|---|---|",
        *[f"| {k} | {v:.1f} | < 60 |" for k, v in scores.items()],
    ]
    lines += ["", *serve_lines]
    report = {"vector": vec, "ray_vector": ray_vec, "memory": mem, "score_call_s": scores}
    return report | {"serve": served}, lines


# ----- score-call cost (rebench bench --scoring) ------------------------------------------------


def _scored_reference_calls(
    env_id: str, sandbox: str, repeats: int, path: str
) -> tuple[float, list[float], list[dict[str, float]], str]:
    """Seconds of the first score call of an episode of the task's mini reference solution on
    scoring path ``path`` ("fast" or "baseline", see :func:`procs.fast_scoring`), seconds and
    phases of the ``repeats`` calls after it, and the last score message (prefixed "start: "
    where the starting solution was scored instead: a reference whose files alone do not
    score, as one that must first be trained, would time a call that stops early). The first
    call of an episode also starts what a scorer keeps for the episode (a warm parent)."""
    from rebench_gym import procs
    from rebench_gym.tasks import phases

    totals: list[float] = []
    logs: list[dict[str, float]] = []
    message = ""
    before = os.environ.get(procs.SCORING_PATH_ENV)
    os.environ[procs.SCORING_PATH_ENV] = path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env = gym.make(env_id, scale="mini", sandbox=sandbox, anchors=(1.0, 0.0))
            inner: Any = env.unwrapped

            def write_reference() -> None:
                for rel, data in inner.task.reference_files("mini").items():
                    inner.sandbox.write_file(f"solution/{rel}", data)

            try:
                env.reset()  # prepares assets if needed (not timed)
                write_reference()
                solution = ""
                if not inner.score_now().valid:  # (not timed) the reference needs its run
                    solution = "start: "
                env.reset()  # a new episode: its first call is timed on its own
                if not solution:
                    write_reference()
                start = time.perf_counter()
                inner.score_now()
                first = time.perf_counter() - start
                for _ in range(repeats):
                    with phases.recording() as log:
                        start = time.perf_counter()
                        result = inner.score_now()
                        totals.append(time.perf_counter() - start)
                    logs.append(dict(log.seconds))
                    message = solution + ("" if result.valid else "invalid: ") + result.message
            finally:
                env.close()
    finally:
        if before is None:
            os.environ.pop(procs.SCORING_PATH_ENV, None)
        else:
            os.environ[procs.SCORING_PATH_ENV] = before
    return first, totals, logs, message


def _median_phases(logs: list[dict[str, float]], totals: list[float]) -> dict[str, float]:
    """Per phase the median over calls, plus ``other`` (total minus the recorded phases)."""
    from rebench_gym.tasks.phases import PHASES

    out = {name: statistics.median(log.get(name, 0.0) for log in logs) for name in PHASES}
    out["other"] = statistics.median(
        total - sum(log.values()) for total, log in zip(totals, logs, strict=True)
    )
    return out


def calibration_time(env_id: str, path: str, repeats: int) -> float:
    """Seconds ``calibrate`` takes for ``env_id`` at mini scale on scoring path ``path`` (its
    ``repeats`` start and reference score calls, in the local sandbox as `rebench calibrate`)."""
    from rebench_gym import procs
    from rebench_gym.calibration import calibrate
    from rebench_gym.envs.registration import task_name
    from rebench_gym.tasks import get_task

    before = os.environ.get(procs.SCORING_PATH_ENV)
    os.environ[procs.SCORING_PATH_ENV] = path
    try:
        start = time.perf_counter()
        calibrate(get_task(task_name(env_id)), "mini", repeats=repeats, progress=False)
        return time.perf_counter() - start
    finally:
        if before is None:
            os.environ.pop(procs.SCORING_PATH_ENV, None)
        else:
            os.environ[procs.SCORING_PATH_ENV] = before


def scoring_costs(
    sandbox: str = "bwrap",
    repeats: int = 5,
    env_ids: list[str] | None = None,
    calibration_repeats: int = 5,
) -> dict[str, Any]:
    """``rebench bench --scoring``: where each mini task's score call spends its time.

    Each task's mini reference solution is scored ``repeats`` times in a fresh env; tasks with
    a fast scoring path (``fast_scoring_path``) are also scored on the baseline path in the same
    run, so "speed-up" is a ratio of p50s measured side by side. Targets (issue #27): every mini
    task's score call >= 2x faster than the baseline; the kernel's p50 within 3x of its own
    checks plus timed work (warm-ups, timed calls and their verification, as recorded). The
    kernel's calibration (``calibration_repeats`` start and reference score calls) is timed on
    both paths too.
    """
    import rebench_gym
    from rebench_gym.tasks.phases import PHASES

    ids = env_ids or sorted(rebench_gym.ENV_IDS)
    columns = [*PHASES, "other"]
    report: dict[str, Any] = {"sandbox": sandbox, "repeats": repeats, "tasks": {}}
    lines = [
        f"score-call cost ({sandbox}, the mini reference solution (the starting one where "
        f"the reference must first be trained: 'start:'), per path the first call of an "
        f"episode (1st s: it also starts what a scorer keeps for the episode) and {repeats} "
        "calls after it; p50 seconds per phase; other = snapshot of solution/, pausing the "
        "agent, score log):",
        "",
        "| task | path | 1st s | p50 s | " + " | ".join(columns) + " | speed-up | score |",
        "|---|---|---|---|" + "---|" * len(columns) + "---|---|",
    ]
    for env_id in ids:
        from rebench_gym.envs.registration import task_name
        from rebench_gym.tasks import get_task

        fast_path = bool(getattr(get_task(task_name(env_id)), "fast_scoring_path", False))
        entry: dict[str, Any] = {}
        for path in ("fast", "baseline") if fast_path else ("fast",):
            try:
                first, totals, logs, message = _scored_reference_calls(
                    env_id, sandbox, repeats, path
                )
            except Exception as err:  # a task that cannot run here is reported, not fatal
                why = f"{type(err).__name__}: {err}"
                entry[path] = {"error": why}
                lines.append(f"| {env_id} | {path} | not measured: {why} |")
                continue
            p50 = statistics.median(totals)
            entry[path] = {
                "p50_s": p50,
                "first_call_s": first,
                "calls_s": totals,
                "phases_p50_s": _median_phases(logs, totals),
                "message": message,
            }
        fast, base = entry.get("fast", {}), entry.get("baseline", {})
        if "p50_s" in fast and "p50_s" in base:
            entry["speedup"] = base["p50_s"] / fast["p50_s"]
            entry["target_speedup"] = 2.0
            entry["meets_speedup"] = entry["speedup"] >= 2.0
        if "p50_s" in fast and env_id.endswith("OptimizeKernel-v0"):
            ph = fast["phases_p50_s"]
            work = ph["checks"] + ph["timed work"]
            entry["work_s"] = work
            entry["p50_vs_work"] = fast["p50_s"] / work if work else float("nan")
            entry["target_vs_work"] = 3.0
        for path in ("fast", "baseline"):
            e = entry.get(path)
            if not e or "p50_s" not in e:
                continue
            ph = e["phases_p50_s"]
            speed = f"{entry['speedup']:.1f}x" if path == "fast" and "speedup" in entry else ""
            if path == "fast" and not fast_path:
                speed = "no fast path yet"
            lines.append(
                f"| {env_id} | {path} | {e['first_call_s']:.2f} | {e['p50_s']:.2f} | "
                + " | ".join(f"{ph[c]:.2f}" for c in columns)
                + f" | {speed} | {e['message'][:60].splitlines()[0]} |"
            )
        report["tasks"][env_id] = entry
    kernel = next((k for k in ids if k.endswith("OptimizeKernel-v0")), None)
    if kernel is not None and "work_s" in report["tasks"][kernel]:
        k = report["tasks"][kernel]
        lines += [
            "",
            f"kernel score call p50 {k['fast']['p50_s']:.2f} s = {k['p50_vs_work']:.1f}x its own "
            f"checks + timed work ({k['work_s']:.2f} s; target <= 3x)"
            + (
                f"; {k['speedup']:.1f}x faster than the baseline path (target >= 2x)"
                if "speedup" in k
                else ""
            ),
        ]
    if kernel is not None and calibration_repeats:
        calib = {
            path: calibration_time(kernel, path, calibration_repeats)
            for path in ("fast", "baseline")
        }
        report["calibration_s"] = calib
        lines.append(
            f"kernel calibration ({2 * calibration_repeats} score calls, local sandbox): "
            f"{calib['fast']:.0f} s vs {calib['baseline']:.0f} s on the baseline path "
            f"({calib['baseline'] / calib['fast']:.1f}x)"
        )
    report["text"] = "\n".join(lines)
    return report
