"""The sandbox protocol: where an agent's commands and a scorer's solution runs happen.

A sandbox owns a workspace (a directory the agent may change) and one persistent shell per
episode. What the agent caused comes back as data (:class:`ExecResult`); only infrastructure
faults raise :class:`~rebench_gym.errors.SandboxError`.
"""

from __future__ import annotations

import abc
import contextlib
import os
import stat
import subprocess
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rebench_gym.errors import ActionError

_LIVE: weakref.WeakSet[Sandbox] = weakref.WeakSet()
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


@dataclass(frozen=True)
class ExecResult:
    """What one shell command did.

    Attributes:
        output: stdout and stderr, interleaved as a terminal shows them, bounded and decoded.
        exit_code: the command's exit status (``None`` when it was killed on timeout).
        timed_out: the command hit its timeout and its processes were killed.
        duration_s: wall time of the command.
        output_bytes: how many bytes it printed in all.
        omitted_bytes: how many of those are not in ``output``.
        shell_restarted: the persistent shell had to be started again (cwd and variables reset).
        note: extra explanation for the agent (e.g. why the shell was restarted).
    """

    output: str
    exit_code: int | None
    timed_out: bool = False
    duration_s: float = 0.0
    output_bytes: int = 0
    omitted_bytes: int = 0
    shell_restarted: bool = False
    note: str = ""


@dataclass(frozen=True)
class Bind:
    """A host path made visible inside a spawned process at ``inside`` (read-only by default)."""

    host: Path
    inside: str
    writable: bool = False


class Sandbox(abc.ABC):
    """One isolated place for an episode: a workspace plus a persistent shell.

    Subclasses implement the shell and :meth:`spawn`; file access goes straight to the host
    directory that backs the workspace, after the path has been checked.
    """

    #: provider name, as given to ``gym.make(..., sandbox=NAME)``
    name: str = "abstract"
    #: whether hidden files are really unreadable from inside (False only for ``local``)
    isolates: bool = False
    #: whether :meth:`spawn` can hand inherited file descriptors (``pass_fds``) to the process;
    #: False for ``docker`` (pipes cannot cross into a container): use named FIFOs there
    passes_fds: bool = True

    def __init__(self, workspace: Path, *, max_output_bytes: int = 64_000) -> None:
        self.workspace = Path(workspace).resolve()
        self.max_output_bytes = max_output_bytes
        self.closed = False
        _LIVE.add(self)

    # ----- paths -----------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def workspace_inside(self) -> str:
        """The absolute path of the workspace as the agent's processes see it."""

    def host_path(self, path: str) -> Path:
        """Map a workspace path (relative, or absolute inside the sandbox) to the host path.

        Raises:
            ActionError: the path is empty, contains NUL, or leaves the workspace (also through
                a symlink).
        """
        if not path or "\0" in path:
            raise ActionError("path must be a non-empty string without NUL characters")
        inside = PurePosixPath(self.workspace_inside)
        p = PurePosixPath(path)
        if p.is_absolute():
            try:
                p = p.relative_to(inside)
            except ValueError:
                raise ActionError(
                    f"path {path!r} is outside the workspace ({self.workspace_inside}); "
                    "give a path relative to the workspace"
                ) from None
        candidate = (self.workspace / Path(*p.parts)) if p.parts else self.workspace
        resolved = Path(os.path.realpath(candidate))
        if resolved != self.workspace and self.workspace not in resolved.parents:
            raise ActionError(f"path {path!r} resolves outside the workspace")
        return resolved

    def _open_parent(self, path: str, *, create: bool) -> tuple[int, str]:
        """Open the directory that holds ``path`` without following any symlink.

        The path is resolved and checked first, then walked one directory file descriptor at a
        time with ``O_NOFOLLOW``: an agent process that swaps a directory for a symlink between
        the check and the use cannot make this (possibly root) process touch anything outside
        the workspace. Returns the directory's fd (the caller closes it) and the file name.
        """
        target = self.host_path(path)
        parts = target.relative_to(self.workspace).parts
        if not parts:
            raise ActionError(f"{path!r} is the workspace directory, not a file")
        fd = os.open(self.workspace, _DIR_FLAGS)
        try:
            for name in parts[:-1]:
                created = False
                if create:
                    try:
                        os.mkdir(name, 0o755, dir_fd=fd)
                        created = True
                    except FileExistsError:
                        pass
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    raise
                except OSError as e:
                    raise ActionError(f"{path!r}: {name!r} is not a directory") from e
                if created:
                    self._created(sub)
                os.close(fd)
                fd = sub
        except BaseException:
            os.close(fd)
            raise
        return fd, parts[-1]

    def _created(self, fd: int) -> None:  # noqa: B027 - optional hook
        """Called with an fd of every file or directory the driver creates (docker chowns it)."""

    def read_file(self, path: str, max_bytes: int | None = None) -> bytes:
        """Read a workspace file (at most ``max_bytes``, else :class:`ActionError`)."""
        dir_fd, name = self._open_parent(path, create=False)
        try:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
            except OSError as e:
                if isinstance(e, FileNotFoundError):
                    raise
                raise ActionError(f"cannot read {path!r}: {e.strerror}") from e
        finally:
            os.close(dir_fd)
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise ActionError(f"{path!r} is a directory")
            if max_bytes is not None and info.st_size > max_bytes:
                raise ActionError(f"{path!r} is larger than {max_bytes} bytes; use a shell command")
            return fh.read() if max_bytes is None else fh.read(max_bytes + 1)[:max_bytes]

    def write_file(self, path: str, data: bytes) -> None:
        """Create or replace a workspace file (parents are created)."""
        dir_fd, name = self._open_parent(path, create=True)
        try:
            try:
                fd = os.open(
                    name,
                    os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                    0o644,
                    dir_fd=dir_fd,
                )
            except IsADirectoryError:
                raise ActionError(f"{path!r} is a directory") from None
            except OSError as e:
                raise ActionError(f"cannot write {path!r}: {e.strerror}") from e
        finally:
            os.close(dir_fd)
        with os.fdopen(fd, "wb") as fh:
            self._created(fh.fileno())
            fh.write(data)

    # ----- processes -------------------------------------------------------------------------
    @abc.abstractmethod
    def start(self) -> None:
        """Start the persistent shell (idempotent)."""

    @abc.abstractmethod
    def exec(self, command: str, timeout: float) -> ExecResult:
        """Run ``command`` in the persistent shell, killing its processes after ``timeout`` s."""

    @abc.abstractmethod
    def kill_all(self) -> None:
        """Kill every process of the sandbox, background ones included."""

    @abc.abstractmethod
    def spawn(
        self,
        argv: Sequence[str],
        *,
        binds: Sequence[Bind],
        cwd: str,
        env: Mapping[str, str],
        pass_fds: Sequence[int] = (),
        stdout: int | None = None,
        max_pids: int = 256,
    ) -> subprocess.Popen[bytes]:
        """Start a fresh process with the sandbox's isolation but without the workspace.

        Scorers use this to run the agent's solution: only ``binds`` are visible (plus the
        system and Python), so a copy of the solution can be run read-only, away from the agent's
        shell and background processes.
        """

    def reset(self) -> None:
        """Kill everything and start a fresh shell (the env repopulates the workspace first)."""
        self.kill_all()
        self.start()

    def close(self) -> None:
        """Kill everything; idempotent."""
        if self.closed:
            return
        self.closed = True
        self.kill_all()
        _LIVE.discard(self)

    def __del__(self) -> None:  # pragma: no cover - depends on the garbage collector
        with contextlib.suppress(Exception):
            self.close()


def close_all_sandboxes() -> None:
    """Close every live sandbox (registered with :mod:`atexit` on import)."""
    for sb in list(_LIVE):
        with contextlib.suppress(Exception):
            sb.close()
