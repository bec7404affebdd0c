"""The sealed evaluator: compile Rust programs and run them on hidden tests, isolated and bounded.

It runs in the scorer's (trusted) process, which never imports the agent's module; the agent's
scaffold ran earlier in another, sandboxed process and only its returned program texts reach
this module. Both steps that touch untrusted code happen in fresh sandboxed processes
(:meth:`~rebench_gym.sandbox.base.Sandbox.spawn`) that see nothing but what they need:

* **compile**: ``rustc --edition 2018`` (no crates) sees the source, an output directory and the
  Rust toolchain, so ``include_str!`` or ``#[path]`` cannot read hidden files; time and memory
  are limited. Successful builds are cached by a hash of the compiler version, flags and source.
* **run**: each test is one fresh process that sees the binary and the test's input only, with
  ``ulimit`` bounds on address space (memory), CPU time and file size, a wall-clock limit per
  test, a limit on the bytes it may print (read through a pipe by this process, which stops and
  kills the program past the limit), and a total time limit per problem and per evaluation.

Outputs are compared line by line, ignoring trailing spaces and trailing blank lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rebench_gym import procs
from rebench_gym.errors import AssetsError
from rebench_gym.sandbox.base import Bind, Sandbox

TEST_SETS = ("public_tests", "private_tests", "generated_tests")
RUN_ROOT = "/rbrun"


@dataclass(frozen=True)
class Toolchain:
    """A Rust toolchain: the real ``rustc`` binary and the directory it needs mounted."""

    rustc: Path
    root: Path
    version: str

    @classmethod
    def find(cls) -> Toolchain:
        """The toolchain of ``$RUSTC`` or the ``rustc`` on PATH (rustup proxies resolved).

        Raises:
            AssetsError: no rustc is installed (the message says how to get one).
        """
        candidates = [os.environ.get("RUSTC"), shutil.which("rustc")]
        cargo_bin = Path.home() / ".cargo" / "bin" / "rustc"
        candidates.append(str(cargo_bin) if cargo_bin.exists() else None)
        for cand in candidates:
            if not cand:
                continue
            try:
                sysroot = subprocess.run(
                    [cand, "--print", "sysroot"],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=True,
                ).stdout.strip()
                real = Path(sysroot) / "bin" / "rustc"
                version = subprocess.run(
                    [str(real), "--version"], capture_output=True, text=True, timeout=60, check=True
                ).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                continue
            return cls(rustc=real, root=Path(sysroot), version=version)
        raise AssetsError(
            "RE-Bench/RustCodecontests-v0 needs a Rust compiler: install one with "
            "`apt-get install rustc` (Debian/Ubuntu) or rustup (https://rustup.rs), or set $RUSTC"
        )

    @classmethod
    def for_sandbox(cls, sandbox: Sandbox) -> Toolchain:
        """The toolchain that works inside ``sandbox``: the image's ``/usr/bin/rustc`` where the
        sandbox has a system of its own (docker: host paths do not exist there; the compile
        cache is keyed by the image), else this host's (:meth:`find`)."""
        if sandbox.own_system:
            image = str(getattr(sandbox, "image", "the image"))
            return cls(rustc=Path("/usr/bin/rustc"), root=Path("/usr"), version=f"rustc of {image}")
        return cls.find()

    def binds(self) -> list[Bind]:
        """Read-only mounts that make this toolchain usable inside a sandbox (same paths)."""
        if self.root in (Path("/usr"), Path("/usr/local")) or Path("/usr") in self.root.parents:
            return []  # the sandboxes mount /usr already
        return [Bind(self.root, str(self.root))]


@dataclass(frozen=True)
class Limits:
    """Bounds on compiling and running one program."""

    compile_timeout_s: float = 60.0
    compile_memory_mb: int = 4096
    test_timeout_s: float = 2.0
    problem_timeout_s: float = 30.0
    memory_mb: int = 512
    output_bytes: int = 16 * 1024 * 1024
    rustc_flags: tuple[str, ...] = ("--edition", "2018")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Limits:
        """Limits from a task.yaml scale section (missing keys keep their defaults)."""
        known = {f for f in cls.__dataclass_fields__ if f != "rustc_flags"}
        values: dict[str, Any] = {k: params[k] for k in known if k in params}
        if "rustc_flags" in params:
            values["rustc_flags"] = tuple(str(f) for f in params["rustc_flags"])
        return cls(**values)


@dataclass(frozen=True)
class ProblemResult:
    """How one program did on one problem."""

    name: str
    solved: bool
    compiled: bool
    passed: int
    total: int
    message: str
    details: dict[str, Any] = field(default_factory=dict)


class RustEvaluator:
    """Compiles and tests programs in ``sandbox`` spawns; see the module docstring.

    Args:
        sandbox: the episode's sandbox (its :meth:`spawn` isolates each process).
        toolchain: the Rust toolchain.
        work_dir: private scratch space (inputs, outputs).
        cache_dir: where compiled binaries are cached between calls (hidden from the agent).
        limits: time, memory and output bounds.
        workers: programs compiled or tested at the same time.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        toolchain: Toolchain,
        work_dir: Path,
        cache_dir: Path,
        limits: Limits,
        workers: int = 2,
    ) -> None:
        self.sandbox = sandbox
        self.toolchain = toolchain
        self.work_dir = Path(work_dir)
        self.cache_dir = Path(cache_dir)
        self.limits = limits
        self.workers = max(1, workers)
        self._memo: dict[str, tuple[Path | None, str]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    # ----- compiling -------------------------------------------------------------------------
    def _key(self, code: str) -> str:
        h = hashlib.sha256(self.toolchain.version.encode())
        h.update(json.dumps(self.limits.rustc_flags).encode())
        h.update(code.encode())
        return h.hexdigest()[:32]

    def compile(self, code: str, deadline: float) -> tuple[Path | None, str]:
        """Compile ``code``; ``(binary, "")`` or ``(None, compiler messages)``.

        Each distinct source is compiled once per evaluator (failures too); successful builds
        are also cached on disk across evaluators.
        """
        key = self._key(code)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._memo:
                self._memo[key] = self._compile(code, key, deadline)
            return self._memo[key]

    def _compile(self, code: str, key: str, deadline: float) -> tuple[Path | None, str]:
        entry = self.cache_dir / key
        if (entry / "prog").is_file():
            return entry / "prog", ""
        build = Path(tempfile.mkdtemp(prefix="build-", dir=self.work_dir))
        src, out = build / "src", build / "out"
        src.mkdir()
        out.mkdir()
        (src / "main.rs").write_text(code)
        lim = self.limits
        # Paths go in as arguments (the local sandbox maps each argument to its host path).
        argv = [
            f'ulimit -v {lim.compile_memory_mb * 1024} -f {512 * 1024}; exec "$@"',
            "rustc",
            str(self.toolchain.rustc),
            *lim.rustc_flags,
            "-o",
            f"{RUN_ROOT}/out/prog",
            f"{RUN_ROOT}/src/main.rs",
        ]
        timeout = min(lim.compile_timeout_s, max(0.0, deadline - time.monotonic()))
        status, output = self._spawn(
            argv,
            [
                Bind(src, f"{RUN_ROOT}/src"),
                Bind(out, f"{RUN_ROOT}/out", writable=True),
                *self.toolchain.binds(),
            ],
            cwd=f"{RUN_ROOT}/out",
            timeout=timeout,
            max_output=256 * 1024,
        )
        try:
            if status == "ok" and (out / "prog").is_file():
                entry.mkdir(parents=True, exist_ok=True)
                tmp = entry / f"prog.{os.getpid()}.tmp"
                shutil.copyfile(out / "prog", tmp)
                tmp.chmod(0o755)
                tmp.replace(entry / "prog")
                return entry / "prog", ""
            message = output.decode(errors="replace")[-4000:]
            if status == "timeout":
                return None, f"compilation timed out after {timeout:.0f} s"
            return None, message or f"compilation failed ({status})"
        finally:
            shutil.rmtree(build, ignore_errors=True)

    # ----- running ---------------------------------------------------------------------------
    def run_test(self, binary: Path, stdin: str, timeout: float) -> tuple[str, bytes]:
        """Run ``binary`` on ``stdin``; ``(status, stdout)`` with status ``ok``, ``timeout``,
        ``output_limit`` or ``exit N`` / ``signal N``."""
        case = Path(tempfile.mkdtemp(prefix="case-", dir=self.work_dir))
        try:
            (case / "input.txt").write_text(stdin)
            lim = self.limits
            cpu = max(1, int(timeout + 1))
            argv = [
                f"ulimit -v {lim.memory_mb * 1024} -t {cpu} -f 0 -c 0; "
                'exec "$1" < "$2" 2>/dev/null',
                "run",
                f"{RUN_ROOT}/bin/prog",
                f"{RUN_ROOT}/case/input.txt",
            ]
            return self._spawn(
                argv,
                [Bind(binary.parent, f"{RUN_ROOT}/bin"), Bind(case, f"{RUN_ROOT}/case")],
                cwd=f"{RUN_ROOT}/case",
                timeout=timeout,
                max_output=lim.output_bytes,
            )
        finally:
            shutil.rmtree(case, ignore_errors=True)

    def _spawn(
        self,
        script: Sequence[str],
        binds: Sequence[Bind],
        *,
        cwd: str,
        timeout: float,
        max_output: int,
    ) -> tuple[str, bytes]:
        """Run ``bash -c *script`` in a sandbox spawn; its stdout and stderr come back capped."""
        if timeout <= 0:
            return "timeout", b""
        rfd, wfd = os.pipe()
        try:
            proc = self.sandbox.spawn(
                ["bash", "-c", *script],
                binds=list(binds),
                cwd=cwd,
                env={"LANG": "C.UTF-8", "RUST_BACKTRACE": "0"},
                stdout=wfd,
                max_pids=64,
            )
        finally:
            os.close(wfd)
        chunks: list[bytes] = []
        size = 0
        status = "ok"
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    status = "timeout"
                    break
                ready, _, _ = select.select([rfd], [], [], left)
                if not ready:
                    continue
                chunk = os.read(rfd, 1 << 16)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_output:
                    status = "output_limit"
                    break
                chunks.append(chunk)
            if status == "ok":
                try:
                    proc.wait(timeout=max(0.05, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    status = "timeout"
        finally:
            os.close(rfd)
            procs.stop_scoring_process(proc)
        if status == "ok" and proc.returncode != 0:
            code = proc.returncode
            # bash's exec makes the program the process; bwrap reports its status as 128+N.
            status = f"signal {-code}" if code < 0 else f"exit {code}"
        return status, b"".join(chunks)

    # ----- problems --------------------------------------------------------------------------
    def evaluate_problem(
        self, problem: dict[str, Any], code: str, deadline: float
    ) -> ProblemResult:
        """Compile ``code`` and run it on every test of ``problem`` (stops at the first failure)."""
        name = str(problem.get("name", "?"))
        tests = [
            (inp, out)
            for key in TEST_SETS
            for inp, out in zip(
                (problem.get(key) or {}).get("input", []),
                (problem.get(key) or {}).get("output", []),
                strict=False,
            )
        ]
        if not code.strip():
            return ProblemResult(name, False, False, 0, len(tests), "no program")
        binary, error = self.compile(code, deadline)
        if binary is None:
            return ProblemResult(name, False, False, 0, len(tests), "compile error: " + error[:500])
        problem_deadline = min(deadline, time.monotonic() + self.limits.problem_timeout_s)
        for i, (inp, expected) in enumerate(tests):
            left = problem_deadline - time.monotonic()
            if left <= 0:
                return ProblemResult(name, False, True, i, len(tests), "total time limit exceeded")
            status, out = self.run_test(binary, inp, min(self.limits.test_timeout_s, left))
            if status == "exit 126":
                # "Text file busy": a process forked by another thread while the binary was
                # being written still held it open. Run once more.
                time.sleep(0.05)
                status, out = self.run_test(binary, inp, min(self.limits.test_timeout_s, left))
            if status != "ok":
                return ProblemResult(name, False, True, i, len(tests), f"test {i + 1}: {status}")
            if not outputs_match(out.decode("utf-8", errors="replace"), expected):
                return ProblemResult(
                    name, False, True, i, len(tests), f"test {i + 1}: wrong answer"
                )
        return ProblemResult(name, True, True, len(tests), len(tests), "passed all tests")

    def evaluate_all(
        self, problems: Sequence[dict[str, Any]], programs: dict[str, str], timeout_s: float
    ) -> list[ProblemResult]:
        """Evaluate ``programs`` (name -> code) on ``problems``; missing programs fail."""
        deadline = time.monotonic() + timeout_s

        def one(problem: dict[str, Any]) -> ProblemResult:
            name = str(problem.get("name", "?"))
            if time.monotonic() > deadline:
                return ProblemResult(name, False, False, 0, 0, "evaluation time limit exceeded")
            try:
                return self.evaluate_problem(problem, programs.get(name, ""), deadline)
            except OSError as e:
                return ProblemResult(name, False, False, 0, 0, f"evaluation failed: {e}")

        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(one, problems))


def outputs_match(got: str, expected: str) -> bool:
    """Equal up to trailing spaces on each line and trailing blank lines."""

    def norm(text: str) -> list[str]:
        lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    return norm(got) == norm(expected)
