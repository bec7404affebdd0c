"""A persistent bash process driven through pipes, shared by the local and bwrap sandboxes.

Each command is sent base64-encoded and ``eval``-ed, so quoting mistakes in the agent's command
cannot swallow the completion marker; ``cd`` and exported variables persist like in a terminal.
Stdin of every command is ``/dev/null``. Output is read by one thread into a bounded buffer.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from rebench_gym import procs
from rebench_gym.sandbox.base import ExecResult
from rebench_gym.sandbox.output import BoundedBuffer, to_text

_MARK = b"__RBDONE_"


_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.,/:=+@%^")


def ansi_c_quote(command: str) -> str:
    """Quote ``command`` as a bash ``$'...'`` word; every unsafe byte becomes ``\\xHH``.

    NUL bytes cannot be part of a shell word and are dropped.
    """
    raw = command.encode("utf-8", errors="surrogateescape").replace(b"\0", b"")
    parts = [chr(b) if b in _SAFE else f"\\x{b:02x}" for b in raw]
    return "$'" + "".join(parts) + "'"


class _Pending:
    def __init__(self, nonce: bytes, limit: int) -> None:
        self.marker = _MARK + nonce + b"__"
        self.buffer = BoundedBuffer(limit)
        self.done = threading.Event()
        self.exit_code: int | None = None
        self._scan = bytearray()

    def feed(self, data: bytes) -> None:
        self.buffer.write(data)
        self._scan += data
        idx = self._scan.find(self.marker)
        if idx < 0:
            keep = len(self.marker) + 16
            if len(self._scan) > keep:
                del self._scan[: len(self._scan) - keep]
            return
        end = self._scan.find(b"\n", idx)
        if end < 0:
            return
        code = self._scan[idx + len(self.marker) : end]
        trailing = len(self._scan) - idx  # marker line and anything after it
        start = idx - 1 if idx > 0 and self._scan[idx - 1 : idx] == b"\n" else idx
        self.buffer.trim_tail(trailing + (idx - start))
        try:
            self.exit_code = int(code)
        except ValueError:
            self.exit_code = None
        self.done.set()


class PersistentShell:
    """One long-lived bash; commands run in it one at a time.

    Args:
        argv: how to start bash (possibly wrapped in bwrap).
        env: its environment.
        cwd: its working directory on the host (``None``: inherited).
        limit: bytes of output kept per command.
        preexec: run in the child before exec (joins a cgroup, sets the death signal).
        find_bash: maps the started process's pid to the pid of bash itself.
        pass_fds: file descriptors the started process inherits (bwrap's seccomp filter).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        cwd: str | None,
        limit: int,
        preexec: Callable[[], None] | None = None,
        find_bash: Callable[[int], int | None] | None = None,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.argv = list(argv)
        self.pass_fds = tuple(pass_fds)
        self.env = env
        self.cwd = cwd
        self.limit = limit
        self.preexec = preexec
        self.find_bash = find_bash
        self.proc: subprocess.Popen[bytes] | None = None
        self.bash_pid: int | None = None
        self._pending: _Pending | None = None
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    # ----- lifecycle ---------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.alive():
            return
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            preexec_fn=self.preexec,
            start_new_session=True,
            pass_fds=self.pass_fds,
            bufsize=0,
        )
        self._reader = threading.Thread(target=self._read_loop, args=(self.proc,), daemon=True)
        self._reader.start()
        # A first command proves the shell is up and finds bash's pid.
        first = self.run("true", timeout=30.0)
        if first.exit_code != 0:
            raise RuntimeError(f"shell did not start: {first.output[:500]}")
        self.bash_pid = self.find_bash(self.proc.pid) if self.find_bash else self.proc.pid

    def _read_loop(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            with self._lock:
                pending = self._pending if proc is self.proc else None
            if pending is not None:
                pending.feed(data)
        with self._lock:
            if self._pending is not None and proc is self.proc:
                self._pending.done.set()

    def stop(self) -> None:
        """Kill bash and everything started from it."""
        proc = self.proc
        if proc is None:
            return
        procs.kill_tree(proc.pid, include_root=True)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self._reader is not None:
            # A detached background process may still hold the pipe; the reader then ends
            # on its own later and, being tied to the old process, delivers nothing.
            self._reader.join(timeout=0.2)
        self.proc = None
        self.bash_pid = None

    def _wait(
        self, pending: _Pending, timeout: float, watchdog: Callable[[], str] | None = None
    ) -> bool | str:
        """Wait for the marker; returns early (True) if the shell process exits meanwhile,
        False on timeout, or the reason ``watchdog()`` gave (a non-empty string) to stop."""
        deadline = time.monotonic() + timeout
        step = 0.05
        while True:
            left = deadline - time.monotonic()
            if pending.done.wait(min(step, max(left, 0.0))):
                return True
            if self.proc is None or self.proc.poll() is not None:
                pending.done.wait(0.1)  # let the reader drain what is left
                return True
            if left <= 0:
                return False
            if watchdog is not None:
                reason = watchdog()
                if reason:
                    return reason
            step = min(step * 2, 0.5)

    # ----- commands ----------------------------------------------------------------------------
    def _script(self, command: str, nonce: str) -> str:
        """The text written to bash for one command: the command, then the completion marker."""
        return (
            f"eval {ansi_c_quote(command)} </dev/null 2>&1\n"
            f"printf '\\n{_MARK.decode()}{nonce}__%d\\n' \"$?\"\n"
        )

    def _snapshot(self) -> set[int]:
        """What to remember before a command so that a timeout kills only what it started."""
        return set(procs.children(self.bash_pid)) if self.bash_pid else set()

    def _kill_command(self, before: set[int], nonce: str) -> None:
        """Kill the processes the timed-out command started (bash itself survives)."""
        if self.bash_pid is not None:
            for child in procs.children(self.bash_pid):
                if child not in before:
                    procs.kill_tree(child, include_root=True)

    def run(
        self, command: str, timeout: float, watchdog: Callable[[], str] | None = None
    ) -> ExecResult:
        """Run one command; on timeout kill the processes it started and report it.

        ``watchdog`` is called about twice a second while the command runs and once after it:
        a non-empty answer (why) stops the command like a timeout and becomes
        :attr:`ExecResult.killed_by`.
        """
        if not self.alive():
            raise RuntimeError("shell is not running")
        assert self.proc is not None and self.proc.stdin is not None
        nonce = secrets.token_hex(8).encode()
        pending = _Pending(nonce, self.limit)
        script = self._script(command, nonce.decode())
        before = self._snapshot()
        with self._lock:
            self._pending = pending
        started = time.monotonic()
        try:
            self.proc.stdin.write(script.encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pending.done.set()
        waited = self._wait(pending, timeout, watchdog)
        finished = waited is True
        timed_out = waited is False
        killed_by = waited if isinstance(waited, str) else ""
        note = ""
        if not finished:
            self._kill_command(before, nonce.decode())
            if not pending.done.wait(2.0):
                note = "the shell itself was stuck, so it was restarted (cwd and variables reset)"
        elif watchdog is not None:
            killed_by = watchdog()
        duration = time.monotonic() - started
        if finished and pending.exit_code is None and self.proc is not None:
            # the output ended without the command's status: the shell itself exited (`exit 7`);
            # its end of the pipe closes a moment before the kernel lets it be reaped
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=2.0)
        with self._lock:
            self._pending = None
        data, omitted = pending.buffer.getvalue()
        output = to_text(data, omitted, cut_at=len(pending.buffer.head) if omitted else None)
        restarted = False
        exit_code = None if timed_out else pending.exit_code
        if not self.alive() and not note and self.proc is not None:
            exit_code = self.proc.returncode
        if not self.alive() or note:
            if not note:
                note = "the shell exited, so a new one was started (cwd and variables reset)"
            self.stop()
            self.start()
            restarted = True
        return ExecResult(
            output=output,
            exit_code=exit_code,
            timed_out=timed_out,
            duration_s=duration,
            output_bytes=pending.buffer.total,
            omitted_bytes=omitted,
            shell_restarted=restarted,
            note=note,
            killed_by=killed_by,
        )
