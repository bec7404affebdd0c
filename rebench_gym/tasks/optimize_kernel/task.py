"""Optimize a Kernel (RE-Bench ai_rd_triton_cumsum): a masked prefix sum, timed.

The scorer runs ``runner.py`` inside the sandbox on a read-only copy of ``solution/``. It keeps
the clock and the expected outputs in this (the driver's) process:

* mini (CPU): each timed call sends a fresh int8 input through a pipe and stops the clock only
  when the complete output has come back, so a solution cannot finish its work after "returning";
* full (``inputs: generated``, CUDA): as the original scorer does, the clock covers the call and a
  device synchronization only. The runner first generates the input on the device from a fresh
  seed and synchronizes (not timed); the clock then starts, the runner overwrites one random
  position in each of ``patch_positions`` strata of the input with fresh values drawn from a
  second seed it receives only then (a few small kernels, inside the clock), calls
  ``prefix_sum``, synchronizes and answers, and the clock stops. The patch makes an answer
  computed ahead from the unpatched input wrong from the first patched position on. The output
  is fetched afterwards and checked against the input this process regenerates from both seeds.
  Warm-up calls on fresh inputs come first, as in the original (which times one call after four
  warm-ups).

Score: ``ln(milliseconds)`` of the fastest timed call; any wrong output makes it invalid.

The timed calls are spread over several fresh solution processes. Where the sandbox passes file
descriptors (local, bwrap) one sandboxed runner, kept for the episode (:class:`ForkingRunner`),
imports torch once and forks each of them (see ``runner.py``): the solution runs only in the
forked children, each a fresh process that ends (with everything it started) before the next is
forked. Elsewhere (docker), or with
``REBENCH_SCORING=baseline``, each solution process is its own sandbox spawn and interpreter.
"""

from __future__ import annotations

import contextlib
import errno
import math
import mmap
import os
import shutil
import socket
import statistics
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rebench_gym import procs
from rebench_gym.sandbox.base import Bind
from rebench_gym.sandbox.leftovers import shm_scratch_dir
from rebench_gym.scoring import ScoreResult
from rebench_gym.tasks import phases, warm
from rebench_gym.tasks.base import SCORE_ROOT, ScoreContext, Task, TaskParams
from rebench_gym.tasks.ipc import Channel, ChannelClosed, ChannelTimeout, make_pipe

EXAMPLE = np.array([3, -1, 2, 5, -3], dtype=np.int8)
CHECK_LENGTHS = (1, 2, 7, 1000, 4097, 65_537)


def expected_output(x: np.ndarray) -> np.ndarray:
    """The correct masked prefix sum of int8 ``x``, as int64 holding the int32 result (computed
    only here, never in the solution).

    Checked on every call of a score call, so it is kept cheap: the count of positives before
    each element matters only for its parity, which an int8 running sum (wrapping mod 256)
    keeps; the int32 running sum wraps exactly as the int32 result does.
    """
    x8 = np.asarray(x).astype(np.int8, copy=False)
    positive = (x8 > 0).view(np.int8)
    odd = np.cumsum(positive, dtype=np.int8)
    odd -= positive
    odd &= 1
    odd *= x8  # x where the count of positives before it is odd, else 0
    return np.cumsum(odd, dtype=np.int32).astype(np.int64)


def decode_output(payload: bytes | memoryview, n: int) -> np.ndarray:
    """Parse a runner's 'Y' payload (dtype byte + raw bytes) into int64, checking its size."""
    if not payload:
        raise ValueError("empty output")
    itemsize = payload[0]
    if itemsize not in (4, 8):
        raise ValueError("output dtype must be int32 or int64")
    if len(payload) - 1 != n * itemsize:
        raise ValueError(f"output has {(len(payload) - 1) // itemsize} elements, expected {n}")
    dtype = np.int32 if itemsize == 4 else np.int64
    return np.frombuffer(payload, dtype=dtype, offset=1).astype(np.int64)  # a copy


class _Invalid(Exception):
    pass


def _invalid(e: Exception, ctx: ScoreContext, log: str, code: int | None = None) -> ScoreResult:
    """The invalid score for what ended a solution process's run (``code``: its exit status)."""
    if isinstance(e, ChannelTimeout):
        why = f"timed out: the score call did not finish within {ctx.timeout_s:.0f} s"
        return ScoreResult.invalid(why, log=log)
    if isinstance(e, ChannelClosed):
        exited = "the solution process exited" + (f" (code {code})" if code is not None else "")
        return ScoreResult.invalid(f"{exited}; its last output:\n" + log)
    return ScoreResult.invalid(str(e), log=log)


class _SharedIO:
    """The scorer's view of the shared input and output files."""

    def __init__(self, io_dir: Path) -> None:
        # Opened (without following links) before the solution process exists and never by
        # path again: once it runs it may replace the files in its writable io dir.
        self._files = [
            os.fdopen(os.open(io_dir / name, os.O_RDWR | os.O_NOFOLLOW), "r+b")
            for name in ("in.bin", "out.bin")
        ]
        self._maps = [mmap.mmap(f.fileno(), 0) for f in self._files]
        self.inp = np.frombuffer(self._maps[0], dtype=np.int8)
        self.proc: subprocess.Popen[bytes] | None = None

    def pin(self, cpu: int) -> None:
        """Restrict every process of the solution to ``cpu``."""
        assert self.proc is not None
        cgroup = getattr(self.proc, "rebench_cgroup", None)
        for pid in procs.spawned_pids(self.proc.pid, cgroup):
            for tid in procs.threads(pid):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(tid, {cpu})

    def read_output(self, nbytes: int) -> bytes:
        """Freeze the solution's processes, copy the output (dtype byte + data), thaw them."""
        proc = self.proc
        assert proc is not None
        cgroup = getattr(proc, "rebench_cgroup", None)
        frozen = procs.freeze(lambda: procs.spawned_pids(proc.pid, cgroup))
        try:
            out = self._maps[1]
            nbytes = min(nbytes, len(out) - 8)
            return bytes(out[0:1]) + bytes(out[8 : 8 + nbytes])
        finally:
            procs.thaw(frozen)

    def close(self) -> None:
        del self.inp
        for m in self._maps:
            m.close()
        for f in self._files:
            f.close()


@dataclass(frozen=True)
class KernelMiniParams(TaskParams):
    """The task-specific keys of task.yaml's ``scales.mini``."""

    length: int
    device: str
    timed_repeats: int
    processes: int
    warmup_calls: int
    # full-scale keys (the mini scale keeps the defaults)
    inputs: str = "shared"
    patch_positions: int = 0


@dataclass(frozen=True)
class KernelFullParams(TaskParams):
    """The task-specific keys of task.yaml's ``scales.full``."""

    length: int
    device: str
    inputs: str
    timed_repeats: int
    warmup_calls: int
    patch_positions: int
    paper_anchors: dict[str, Any]
    # one process at full scale (the mini scale spreads its timed calls over several)
    processes: int = 1


class OptimizeKernelTask(Task):
    """The kernel task; see the module docstring for how it is scored."""

    package_dir = Path(__file__).parent
    mini_params = KernelMiniParams
    full_params = KernelFullParams
    #: scoring has a fast path that ``REBENCH_SCORING=baseline`` turns off (``rebench bench``)
    fast_scoring_path = True

    def score(self, ctx: ScoreContext) -> ScoreResult:
        params = self.params(ctx.scale)
        n = params.length
        repeats = params.timed_repeats
        processes = params.processes
        deadline = time.monotonic() + ctx.timeout_s
        rng = np.random.default_rng(ctx.seed)
        shutil.copy(self.package_dir / "runner.py", ctx.work_dir / "runner.py")
        # The timed calls are spread over several fresh solution processes: on a shared machine
        # a process's memory placement makes all its calls fast or all slow together, and the
        # fastest call is what counts.
        shares = [repeats // processes + (i < repeats % processes) for i in range(processes)]
        times_ms: list[float] = []
        if procs.fast_scoring() and ctx.sandbox.passes_fds:
            forked = self._run_forked(ctx, params, rng, shares, deadline)
            if isinstance(forked, ScoreResult):
                return forked
            times_ms = forked
        else:
            for share in shares:
                result = self._run_process(ctx, params, rng, share, deadline)
                if isinstance(result, ScoreResult):
                    return result
                times_ms += result
        # The fastest timed call: timing noise on a shared machine only ever adds time.
        best = min(times_ms)
        return ScoreResult(
            raw=math.log(best),
            valid=True,
            message=(
                f"correct; fastest of {repeats} timed calls in {processes} process(es) "
                f"{best:.3f} ms (median {statistics.median(times_ms):.3f} ms)"
            ),
            details={"times_ms": times_ms, "length": n, "device": params.device},
        )

    def _run_process(
        self,
        ctx: ScoreContext,
        params: KernelMiniParams | KernelFullParams,
        rng: np.random.Generator,
        repeats: int,
        deadline: float,
    ) -> list[float] | ScoreResult:
        """One fresh solution process: checks, warm-ups and ``repeats`` timed calls."""
        n = params.length
        device = params.device
        warmups = params.warmup_calls
        # Full scale: inputs generated in the runner, only the call timed (see module docstring).
        generated = params.inputs == "generated"
        patches = params.patch_positions if generated else None
        io_dir = make_io_dir(n)
        io = _SharedIO(io_dir)
        # Pipes where the sandbox can pass descriptors; named FIFOs in the (private,
        # bind-mounted) io dir where it cannot (docker: pipes cannot cross into a container).
        use_fifos = not ctx.sandbox.passes_fds
        if use_fifos:
            for name in ("to_runner", "from_runner"):
                os.mkfifo(io_dir / name, 0o600)
            fifo_env = {
                "RB_IN_PATH": f"{SCORE_ROOT}/io/to_runner",
                "RB_OUT_PATH": f"{SCORE_ROOT}/io/from_runner",
            }
        else:
            to_child_r, to_child_w = make_pipe()
            from_child_r, from_child_w = make_pipe()
            fifo_env = {"RB_IN_FD": str(to_child_r), "RB_OUT_FD": str(from_child_w)}
        log_path = ctx.work_dir / "runner.log"
        with phases.phase("spawn"):
            proc = spawn_runner(
                ctx,
                io_dir,
                {**fifo_env, **runner_env(device)},
                () if use_fifos else (to_child_r, from_child_w),
                log_path,
            )
        io.proc = proc
        if use_fifos:
            try:
                from_child_r, to_child_w = open_fifos(io_dir, proc, deadline)
            except (ChannelTimeout, ChannelClosed) as e:
                io.close()
                procs.stop_scoring_process(proc)
                shutil.rmtree(io_dir, ignore_errors=True)
                return ScoreResult.invalid(
                    f"the solution process did not start: {e}", log=procs.log_tail(log_path)
                )
        else:
            os.close(to_child_r)
            os.close(from_child_w)
        chan = Channel(from_child_r, to_child_w, max_message=16 * n + 64)
        try:
            times_ms = self._drive(chan, io, rng, n, device, warmups, repeats, patches, deadline)
        except (_Invalid, ChannelTimeout, ChannelClosed) as e:
            if isinstance(e, ChannelClosed):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            return _invalid(e, ctx, procs.log_tail(log_path), proc.returncode)
        finally:
            with phases.phase("teardown"):
                chan.close()
                io.close()
                procs.stop_scoring_process(proc)
                shutil.rmtree(io_dir, ignore_errors=True)
        return times_ms

    def _run_forked(
        self,
        ctx: ScoreContext,
        params: KernelMiniParams | KernelFullParams,
        rng: np.random.Generator,
        shares: list[int],
        deadline: float,
    ) -> list[float] | ScoreResult:
        """Every solution process of the call forked by the sandboxed runner that imported torch
        once (module docstring, runner.py), kept for the episode where there is one; each child
        gets its own new pipe pair, and each ends, with all it started, before the next is
        forked."""
        n = params.length
        patches = params.patch_positions if params.inputs == "generated" else None
        runner = warm.kept(ctx, ForkingRunner.NAME)
        if runner is None:
            runner = warm.keep(ctx, ForkingRunner.NAME, ForkingRunner(ctx, params.device, n))
        healthy = False  # the runner may serve the next call
        try:
            started = runner.start_call(ctx, deadline)
            if started is not None:
                return ScoreResult.invalid(started, log=runner.log_tail())
            times_ms: list[float] = []
            for share in shares:
                try:
                    chan = runner.fork_child()
                except OSError:
                    return ScoreResult.invalid(
                        "the scoring process exited; its last output:\n" + runner.log_tail()
                    )
                try:
                    times_ms += self._drive(
                        chan,
                        runner.io,
                        rng,
                        n,
                        params.device,
                        params.warmup_calls,
                        share,
                        patches,
                        deadline,
                    )
                except (_Invalid, ChannelTimeout, ChannelClosed) as e:
                    healthy = not isinstance(e, ChannelTimeout)
                    return _invalid(e, ctx, runner.log_tail())
                finally:
                    with phases.phase("teardown"):
                        chan.close()
                        stopped = runner.end_child()
                    healthy = healthy and stopped
                if not stopped:
                    return ScoreResult.invalid("the solution process could not be stopped")
            healthy = True
            return times_ms
        finally:
            if ctx.episode is None:
                runner.close()
            elif not healthy:
                ctx.episode.discard(ForkingRunner.NAME)

    def _drive(
        self,
        chan: Channel,
        io: _SharedIO,
        rng: np.random.Generator,
        n: int,
        device: str,
        warmups: int,
        repeats: int,
        patches: int | None,
        deadline: float,
    ) -> list[float]:
        start = time.perf_counter()
        cmd, payload = chan.recv(deadline)
        waited = time.perf_counter() - start
        if cmd != b"R":
            raise _Invalid(
                "could not import prefix_sum from solution/solution.py:\n"
                + bytes(payload).decode(errors="replace")
            )
        # The runner's own import times: for the breakdown only, clamped to what was waited.
        reported = sum(struct.unpack("<dd", payload)) if len(payload) == 16 else 0.0
        imports = min(waited, max(0.0, reported)) if math.isfinite(reported) else 0.0
        phases.add("imports", imports)
        phases.add("process start", waited - imports)

        cpus = sorted(os.sched_getaffinity(0))
        calls = [0]

        def call(x: np.ndarray) -> float:
            if device == "cpu" and len(x) == n:
                # Pin the solution's processes to one CPU per call, rotating over the CPUs:
                # on a shared machine one CPU is often busier (host, interrupts), and the
                # fastest call, the one that counts, then comes from the quietest CPU.
                io.pin(cpus[calls[0] % len(cpus)])
                calls[0] += 1
            # The clock starts before the input exists where the solution can see it and stops
            # when the runner says the output is written; the runner's whole sandbox is then
            # frozen (SIGSTOP) before the output is read, so nothing can be finished late.
            start = time.perf_counter()
            io.inp[: len(x)] = x
            chan.send(b"X", struct.pack("<Q", len(x)), deadline)
            cmd, payload = chan.recv(deadline)
            elapsed = time.perf_counter() - start
            if cmd == b"Y":
                payload = memoryview(io.read_output(struct.unpack("<Q", payload)[0]))
            check(x, cmd, payload)
            return elapsed * 1000.0

        def check(x: np.ndarray, cmd: bytes, payload: memoryview) -> None:
            if cmd == b"E":
                raise _Invalid("prefix_sum raised:\n" + bytes(payload).decode(errors="replace"))
            try:
                got = decode_output(payload, len(x))
            except ValueError as e:
                raise _Invalid(f"bad output for an input of length {len(x)}: {e}") from None
            want = expected_output(x)
            if not np.array_equal(got, want):
                bad = int(np.argmax(got != want))
                raise _Invalid(
                    f"wrong output for an input of length {len(x)}: first mismatch at index "
                    f"{bad} (got {got[bad]}, expected {want[bad]})"
                )

        def random_input(length: int) -> np.ndarray:
            return rng.integers(-10, 10, size=length, dtype=np.int8)

        with phases.phase("checks"):
            call(EXAMPLE)
            for length in CHECK_LENGTHS:
                call(random_input(length))
        with phases.phase("timed work"):
            if patches is None:
                for _ in range(warmups):
                    call(random_input(n))
                return [call(random_input(n)) for _ in range(repeats)]
            return self._drive_generated(
                chan, rng, n, device, warmups, repeats, patches, deadline, check
            )

    def _drive_generated(self, chan, rng, n, device, warmups, repeats, patches, deadline, check):
        """Full scale: inputs generated in the runner, only the (patched) call timed."""
        import torch  # full scale: the driver regenerates inputs on its own device

        def roundtrip(cmd: bytes, payload: bytes) -> tuple[bytes, memoryview]:
            chan.send(cmd, payload, deadline)
            return chan.recv(deadline)

        times: list[float] = []
        for i in range(warmups + repeats):
            seed, patch_seed = (int(v) for v in rng.integers(0, 2**63, size=2))
            cmd, payload = roundtrip(b"G", struct.pack("<QQ", seed, n))
            if cmd != b"D":
                raise _Invalid(
                    "the runner failed to generate the input:\n"
                    + bytes(payload).decode(errors="replace")
                )
            start = time.perf_counter()
            cmd, payload = roundtrip(b"C", struct.pack("<QQ", patch_seed, patches))
            elapsed = (time.perf_counter() - start) * 1000.0
            if cmd != b"D":
                raise _Invalid("prefix_sum raised:\n" + bytes(payload).decode(errors="replace"))
            cmd, payload = roundtrip(b"F", b"")
            x = generated_input(torch, device, seed, n)
            patch_input(torch, device, x, patch_seed, patches)
            check(x.cpu().numpy().astype(np.int8), cmd, payload)
            if i >= warmups:
                times.append(elapsed)
        return times


def generated_input(torch: Any, device: str, seed: int, n: int) -> Any:
    """The scorer's copy of runner.generate_input (the same draws from the same seed)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return torch.randint(-10, 10, (n,), dtype=torch.int32, device=device, generator=gen)


def patch_input(torch: Any, device: str, x: Any, seed: int, k: int) -> None:
    """The scorer's copy of runner.patch_input: one fresh value in each of ``k`` strata."""
    n = x.numel()
    k = max(1, min(k, n))
    stride = n // k
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    offsets = torch.randint(0, stride, (k,), dtype=torch.int64, device=device, generator=gen)
    values = torch.randint(-10, 10, (k,), dtype=torch.int32, device=device, generator=gen)
    idx = torch.arange(k, dtype=torch.int64, device=device) * stride + offsets
    x[idx] = values


def make_io_dir(n: int) -> Path:
    """A fresh io dir with zeroed input and output files big enough for every call."""
    # On tmpfs where possible: file-backed pages written back to disk would fault again on
    # the next write and add noise to the timings.
    io_dir = shm_scratch_dir("io")
    (io_dir / "in.bin").write_bytes(bytes(max(n, max(CHECK_LENGTHS))))
    (io_dir / "out.bin").write_bytes(bytes(8 + 8 * max(n, max(CHECK_LENGTHS))))
    return io_dir


def runner_env(device: str) -> dict[str, str]:
    """The runner's environment (its channel's variables come on top)."""
    env = {
        "RB_DEVICE": device,
        "RB_SOLUTION_DIR": f"{SCORE_ROOT}/solution",
        "RB_IO_DIR": f"{SCORE_ROOT}/io",
    }
    if device == "cpu":
        env["TRITON_INTERPRET"] = "1"
        # Keep freed memory in the heap: large temporaries then cost no fresh page faults on
        # every call, which makes CPU timings far less noisy. Same for every solution.
        env["MALLOC_MMAP_THRESHOLD_"] = str(32 * 1024 * 1024)
        env["MALLOC_TRIM_THRESHOLD_"] = str(4 * 1024**3)
        # One thread: on a small shared CPU, thread wake-ups make multi-threaded timings
        # bimodal. A solution may still call torch.set_num_threads itself.
        env["OMP_NUM_THREADS"] = "1"
    return env


def spawn_runner(
    ctx: ScoreContext,
    io_dir: Path,
    env: dict[str, str],
    pass_fds: tuple[int, ...],
    log_path: Path,
) -> subprocess.Popen[bytes]:
    """Start ``runner.py`` in the score call's sandbox on the read-only solution copy."""
    with open(log_path, "wb") as log:
        return ctx.sandbox.spawn(
            ["python3", f"{SCORE_ROOT}/runner.py"],
            binds=[
                Bind(ctx.work_dir / "runner.py", f"{SCORE_ROOT}/runner.py"),
                Bind(ctx.solution, f"{SCORE_ROOT}/solution"),
                Bind(io_dir, f"{SCORE_ROOT}/io", writable=True),
            ],
            cwd=f"{SCORE_ROOT}/solution",
            env=env,
            pass_fds=pass_fds,
            stdout=log.fileno(),
        )


class ForkingRunner:
    """runner.py's forking parent in the sandbox (its module docstring): imports torch once and
    forks a fresh solution process per :meth:`fork_child`. Kept for the episode when the score
    call has an :class:`~rebench_gym.tasks.base.EpisodeStore` (one torch import per episode
    instead of per call), closed after the call otherwise."""

    NAME = "optimize_kernel.runner"

    def __init__(self, ctx: ScoreContext, device: str, n: int) -> None:
        self.n = n
        self.root = Path(tempfile.mkdtemp(prefix="kernel-runner-", dir=warm.scratch_parent(ctx)))
        self.solution = self.root / "solution"
        self.solution.mkdir()
        shutil.copy(Path(__file__).parent / "runner.py", self.root / "runner.py")
        self.io_dir = make_io_dir(n)
        self.io = _SharedIO(self.io_dir)
        self.log = self.root / "runner.log"
        self.binds = [
            Bind(self.root / "runner.py", f"{SCORE_ROOT}/runner.py"),
            Bind(self.solution, f"{SCORE_ROOT}/solution"),
            Bind(self.io_dir, f"{SCORE_ROOT}/io", writable=True),
        ]
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with phases.phase("spawn"), open(self.log, "ab") as log:
                self.proc = ctx.sandbox.spawn(
                    ["python3", f"{SCORE_ROOT}/runner.py"],
                    binds=self.binds,
                    cwd=f"{SCORE_ROOT}/solution",
                    env={**runner_env(device), "RB_CTL_SOCK": str(theirs.fileno())},
                    pass_fds=(theirs.fileno(),),
                    stdout=log.fileno(),
                )
        finally:
            theirs.close()
        self.io.proc = self.proc
        self.started = time.perf_counter()
        #: the runner's and the sandbox's own processes, once it said it is ready
        self.keep: frozenset[int] | None = None

    def log_tail(self) -> str:
        return procs.log_tail(self.log)

    def start_call(self, ctx: ScoreContext, deadline: float) -> str | None:
        """Give the runner this call's solution; wait for it the first time. An error, or None."""
        warm.prepare_call(ctx, self.proc, self.solution, self.binds, self.log)
        if self.keep is not None:
            return None
        answer = b""
        try:
            while len(answer) < 9:
                left = deadline - time.monotonic()
                if left <= 0:
                    return "the scoring process did not start in time"
                self.sock.settimeout(left)
                chunk = self.sock.recv(9 - len(answer))
                if not chunk:
                    return "the scoring process did not start"
                answer += chunk
        except OSError as e:  # socket.timeout included
            return f"the scoring process did not start: {type(e).__name__}"
        if answer[:1] != b"Z":
            return "the scoring process did not start"
        waited = time.perf_counter() - self.started
        imports = min(waited, max(0.0, struct.unpack("<d", answer[1:])[0]))
        phases.add("imports", imports)
        phases.add("process start", waited - imports)
        self.keep = warm.own_pids(self.proc)
        return None

    def fork_child(self) -> Channel:
        """Have the runner fork a fresh solution process on a new pipe pair; its channel.

        Raises:
            OSError: the runner is gone.
        """
        to_child, from_child = make_pipe(), make_pipe()
        try:
            socket.send_fds(self.sock, [b"g"], [to_child[0], from_child[1]])
        except OSError:
            for fd in (*to_child, *from_child):
                os.close(fd)
            raise
        os.close(to_child[0])
        os.close(from_child[1])
        return Channel(from_child[0], to_child[1], max_message=16 * self.n + 64)

    def end_child(self) -> bool:
        """Kill the last solution process and everything it started; False if some survived."""
        assert self.keep is not None
        return procs.kill_spawned_except(self.proc, self.keep)

    def close(self) -> None:
        self.sock.close()
        self.io.close()
        procs.stop_scoring_process(self.proc)
        shutil.rmtree(self.io_dir, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)


def open_fifos(io_dir: Path, proc: subprocess.Popen[bytes], deadline: float) -> tuple[int, int]:
    """Open the scorer's ends of the runner's FIFOs: ``(from_runner read, to_runner write)``.

    The runner opens ``to_runner`` for reading first, then ``from_runner`` for writing. The
    write end is opened without blocking (it fails until the runner's read end exists) and
    retried until ``deadline`` or the runner exits. The read end is opened without blocking,
    then made blocking: on Linux a reader sees no EOF until a writer has come and gone.

    Raises:
        ChannelTimeout: the runner did not open its ends before ``deadline``.
        ChannelClosed: the runner exited first.
    """
    while True:
        try:
            wfd = os.open(io_dir / "to_runner", os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
        if proc.poll() is not None:
            raise ChannelClosed(f"the runner exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise ChannelTimeout("the runner did not open its input")
        time.sleep(0.002)
    rfd = os.open(io_dir / "from_runner", os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(rfd, True)
    return rfd, wfd
