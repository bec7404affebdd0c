"""RayVectorEnv and ``rebench run --ray`` on a real Ray cluster that the tests start as users do
(``ray start --head`` on loopback, in its own temp dir): batching, non-blocking steps, an actor
killed mid-episode, throughput, recorded runs, joining by address, no actor or process left
after ``close()``, and clear usage errors for a cluster that cannot be reached or whose node
lacks the package."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rebench_gym import actions, procs
from rebench_gym.agents import ScriptedAgent
from rebench_gym.errors import HardwareError, UsageError
from tests.conftest import HAVE_BWRAP

ray = pytest.importorskip("ray")

from rebench_gym.vector.ray_cluster import SINGLE_MACHINE_ENV, connect  # noqa: E402
from rebench_gym.vector.ray_env import RayVectorEnv  # noqa: E402
from rebench_gym.vector.worker import running  # noqa: E402

pytestmark = pytest.mark.slow

ENV_ID = "RE-Bench/OptimizeKernel-v0"
SANDBOX = "bwrap" if HAVE_BWRAP else "local"
# anchors given: no calibration; 4 small actors fit on a 4-CPU cluster on a 2-core machine
MAKE = {"scale": "mini", "anchors": (1.0, 0.0), "actor_options": {"num_cpus": 0.5}}
REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster:
    """A Ray cluster on this machine, started as users start one: ``ray start --head
    --node-ip-address 127.0.0.1 --port PORT``, with its own ``--temp-dir``.

    Every process of the cluster carries a marker in its environment, or (Ray's agents, started
    with an environment of their own) its node id as ``RAY_NODE_ID``, so :meth:`stop` stops
    exactly this cluster. (``ray stop`` would stop every Ray process on the machine, other
    people's clusters included; :meth:`stop` does what it does, SIGTERM and then SIGKILL after
    a grace period, to this cluster's processes only.)

    Args:
        num_cpus: the head's CPUs.
        pythonpath: entries put first on the nodes' ``PYTHONPATH``.
        cache: the nodes' ``REBENCH_CACHE_DIR``.
    """

    def __init__(self, num_cpus: int, pythonpath: list[str], cache: Path) -> None:
        self.temp = tempfile.mkdtemp(prefix="rbray", dir="/tmp")  # Ray's socket paths are short
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        token = uuid.uuid4().hex
        self.marker = f"REBENCH_TEST_RAY_CLUSTER={token}"
        self.env = dict(os.environ)
        self.env.update(
            REBENCH_TEST_RAY_CLUSTER=token,
            REBENCH_CACHE_DIR=str(cache),
            PYTHONPATH=os.pathsep.join([*pythonpath, os.environ.get("PYTHONPATH", "")]).strip(
                os.pathsep
            ),
            RAY_USAGE_STATS_ENABLED="0",
            # Ray rewrites 127.0.0.1 into the interface address unless in single-machine mode
            **{SINGLE_MACHINE_ENV: "0"},
        )
        self.env.pop("RAY_ADDRESS", None)
        command = [
            _ray_command(),
            "start",
            "--head",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--temp-dir",
            self.temp,
            "--num-cpus",
            str(num_cpus),
            "--num-gpus",
            "0",
            "--object-store-memory",
            str(256 * 2**20),
            "--include-dashboard",
            "false",
            "--dashboard-agent-listen-port",
            str(_free_port()),
            "--disable-usage-stats",
        ]
        self.node_ids: set[str] = set()
        try:
            out = subprocess.run(
                command, env=self.env, capture_output=True, text=True, timeout=120, check=False
            )
            self._note_node_ids()
            assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
            assert self.node_ids, "no raylet of the new cluster found"
        except BaseException:
            self.stop()
            raise

    def _note_node_ids(self) -> None:
        """Learn the cluster's node ids from its raylets' command lines."""
        for pid in procs.pids_with_env_marker(self.marker):
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            for arg in args:
                if arg.startswith(b"--node_id="):
                    self.node_ids.add(arg.split(b"=", 1)[1].decode())

    def processes(self) -> list[int]:
        """The pids of this cluster's processes (raylet, GCS, workers, agents, ...)."""
        found = set(procs.pids_with_env_marker(self.marker))
        for node_id in self.node_ids:
            found.update(procs.pids_with_env_marker(f"RAY_NODE_ID={node_id}"))
        return sorted(found)

    def stop(self, grace_s: float = 3.0) -> None:
        """Stop this cluster's processes (SIGTERM, SIGKILL after ``grace_s``); remove its dir."""
        self._note_node_ids()
        procs.kill_pids(self.processes(), signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(3):
            procs.kill_pids(self.processes(), signal.SIGKILL)
            time.sleep(0.1)
        shutil.rmtree(self.temp, ignore_errors=True)


def _ray_command() -> str:
    """The ``ray`` command of this interpreter's environment."""
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.exists() else shutil.which("ray") or "ray"


def _seed_anchors(cache: Path) -> None:
    """Give the cluster's cache calibrated kernel anchors, so that episodes skip calibration."""
    from rebench_gym.calibration import anchors_path
    from rebench_gym.tasks import get_task

    path = anchors_path(get_task("optimize_kernel"), "mini", cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"start": 3.0, "reference": 1.0, "details": "set by the test"}))


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """One 4-CPU cluster for the module; stopped, with every process of it, after the module."""
    cache = Path(tempfile.mkdtemp(prefix="rebench-ray-cache-"))
    _seed_anchors(cache)
    started = LocalCluster(4, [str(REPO)], cache)
    try:
        yield started
    finally:
        if ray.is_initialized():
            ray.shutdown()
        started.stop()
        shutil.rmtree(cache, ignore_errors=True)
    assert started.processes() == []


@pytest.fixture
def driver(cluster: LocalCluster) -> Any:
    """This process connected to the module's cluster (joined once, kept for the module)."""
    if not ray.is_initialized():
        assert connect(cluster.address) is True
    return ray


def _alive_actors(class_name: str = "EnvWorker") -> list[dict[str, Any]]:
    """The cluster's live actors of ``class_name``, from the GCS actor table (Ray's state API
    without the dashboard, which this install lacks)."""
    from ray._private import state

    table = state.actors(actor_state_name="ALIVE")
    return [a for a in table.values() if class_name in a["ActorClassName"]]


def _run_cli(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``rebench ARGS`` in a fresh interpreter, as a user runs it."""
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "rebench_gym.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _run_rows(db: Path) -> int:
    """How many runs the run store at ``db`` holds (0 when it was never created)."""
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def _markers(envs: RayVectorEnv) -> list[str]:
    return [m for m in ray.get([a.sandbox_marker.remote() for a in envs._actors]) if m]


def _roots(envs: RayVectorEnv) -> list[str]:
    return [r for r in ray.get([a.workspace_root.remote() for a in envs._actors]) if r]


def _assert_nothing_left(envs: RayVectorEnv, markers: list[str], roots: list[str]) -> None:
    assert markers and roots
    for marker in markers:
        assert procs.pids_with_env_marker(marker) == [], marker
    for root in roots:
        assert not Path(root).exists(), root  # workspaces removed
    for w in [*envs.workers, *envs._retired]:
        assert w is not None
        assert not running(w.pid) and not running(w.reaper_pid)


def test_batches_isolates_and_steps_without_blocking(driver: Any) -> None:
    envs = RayVectorEnv(ENV_ID, 2, sandbox=SANDBOX, **MAKE)
    markers: list[str] = []
    roots: list[str] = []
    start = time.monotonic()
    try:
        assert envs.metadata["autoreset_mode"].value == "NextStep"
        obs, infos = envs.reset(seed=[3, 4])
        assert len(obs["terminal"]) == 2 and "prefix_sum" in obs["terminal"][1]
        assert list(infos["task"]) == [ENV_ID, ENV_ID]
        markers, roots = _markers(envs), _roots(envs)
        assert len(set(markers)) == 2  # one sandbox each
        assert [w.node for w in envs.workers if w] == ["127.0.0.1", "127.0.0.1"]
        assert len(_alive_actors()) == 2
        text = "ünïcødé ✓ 漢字"
        envs.step([actions.write_file("u.txt", text), "cd solution && export X=7"])
        obs, rewards, terms, truncs, infos = envs.step(["cat u.txt", "pwd; echo $X; cat ../u.txt"])
        assert obs["terminal"][0].startswith(text)
        assert obs["terminal"][1].splitlines()[1] == "7"  # the shell persists in the actor
        assert "No such file" in obs["terminal"][1]  # own workspace
        assert list(rewards) == [0.0, 0.0] and not terms.any() and not truncs.any()
        assert list(infos["exit_code"]) == [0, 1]

        # a long command on env 0 does not hold env 1 back
        envs.send(["sleep 4; echo slow", "echo fast"])
        start = time.monotonic()
        ids, outs = envs.recv(1)
        assert list(ids) == [1] and outs[0][0]["terminal"].startswith("fast")
        assert time.monotonic() - start < 3.0 and envs.busy == [0]
        envs.send(["echo fast again"], [1])
        ids, outs = envs.recv(1)
        assert list(ids) == [1]
        ids, outs = envs.recv(1)
        assert list(ids) == [0] and outs[0][0]["terminal"].startswith("slow")

        # the batch API: step_wait with a timeout keeps the calls in flight
        envs.step_async(["sleep 2; echo a", "echo b"])
        with pytest.raises(TimeoutError):
            envs.step_wait(timeout=0.2)
        obs, *_ = envs.step_wait()
        assert [t.split("\n")[0] for t in obs["terminal"]] == ["a", "b"]
        envs.step(["sleep 300 &", "sleep 300 & sleep 1"])  # left running for close()
        envs.send(["sleep 300"], [0])  # in flight at close(): its actor is killed at once
        start = time.monotonic()
    finally:
        envs.close()
    assert time.monotonic() - start < 60
    _assert_nothing_left(envs, markers, roots)
    assert _alive_actors() == []  # killed by close(); this driver is still connected
    envs.close()  # idempotent


def test_killed_actor_is_an_error_for_its_env_and_the_others_go_on(driver: Any) -> None:
    # The local sandbox: the actor's reaper must clean up what the dead actor's shell started.
    envs = RayVectorEnv(ENV_ID, 3, sandbox="local", **MAKE)
    markers: list[str] = []
    roots: list[str] = []
    try:
        envs.reset(seed=0)
        markers, roots = _markers(envs), _roots(envs)
        envs.step(["cd solution", "cd solution", "cd solution"])
        envs.send(["sleep 300 & sleep 60", "sleep 300 & sleep 60", "sleep 1; echo done"])
        deadline = time.monotonic() + 20
        while len(procs.pids_with_env_marker(markers[1])) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        victim = envs.workers[1]
        assert victim is not None and len(procs.pids_with_env_marker(markers[1])) >= 3
        start = time.monotonic()
        ray.kill(envs._actors[1])
        ids, outs = envs.recv(2)
        assert time.monotonic() - start < 20  # not the 60 s the command would take
        assert list(ids) == [1, 2]
        obs, reward, terminated, truncated, info = outs[0]
        assert truncated and not terminated and reward == 0.0
        assert info["env_failed"] and "actor died" in info["error"]
        assert obs["terminal"].startswith("[env error]")
        assert outs[1][0]["terminal"].startswith("done")  # env 2 went on
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            procs.pids_with_env_marker(markers[1]) or Path(roots[1]).exists()
        ):
            time.sleep(0.1)
        assert procs.pids_with_env_marker(markers[1]) == []  # the reaper killed the sleeps
        assert not Path(roots[1]).exists()  # and removed the dead env's workspace

        ray.kill(envs._actors[0])  # env 0 fails too (its step was in flight)
        ids, outs = envs.recv(1)
        assert list(ids) == [0] and outs[0][4]["env_failed"]
        # the next step restarts the failed envs: their reset observation; env 2 keeps its state
        obs, _, _, truncs, _ = envs.step(["pwd", "pwd", "pwd"])
        assert "prefix_sum" in obs["terminal"][0] and "prefix_sum" in obs["terminal"][1]
        assert obs["terminal"][2].strip().splitlines()[0].endswith("/solution")
        assert envs.restarts == 2 and not truncs.any()
        assert envs.workers[1] is not None and envs.workers[1].pid != victim.pid
        obs, *_ = envs.step(["echo back", "echo back", "echo back"])
        assert all(t.startswith("back") for t in obs["terminal"])
        markers += _markers(envs)
        roots += _roots(envs)
    finally:
        envs.close()
    _assert_nothing_left(envs, markers, roots)


def test_ray_throughput_is_at_least_3x_one_env(driver: Any) -> None:
    from rebench_gym.bench import ray_vector_throughput

    result = ray_vector_throughput(SANDBOX, num_envs=4, sleep_s=0.5, steps=3)
    assert result["ratio"] >= 3.0, result


def test_a_cluster_too_small_for_the_task_is_a_clear_error(driver: Any) -> None:
    # mini OptimizeKernel asks for 2 CPUs per env: 4 envs need 8, the cluster has 4
    with pytest.raises(HardwareError, match="need 8 CPUs in all"):
        RayVectorEnv(ENV_ID, 4, scale="mini", sandbox="local", anchors=(1.0, 0.0))


def test_an_address_other_than_the_connected_cluster_is_refused(
    driver: Any, cluster: LocalCluster
) -> None:
    other = f"127.0.0.1:{_free_port()}"
    with pytest.raises(UsageError, match=f"connected to the Ray cluster at {cluster.address}"):
        RayVectorEnv(ENV_ID, 1, address=other, sandbox="local", **MAKE)
    assert ray.is_initialized()  # the running session is kept
    assert _alive_actors() == []


def test_recorded_run_over_ray(driver: Any, tmp_path: Path) -> None:
    from rebench_gym.results.store import RunStore
    from rebench_gym.runs import RunOptions, run

    db = tmp_path / "runs.db"
    options = RunOptions(
        ENV_ID,
        "scripted",
        scale="mini",
        sandbox="local",
        episodes=3,
        num_envs=2,
        ray="local",
        ray_cpus_per_env=0.5,
        seed=0,
        make_kwargs={"anchors": (1.0, 0.0)},
        db=db,
    )
    # Removing solution/ makes the final score call invalid at once (no scorer runs).
    results = run(options, make_agent=lambda i: ScriptedAgent(["echo hi", "rm -rf solution"]))
    assert len(results) == 3 and all(r.steps == 3 and r.terminated for r in results)
    assert all(r.normalized_score == 0.0 and r.env_id == ENV_ID for r in results)
    with RunStore(db) as store:
        rows = store.episodes()
    assert sorted(r.episode_index for r in rows) == [0, 1, 2]
    assert all(r.status == "finished" and r.steps == 3 for r in rows)
    assert all(r.score_rows and not r.score_rows[0].valid for r in rows)


def test_joins_a_cluster_by_address_and_leaves_it_running(cluster: LocalCluster) -> None:
    if ray.is_initialized():
        ray.shutdown()
    envs = RayVectorEnv(ENV_ID, 2, address=cluster.address, sandbox="local", **MAKE)
    markers: list[str] = []
    roots: list[str] = []
    try:
        assert ray.get_runtime_context().gcs_address == cluster.address
        assert ray.util.get_node_ip_address() == "127.0.0.1"
        obs, _ = envs.reset(seed=0)
        assert "prefix_sum" in obs["terminal"][0]
        markers, roots = _markers(envs), _roots(envs)
        obs, *_ = envs.step(["echo one", "sleep 300 & echo two"])
        assert [t.split("\n")[0] for t in obs["terminal"]] == ["one", "two"]
        ids = [a._actor_id.hex() for a in envs._actors]
        assert {a["ActorID"] for a in _alive_actors()} == set(ids)
    finally:
        envs.close()
    _assert_nothing_left(envs, markers, roots)
    assert not ray.is_initialized()  # close() left the session it joined ...
    assert cluster.processes()  # ... and the cluster runs on
    assert connect(cluster.address) is True
    assert _alive_actors() == []


def test_rebench_run_on_the_cluster_records_episodes_and_leaves_no_actors(
    driver: Any, cluster: LocalCluster, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    start = time.monotonic()
    out = _run_cli(
        [
            "run",
            ENV_ID,
            "--agent",
            "noop",
            "--scale",
            "mini",
            "--sandbox",
            SANDBOX,
            "--episodes",
            "3",
            "--num-envs",
            "2",
            "--ray",
            cluster.address,
            "--ray-cpus-per-env",
            "0.5",
            "--db",
            str(db),
            "--json",
        ],
        cwd=tmp_path,
    )
    took = time.monotonic() - start
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout)
    assert len(results) == 3 and all(r["agent"] == "noop" for r in results)
    # scored with the anchors calibrated on the cluster's nodes (seeded in their cache)
    assert all(r["score_log"] and r["score_log"][0]["valid"] for r in results)
    from rebench_gym.results.store import RunStore

    with RunStore(db) as store:
        rows = store.episodes()
    assert sorted(r.episode_index for r in rows) == [0, 1, 2]
    assert all(r.status == "finished" for r in rows)
    assert _alive_actors() == []
    assert cluster.processes()  # the cluster was not stopped
    print(f"rebench run --ray: 3 episodes in {took:.1f} s")


def test_an_unreachable_cluster_is_a_usage_error_and_records_nothing(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    start = time.monotonic()
    out = _run_cli(
        [
            "run",
            ENV_ID,
            "--agent",
            "noop",
            "--scale",
            "mini",
            "--episodes",
            "2",
            "--num-envs",
            "2",
            "--ray",
            address,
            "--db",
            str(db),
        ],
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr[-3000:]
    assert time.monotonic() - start < 60
    assert "Traceback" not in out.stderr
    message = out.stderr.strip().splitlines()[-1]
    assert message.startswith(f"rebench: error: cannot reach the Ray cluster at {address}")
    assert "ray start --head --node-ip-address 127.0.0.1" in message
    assert _run_rows(db) == 0
    with pytest.raises(UsageError, match="cannot reach the Ray cluster"):
        if ray.is_initialized():
            ray.shutdown()
        RayVectorEnv(ENV_ID, 1, address=address, sandbox="local", **MAKE)
    assert not ray.is_initialized()


def test_a_node_without_the_package_is_a_usage_error_and_records_nothing(tmp_path: Path) -> None:
    # A second cluster whose node's Python cannot import rebench_gym: a directory first on its
    # PYTHONPATH shadows the installed package with one whose import fails, as on a node where
    # rebench_gym was never installed.
    shadow = tmp_path / "shadow" / "rebench_gym"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'rebench_gym'\", name='rebench_gym')\n"
    )
    broken = LocalCluster(2, [str(shadow.parent)], tmp_path / "cache")
    try:
        db = tmp_path / "runs.db"
        out = _run_cli(
            [
                "run",
                ENV_ID,
                "--agent",
                "noop",
                "--scale",
                "mini",
                "--sandbox",
                "local",
                "--num-envs",
                "2",
                "--ray",
                broken.address,
                "--db",
                str(db),
            ],
            cwd=tmp_path,
            timeout=300,
        )
        assert out.returncode == 2, out.stderr[-3000:]
        assert "Traceback" not in out.stderr
        message = out.stderr.strip().splitlines()[-1]
        assert message.startswith("rebench: error: the Ray cluster cannot run rebench_gym's envs")
        assert "node 127.0.0.1" in message and "cannot import rebench_gym" in message
        assert "in the Python environment that runs `ray start`" in message
        assert _run_rows(db) == 0
    finally:
        broken.stop()
    assert broken.processes() == []


LOCAL_SESSION_SCRIPT = """
import json, ray
from rebench_gym.vector.ray_env import RayVectorEnv
envs = RayVectorEnv(
    "RE-Bench/OptimizeKernel-v0", 1, sandbox="local", scale="mini", anchors=(1.0, 0.0),
    actor_options={"num_cpus": 0.5},
)
try:
    obs, _ = envs.reset(seed=0)
    found = {
        "driver": ray.util.get_node_ip_address(),
        "gcs": ray.get_runtime_context().gcs_address,
        "worker": envs.workers[0].node,
        "nodes": [n["NodeManagerAddress"] for n in ray.nodes()],
        "node_id": ray.get_runtime_context().get_node_id(),
        "reset": "prefix_sum" in obs["terminal"][0],
    }
finally:
    envs.close()
found["connected_after_close"] = ray.is_initialized()
print(json.dumps(found))
"""


def test_a_local_session_started_by_the_project_is_on_loopback(tmp_path: Path) -> None:
    # RayVectorEnv without an address and without a running session starts Ray here: its node
    # (driver, workers, GCS) is 127.0.0.1, and close() stops it again.
    temp = tempfile.mkdtemp(prefix="rbray", dir="/tmp")
    token = uuid.uuid4().hex
    # HOME: Ray writes a token to ~/.ray/auth_token for a new local session
    env = dict(os.environ, RAY_TMPDIR=temp, REBENCH_TEST_RAY_LOCAL=token, HOME=temp)
    env.pop("RAY_ADDRESS", None)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    markers = [f"REBENCH_TEST_RAY_LOCAL={token}"]  # Ray's agents: RAY_NODE_ID, added below

    def left() -> list[int]:
        return sorted({pid for m in markers for pid in procs.pids_with_env_marker(m)})

    try:
        out = subprocess.run(
            [sys.executable, "-c", LOCAL_SESSION_SCRIPT],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        found = json.loads(out.stdout.strip().splitlines()[-1])
        markers.append(f"RAY_NODE_ID={found['node_id']}")
        assert found["reset"] and not found["connected_after_close"]
        assert found["driver"] == found["worker"] == "127.0.0.1"
        assert found["gcs"].startswith("127.0.0.1:") and found["nodes"] == ["127.0.0.1"]
        deadline = time.monotonic() + 20
        while left() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left() == []  # the session stopped with close()
    finally:
        procs.kill_pids(left())
        shutil.rmtree(temp, ignore_errors=True)
