"""Gymnasium's vector API over the env: text observations batch correctly, also through the
shared memory of AsyncVectorEnv (any Unicode, not only Text's charset)."""

from __future__ import annotations

import time
from pathlib import Path

import gymnasium as gym
import pytest

import rebench_gym  # noqa: F401
from rebench_gym import actions
from tests.conftest import HAVE_BWRAP

SANDBOX = "bwrap" if HAVE_BWRAP else "local"


@pytest.mark.parametrize(("mode", "context"), [("sync", None), ("async", None), ("async", "spawn")])
def test_make_vec_batches_text_observations(mode: str, context: str | None) -> None:
    envs = gym.make_vec(
        "RE-Bench/OptimizeKernel-v0",
        num_envs=2,
        vectorization_mode=mode,
        vector_kwargs={"context": context} if context else {},
        scale="mini",
        sandbox=SANDBOX,
        anchors=(4.0, 3.0),
    )
    try:
        obs, _ = envs.reset(seed=0)
        assert len(obs["terminal"]) == 2 and "prefix_sum" in obs["terminal"][1]
        text = "ünïcødé ✓ 漢字"
        obs, rewards, terms, truncs, _ = envs.step(
            (actions.write_file("u.txt", text), "echo second env")
        )
        assert obs["terminal"][1].startswith("second env")
        obs, *_ = envs.step(("cat u.txt", "cat u.txt"))
        assert obs["terminal"][0].startswith(text)
        assert "No such file" in obs["terminal"][1]  # each env has its own workspace
        assert "u.txt" in obs["files"][0] and "u.txt" not in obs["files"][1]
        first = obs["terminal"][0]
        envs.step(("echo changed", "true"))
        assert obs["terminal"][0] == first  # returned observations are copies
        assert list(rewards) == [0.0, 0.0] and not any(terms) and not any(truncs)
    finally:
        envs.close()


# ----- spawn context, per-env GPUs, throughput, recorded vector runs ---------------------------


def test_assign_gpus_gives_each_env_its_own_devices() -> None:
    from rebench_gym.errors import HardwareError, UsageError
    from rebench_gym.vector.devices import assign_gpus

    devices = ["0", "1", "2", "3", "4", "5", "6", "7"]
    assert assign_gpus(4, 2, devices) == [("0", "1"), ("2", "3"), ("4", "5"), ("6", "7")]
    assert assign_gpus(3, 0, devices) == [(), (), ()]
    with pytest.raises(HardwareError, match="need 6 GPUs but 4 are visible"):
        assign_gpus(3, 2, devices[:4])
    # sharing only when asked: round-robin, never the same device twice in one env
    assert assign_gpus(3, 2, devices[:4], share=True) == [("0", "1"), ("2", "3"), ("0", "1")]
    assert assign_gpus(3, 1, ["7", "3"], share=True) == [("7",), ("3",), ("7",)]
    with pytest.raises(HardwareError, match="one env needs 4 GPU"):
        assign_gpus(1, 4, devices[:2], share=True)
    with pytest.raises(UsageError):
        assign_gpus(0, 1, devices)
    with pytest.raises(UsageError):
        assign_gpus(2, 1, ["0", "0"])


def test_visible_gpus_and_device_pinning_options() -> None:
    from rebench_gym.vector.devices import visible_gpus, with_gpus

    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 5"}) == ["2", "5"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    kwargs = {"scale": "full", "sandbox": "docker", "sandbox_options": {"cpus": 8}}
    assert with_gpus(kwargs, ("3",))["sandbox_options"] == {"cpus": 8, "gpus": ["3"]}
    assert kwargs["sandbox_options"] == {"cpus": 8}  # not modified in place
    pinned = {"sandbox": "docker", "sandbox_options": {"gpus": ["0", "1"]}}
    assert with_gpus(pinned, ("3",))["sandbox_options"] == {"gpus": ["0", "1"]}  # user's choice
    # every provider pins the devices (bwrap and local by CUDA_VISIBLE_DEVICES and device nodes)
    assert with_gpus({"sandbox": "bwrap"}, ("3",))["sandbox_options"] == {"gpus": ["3"]}
    assert with_gpus({}, ()) == {}


def test_make_vec_pins_each_full_scale_env_to_its_gpus() -> None:
    from rebench_gym.errors import HardwareError
    from rebench_gym.vector.local import env_fns

    def pinned(fns: list) -> list:
        envs = [fn() for fn in fns]  # constructing an env starts no sandbox
        try:
            return [env.unwrapped.sandbox_options.get("gpus") for env in envs]
        finally:
            for env in envs:
                env.close()

    kernel = "RE-Bench/OptimizeKernel-v0"  # one GPU per env at full scale
    fns = env_fns(kernel, 3, devices=["0", "1", "2"], scale="full", sandbox="docker")
    assert pinned(fns) == [["0"], ["1"], ["2"]]
    with pytest.raises(HardwareError, match="share_gpus=True"):
        env_fns(kernel, 3, devices=["0"], scale="full", sandbox="docker")
    shared = env_fns(kernel, 2, devices=["5"], share_gpus=True, scale="full", sandbox="docker")
    assert pinned(shared) == [["5"], ["5"]]
    # mini scale needs no GPU: nothing is pinned
    assert pinned(env_fns(kernel, 2, devices=[], scale="mini", sandbox="docker")) == [None, None]


@pytest.mark.slow
def test_make_vec_spawns_workers_and_leaves_no_process() -> None:
    from rebench_gym import procs
    from rebench_gym.vector import make_vec
    from rebench_gym.vector.worker import running

    envs = make_vec(
        "RE-Bench/OptimizeKernel-v0", 2, scale="mini", sandbox=SANDBOX, anchors=(4.0, 3.0)
    )
    try:
        assert isinstance(envs, gym.vector.AsyncVectorEnv)
        assert all(type(p).__name__ == "SpawnProcess" for p in envs.processes)
        envs.reset(seed=0)
        obs, *_ = envs.step(("echo ✓ > mine.txt; cat mine.txt", "ls mine.txt; sleep 300 &"))
        assert obs["terminal"][0].startswith("✓") and "No such file" in obs["terminal"][1]
        workers = [p.pid for p in envs.processes]
        spawned = [pid for w in workers for pid in procs.descendants(w)]
        assert spawned  # each worker runs its sandbox's shell
    finally:
        envs.close()
    time.sleep(0.5)
    assert not any(running(pid) for pid in [*workers, *spawned])


@pytest.mark.slow
def test_vector_entry_point_gives_make_vec_spawn_workers() -> None:
    import copy

    spec = copy.deepcopy(gym.spec("RE-Bench/OptimizeKernel-v0"))
    spec.vector_entry_point = "rebench_gym.vector.local:vector_entry_point"
    envs = gym.make_vec(spec, num_envs=2, scale="mini", sandbox=SANDBOX, anchors=(4.0, 3.0))
    try:
        assert isinstance(envs, gym.vector.AsyncVectorEnv)
        assert all(type(p).__name__ == "SpawnProcess" for p in envs.processes)
        obs, _ = envs.reset(seed=0)
        assert all("prefix_sum" in t for t in obs["terminal"])
    finally:
        envs.close()


@pytest.mark.slow
def test_async_throughput_is_at_least_3x_one_env() -> None:
    from rebench_gym.bench import vector_throughput

    result = vector_throughput(SANDBOX, num_envs=4, sleep_s=0.5, steps=3)
    assert result["ratio"] >= 3.0, result


@pytest.mark.slow
def test_recorded_run_over_local_workers(tmp_path: Path) -> None:
    from rebench_gym.agents import ScriptedAgent
    from rebench_gym.results.store import RunStore
    from rebench_gym.runs import RunOptions, run

    db = tmp_path / "runs.db"
    options = RunOptions(
        "RE-Bench/OptimizeKernel-v0",
        "scripted",
        scale="mini",
        sandbox=SANDBOX,
        episodes=3,
        num_envs=2,
        max_steps=2,
        seed=1,
        time_budget=600.0,
        make_kwargs={"anchors": (1.0, 0.0)},
        db=db,
    )
    printed: list[str] = []
    # Removing solution/ makes the final score call invalid at once (no scorer runs);
    # max_steps=2 submits after the second action.
    results = run(
        options,
        make_agent=lambda i: ScriptedAgent(["rm -rf solution", "echo never run twice", "echo no"]),
        on_result=lambda r: printed.append(r.env_id),
    )
    assert printed == [r.env_id for r in results]  # each result reported as it was recorded
    assert len(results) == 3 and all(r.steps == 3 and r.terminated for r in results)
    with RunStore(db) as store:
        rows = store.episodes()
    assert sorted(r.episode_index for r in rows) == [0, 1, 2]
    assert all(r.status == "finished" and r.anchors and r.anchors["source"] == "user" for r in rows)


def test_vector_flags_usage_errors(tmp_path: Path) -> None:
    from rebench_gym.cli import main

    base = ["run", "RE-Bench/OptimizeKernel-v0", "--agent", "noop", "--scale", "mini"]
    db = ["--db", str(tmp_path / "runs.db")]
    assert main([*base, *db, "--num-envs", "2", "--record", str(tmp_path / "t.jsonl")]) == 2
    assert main([*base, *db, "--num-envs", "2", "--ray-cpus-per-env", "0.5"]) == 2
    assert not (tmp_path / "runs.db").exists()  # nothing recorded before the usage error
