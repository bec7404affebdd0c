"""Every provider enforces its task's resources: memory (``/tmp`` included), workspace disk,
CPUs, processes; what it cannot enforce is named at reset; nothing leaks past ``close()``.

The limits need root (cgroups, loop devices), as CI has; without it the tests that check an
enforced limit are skipped with the reason, and the warning test checks the other side.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest

from rebench_gym.errors import UnenforcedLimitWarning, UsageError
from rebench_gym.sandbox import make_sandbox
from rebench_gym.sandbox.resources import (
    Gpu,
    Resources,
    WorkspaceDisk,
    mounts_below,
    parse_gpu_list,
    pick_gpus,
)
from tests.conftest import SANDBOXES
from tests.sandbox.test_docker import _SKIP as DOCKER_SKIP

KERNEL = "RE-Bench/OptimizeKernel-v0"
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="cgroups and loop devices need root")
PROVIDERS = [
    *SANDBOXES,
    pytest.param(
        "docker",
        marks=[
            pytest.mark.docker,
            pytest.mark.skipif(DOCKER_SKIP is not None, reason=str(DOCKER_SKIP)),
        ],
    ),
]
#: 1 GiB of memory and 1 GiB of workspace: small enough to hit fast
SMALL = {"memory_gb": 1, "disk_gb": 1}


def _loop_backing_files() -> set[str]:
    found = set()
    for p in Path("/sys/block").glob("loop*"):
        backing = p / "loop" / "backing_file"
        if backing.exists():
            found.add(backing.read_text().strip())
    return found


@pytest.fixture
def small_env(request: pytest.FixtureRequest) -> Iterator[gym.Env]:  # type: ignore[type-arg]
    env = gym.make(KERNEL, scale="mini", sandbox=request.param, sandbox_options=SMALL)
    yield env
    env.close()


def _run(env: gym.Env, command: str) -> str:  # type: ignore[type-arg]
    obs, *_ = env.step(command)
    return str(obs["terminal"])


@needs_root
@pytest.mark.parametrize("small_env", PROVIDERS, indirect=True)
def test_memory_tmp_disk_and_forks_are_bounded_and_the_shell_comes_back(
    small_env: gym.Env,  # type: ignore[type-arg]
) -> None:
    env = small_env
    _, info = env.reset()
    res = info["resources"]
    assert res["declared"]["memory_gb"] == 1 and res["declared"]["disk_gb"] == 1
    assert {"memory", "disk", "pids"} <= set(res["enforced"]), res
    name = env.unwrapped.sandbox_name

    out = _run(env, "python3 -c 'b = bytearray(3 << 30)'; echo survived")
    assert "[killed: out of memory, limit 1 GiB]" in out and "survived" in out
    assert "hello" in _run(env, "echo hello")

    if name != "local":  # local shares the host's /tmp (and says so)
        out = _run(env, "head -c 2G /dev/zero > /tmp/big; echo rc=$?; rm -f /tmp/big")
        assert "No space left on device" in out, out
        assert "hello" in _run(env, "echo hello")

    out = _run(env, "head -c 2G /dev/zero > big.bin; echo rc=$?; du -m big.bin")
    assert "No space left on device" in out, out
    used_mb = int(out.split("rc=")[1].split()[1])
    assert 800 < used_mb <= 1024
    assert "gone" in _run(env, "rm big.bin && echo gone")

    out = _run(env, "for i in $(seq 20000); do sleep 30 & done 2>&1 | tail -1; echo next")
    assert "next" in out
    env.reset()  # kills the sleepers
    assert "hello" in _run(env, "echo hello")

    sandbox = env.unwrapped.sandbox
    workspace = sandbox.workspace
    cgroup = getattr(sandbox, "cgroup", None)  # docker: the container's, removed with it
    image = str(sandbox._disk.image)
    assert image in _loop_backing_files()
    env.close()
    assert not mounts_below(workspace.parent)
    assert not workspace.parent.exists()
    assert image not in _loop_backing_files()
    if cgroup is not None:
        assert not any(p.exists() for p in cgroup.paths.values())


@needs_root
def test_a_two_env_vector_run_and_its_store_survive_one_env_exhausting_its_limits(
    tmp_path: Path,
) -> None:
    from rebench_gym.results import EpisodeSpec, RunStore, StoreRecorder

    store = RunStore(tmp_path / "runs.db")
    kwargs = {"scale": "mini", "sandbox": "bwrap", "sandbox_options": SMALL}
    spec = EpisodeSpec.for_env(KERNEL, "scripted", make_kwargs=kwargs)
    run_id = store.open_run(spec, 2)
    envs = []
    for i in range(2):
        env = gym.make(KERNEL, **kwargs)  # type: ignore[arg-type]
        envs.append(StoreRecorder(env, store, store.begin_episode(run_id, i, spec)))
    vec = gym.vector.SyncVectorEnv([lambda e=e: e for e in envs])  # type: ignore[misc]
    try:
        vec.reset()
        hog = "python3 -c 'b = bytearray(3 << 30)'; head -c 2G /dev/zero > big.bin; echo done"
        obs, *_ = vec.step((hog, "echo neighbour ok && ls"))
        assert "[killed: out of memory" in obs["terminal"][0]
        assert "neighbour ok" in obs["terminal"][1] and "big.bin" not in obs["terminal"][1]
        obs, *_ = vec.step(("echo still here", "echo still here"))
        assert all("still here" in t for t in obs["terminal"])
    finally:
        vec.close()
    records = store.episodes(run_id=run_id)
    assert len(records) == 2
    for rec in records:
        assert rec.resources is not None
        assert rec.resources["declared"]["memory_gb"] == 1
        assert "memory" in rec.resources["enforced"]
    store.close()


@needs_root
@pytest.mark.slow
def test_a_score_call_killed_for_memory_is_invalid_and_says_so() -> None:
    env = gym.make(KERNEL, scale="mini", sandbox="bwrap", sandbox_options=SMALL)
    try:
        env.reset()
        hog = "hog = bytearray(3 << 30)\n"
        env.unwrapped.sandbox.write_file("solution/solution.py", hog.encode())
        _, _, _, _, info = env.step("score")
        assert info["score"]["valid"] is False
        assert "[killed: out of memory, limit 1 GiB]" in info["score"]["message"]
        assert "hello" in _run(env, "echo hello")
    finally:
        env.close()


@needs_root
@pytest.mark.slow
def test_agent_busy_loops_do_not_slow_a_timed_score_call() -> None:
    env = gym.make(KERNEL, scale="mini", sandbox="bwrap")
    try:
        env.reset()
        ref = env.unwrapped.task.reference_files("mini")
        for path, data in ref.items():
            env.unwrapped.sandbox.write_file(path, data)

        def best_raw() -> float:
            raws = []
            for _ in range(2):
                _, _, _, _, info = env.step("score")
                assert info["score"]["valid"], info["score"]
                raws.append(info["score"]["raw"])
            return min(raws)

        quiet = best_raw()
        _run(env, "for i in 1 2; do (while :; do :; done) & done; echo started")
        busy = best_raw()
        assert _run(env, "jobs -rp | wc -l").startswith("2")  # the loops ran on meanwhile
        # raw is ln(ms): a scored run that had to share its CPUs with two busy loops would be
        # ~ln(2) slower; within noise means well under that
        assert busy - quiet < 0.35, (quiet, busy)
    finally:
        env.close()


def test_local_warns_once_at_reset_about_what_it_cannot_enforce() -> None:
    env = gym.make(KERNEL, scale="mini", sandbox="local", sandbox_options=SMALL)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, info = env.reset()
            env.reset()
        ours = [w for w in caught if issubclass(w.category, UnenforcedLimitWarning)]
        assert len(ours) == 1
        assert "tmp: sandbox 'local' shares the host's /tmp" in str(ours[0].message)
        assert "tmp" in info["resources"]["unenforced"]
    finally:
        env.close()


def test_resource_options_override_scale_and_are_validated(tmp_path: Path) -> None:
    base = Resources(cpus=2, memory_gb=4, disk_gb=8)
    assert base.with_options({"memory_gb": 2}).memory_gb == 2
    scaled = base.with_options({"resource_scale": 0.5, "cpus": 4})
    assert (scaled.cpus, scaled.memory_gb, scaled.disk_gb) == (2, 2, 4)
    pinned = base.with_options({"gpus": ["GPU-a", "1"]})
    assert pinned.gpus == 2 and pinned.gpu_ids == ("GPU-a", "1")
    for bad in ({"memory_gb": 0}, {"gpus": -1}, {"gpus": ["0", "0"]}, {"resource_scale": "x"}):
        with pytest.raises(UsageError):
            base.with_options(bad)
    with pytest.raises(UsageError, match="this sandbox has none"):
        make_sandbox("local", tmp_path, options={"memory_gb": 1})
    with pytest.raises(UsageError, match="unknown key"):
        Resources.parse({"cpus": 1, "memory_gb": 1, "disk_gb": 1, "ram": 3}, "x")


def test_gpus_are_picked_by_index_or_uuid_and_missing_ones_are_named() -> None:
    listing = "0, GPU-aaaa\n1, GPU-bbbb\nbad line\n"
    gpus = parse_gpu_list(listing)
    assert gpus == [Gpu(0, "GPU-aaaa"), Gpu(1, "GPU-bbbb")]
    two = Resources(cpus=1, memory_gb=1, disk_gb=1, gpus=2)
    assert pick_gpus(two, gpus, None) == (gpus, None)
    one = Resources(cpus=1, memory_gb=1, disk_gb=1, gpus=1)
    assert pick_gpus(one, gpus, ["1"]) == ([gpus[1]], None)
    assert pick_gpus(one.with_options({"gpus": ["GPU-bbbb"]}), gpus, ["0"])[0] == [gpus[1]]
    chosen, why = pick_gpus(two, [], None)
    assert chosen == [] and why is not None and "no NVIDIA GPU found" in why
    assert pick_gpus(Resources(cpus=1, memory_gb=1, disk_gb=1), gpus, None) == ([], None)


@needs_root
def test_a_workspace_disk_needs_an_empty_directory_and_leaves_nothing(tmp_path: Path) -> None:
    if WorkspaceDisk.unavailable():
        pytest.skip(str(WorkspaceDisk.unavailable()))
    ws = tmp_path / "ws"
    ws.mkdir()
    disk = WorkspaceDisk.mount(ws, 64 * 2**20)
    assert mounts_below(ws) == [str(ws)]
    assert list(ws.iterdir()) == []  # no lost+found for the agent
    disk.unmount()
    assert not mounts_below(ws) and not disk.image.exists()
    (ws / "f").write_text("x")
    from rebench_gym.errors import SandboxUnavailableError

    with pytest.raises(SandboxUnavailableError, match="must be empty"):
        WorkspaceDisk.mount(ws, 64 * 2**20)
    shutil.rmtree(ws)


@pytest.mark.parametrize("name", SANDBOXES)
def test_without_a_workspace_filesystem_a_watchdog_stops_the_writer(
    name: str, tmp_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as on a machine where the driver is not root (no loop devices for it)
    monkeypatch.setattr(WorkspaceDisk, "unavailable", staticmethod(lambda: "not root"))
    resources = Resources(cpus=1, memory_gb=2, disk_gb=0.1)
    sb = make_sandbox(name, tmp_workspace, resources=resources)
    try:
        sb.start()
        assert "watchdog" in sb.enforcement.unenforced["disk"]
        slow = "for i in $(seq 60); do head -c 10M /dev/zero >> f; sleep 0.1; done; echo done"
        result = sb.exec(slow, 60)
        assert "more than its disk limit of 0.1 GiB" in result.killed_by
        assert "done" not in result.output and result.duration_s < 5
        fast = sb.exec("head -c 150M /dev/zero > g; echo written", 60)
        assert "written" in fast.output and "disk limit" in fast.killed_by
        sb.exec("rm -f f g", 10)
        assert sb.exec("echo fine", 10).killed_by == ""
    finally:
        sb.close()


@needs_root
def test_a_killed_driver_leaves_no_mounted_workspace(tmp_path: Path) -> None:
    if WorkspaceDisk.unavailable():
        pytest.skip(str(WorkspaceDisk.unavailable()))
    script = (
        "import sys; from pathlib import Path\n"
        "from rebench_gym.sandbox import make_sandbox, Resources\n"
        "ws = Path(sys.argv[1]); ws.mkdir()\n"
        "sb = make_sandbox('bwrap', ws, resources=Resources(cpus=1, memory_gb=1, disk_gb=0.1))\n"
        "sb.start(); print('mounted', flush=True); sys.stdin.read()\n"
    )
    ws = tmp_path / "ws"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    driver = subprocess.Popen(
        [sys.executable, "-c", script, str(ws)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert driver.stdout is not None and driver.stdout.readline().strip() == "mounted"
        assert mounts_below(ws) == [str(ws)]
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
        image = tmp_path / "ws.disk"
        deadline = time.monotonic() + 10
        while (mounts_below(ws) or image.exists()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not mounts_below(ws), "the workspace is still mounted after its driver was killed"
        assert not image.exists()
    finally:
        driver.kill()
        driver.wait()
