"""The sandbox protocol: where an agent's commands and a scorer's solution runs happen.

A sandbox owns a workspace (a directory the agent may change) and one persistent shell per
episode. What the agent caused comes back as data (:class:`ExecResult`); only infrastructure
faults raise :class:`~rebench_gym.errors.SandboxError`.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import stat
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from rebench_gym.errors import ActionError, SandboxUnavailableError
from rebench_gym.sandbox.resources import Enforcement, Resources, WorkspaceDisk

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
        killed_by: the resource limit that killed one of its processes (e.g. ``out of memory,
            limit 4 GiB``), "" when none did.
    """

    output: str
    exit_code: int | None
    timed_out: bool = False
    duration_s: float = 0.0
    output_bytes: int = 0
    omitted_bytes: int = 0
    shell_restarted: bool = False
    note: str = ""
    killed_by: str = ""


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
    #: whether processes inside see a system of their own (docker: the image's ``/usr``), so
    #: host tool paths (a rustup toolchain under ``/root``) mean nothing there
    own_system: bool = False

    def __init__(
        self,
        workspace: Path,
        *,
        max_output_bytes: int = 64_000,
        resources: Resources | None = None,
    ) -> None:
        self.workspace = Path(workspace).resolve()
        self.max_output_bytes = max_output_bytes
        self.closed = False
        #: what the sandbox may use (None: no limits but the provider's defaults)
        self.resources = resources
        #: how each limit is enforced here, and which cannot be (see :mod:`.resources`)
        self.enforcement = Enforcement(resources)
        self._disk: WorkspaceDisk | None = None
        self._watch_disk_at = 0.0
        # the cgroups or containers of spawned runs, for their out-of-memory kill counts
        self._spawned: list[Any] = []
        if resources is not None:
            self._limit_disk(resources)
        #: the host ``(uid, gid)`` the agent's processes run as when it differs from the driver's
        #: (a root driver never lends its uid): the workspace and what the driver writes into it
        #: are given to it. ``None``: the agent runs as the driver's own uid.
        self.owner: tuple[int, int] | None = None
        # give the workspace to `owner` at the next start: only while no agent process runs,
        # never while one could swap paths for symlinks under the walk
        self._chown_pending = True
        _LIVE.add(self)

    def _limit_disk(self, resources: Resources) -> None:
        """Give the (empty) workspace a filesystem of ``resources.disk_gb``, where possible;
        else watch its size while commands run (:meth:`disk_watchdog`)."""
        try:
            self._disk = WorkspaceDisk.mount(self.workspace, resources.disk_bytes)
        except SandboxUnavailableError as e:
            self.enforcement.unenforced["disk"] = (
                f"{e}; a watchdog stops a command once the workspace holds more than "
                f"{resources.disk_gb:g} GiB (it cannot stop background writers between commands)"
            )
            self._watch_disk_at = 0.0
            return
        self.enforcement.enforced["disk"] = (
            f"ext4 filesystem of {resources.disk_gb:g} GiB on a loop device"
        )

    def disk_watchdog(self) -> Callable[[], str] | None:
        """For :meth:`PersistentShell.run`: where the workspace has no filesystem of its own
        size, a check (at most once a second) that says why to stop a command once the
        workspace holds more than ``disk_gb``; None where the filesystem enforces it."""
        if self._disk is not None or self.resources is None:
            return None
        limit = self.resources.disk_bytes

        def check() -> str:
            now = time.monotonic()
            if now - self._watch_disk_at < 1.0:
                return ""
            self._watch_disk_at = now
            if tree_bytes(self.workspace, stop_above=limit) <= limit:
                return ""
            return f"the workspace holds more than its disk limit of {limit / 1024**3:.3g} GiB"

        return check

    def spawn_oom_kills(self) -> int:
        """How many processes of :meth:`spawn`'s runs were killed for memory so far."""
        return sum(int(g.oom_kills()) for g in self._spawned)

    def oom_message(self, limit_bytes: int | None) -> str:
        """What :attr:`ExecResult.killed_by` says for an out-of-memory kill under a limit."""
        if limit_bytes is None:
            return "out of memory"
        return f"out of memory, limit {limit_bytes / 1024**3:.3g} GiB"

    # ----- paths -----------------------------------------------------------------------------
    @property
    def python_bin(self) -> str:
        """The ``bin`` directory of the Python that processes inside run (for their ``PATH``):
        the driver's own on this host; the image's for docker."""
        return str(Path(sys.executable).parent)

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

    def _created(self, fd: int) -> None:
        """Called with an fd of every file or directory the driver creates: give it to the agent."""
        if self.owner is not None:
            os.fchown(fd, *self.owner)

    def _give_workspace_to_owner(self) -> None:
        """Chown the workspace tree to :attr:`owner`, once after each :meth:`kill_all`.

        Call only while none of the agent's processes runs (the walk never follows symlinks).
        """
        if self.owner is None or not self._chown_pending:
            return
        self._chown_pending = False
        give_tree(self.workspace, self.owner)

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

    def copy_out(
        self, path: str, dest: Path, *, max_bytes: int, skip: frozenset[str] = frozenset()
    ) -> int:
        """Copy the workspace directory ``path`` to the new host directory ``dest``.

        Safe for a root driver against an agent that races it: every directory is opened with
        ``O_NOFOLLOW`` through its parent's descriptor, only regular files, directories and
        symlinks that stay inside the copied tree are copied (FIFOs, sockets, devices and links
        that point elsewhere are left out), files become readable by all and lose setuid,
        setgid, sticky bits and write permission for others, and names in ``skip`` are left
        out. Returns the bytes copied.

        Raises:
            ActionError: ``path`` is not a directory (a symlink counts as none), or it holds
                more than ``max_bytes`` bytes of files.
            FileNotFoundError: ``path`` does not exist.
        """
        dir_fd, name = self._open_parent(path, create=False)
        try:
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except NotADirectoryError:
                raise ActionError(f"{path!r} is not a directory") from None
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise ActionError(f"{path!r} is a symlink, not a directory") from None
                raise
        finally:
            os.close(dir_fd)
        budget = [max_bytes]
        try:
            _copy_dir(fd, dest, PurePosixPath(), budget, skip)
        except _TooLarge:
            raise ActionError(f"{path}/ holds more than {max_bytes} bytes, the limit") from None
        finally:
            os.close(fd)
        return max_bytes - budget[0]

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

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop every process of the agent while the block runs (a score call), then resume.

        Its background jobs can then neither change what is being scored, contend with the
        scored run, nor time it. The base class does nothing; the providers stop processes.
        """
        yield

    def reset(self) -> None:
        """Kill everything and start a fresh shell (the env repopulates the workspace first)."""
        self.kill_all()
        self.start()

    def close(self) -> None:
        """Kill everything and unmount the workspace's disk (its files go with it); idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            self.kill_all()
        finally:
            self._release()

    def _release(self) -> None:
        """What :meth:`close` does once every process is gone: unmount the workspace's disk."""
        if self._disk is not None:
            self._disk.unmount()
            self._disk = None
        _LIVE.discard(self)

    def __del__(self) -> None:  # pragma: no cover - depends on the garbage collector
        with contextlib.suppress(Exception):
            self.close()


class _TooLarge(Exception):
    pass


def _copy_dir(
    src_fd: int, dest: Path, rel: PurePosixPath, budget: list[int], skip: frozenset[str]
) -> None:
    """One directory of :meth:`Sandbox.copy_out`: ``budget[0]`` is the bytes still allowed."""
    os.mkdir(dest, 0o755)
    for entry in os.scandir(src_fd):
        if entry.name in skip:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        target = dest / entry.name
        if stat.S_ISDIR(info.st_mode):
            try:
                sub = os.open(entry.name, _DIR_FLAGS, dir_fd=src_fd)
            except OSError:
                continue
            try:
                _copy_dir(sub, target, rel / entry.name, budget, skip)
            finally:
                os.close(sub)
        elif stat.S_ISREG(info.st_mode):
            _copy_file(src_fd, entry.name, target, budget)
        elif stat.S_ISLNK(info.st_mode):
            link = os.readlink(entry.name, dir_fd=src_fd)
            inside = os.path.normpath(os.path.join(str(rel), link))
            if not os.path.isabs(link) and inside != ".." and not inside.startswith("../"):
                os.symlink(link, target)


def open_regular(path: str | Path, *, dir_fd: int | None = None) -> BinaryIO | None:
    """Open for reading a file that a sandboxed process may have put or replaced.

    Returns None unless it is a regular file: a symlink is never followed and a FIFO or device
    never blocks or streams forever (``O_NOFOLLOW | O_NONBLOCK``, then ``fstat``).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def _copy_file(dir_fd: int, name: str, target: Path, budget: list[int]) -> None:
    src = open_regular(name, dir_fd=dir_fd)
    if src is None:
        return
    with src:
        info = os.fstat(src.fileno())
        # the copy is private to the scorer and read by the solution's (unprivileged) run
        mode = stat.S_IMODE(info.st_mode) & 0o775 | 0o644
        with open(target, "xb") as out:
            while chunk := src.read(1 << 20):
                budget[0] -= len(chunk)
                if budget[0] < 0:
                    raise _TooLarge
                out.write(chunk)
        os.chmod(target, mode)


def tree_bytes(root: Path, *, stop_above: int | None = None) -> int:
    """Disk space the files below ``root`` take (allocated blocks; symlinks not followed),
    counting stops once it passes ``stop_above``."""
    total = 0
    stack = [str(root)]
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    info = entry.stat(follow_symlinks=False)
                    total += info.st_blocks * 512
                    if stat.S_ISDIR(info.st_mode):
                        stack.append(entry.path)
                if stop_above is not None and total > stop_above:
                    return total
    return total


def give_tree(root: Path, owner: tuple[int, int]) -> None:
    """Chown ``root`` and everything below it to ``owner`` without following symlinks."""
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                os.lchown(os.path.join(parent, name), *owner)
    os.lchown(root, *owner)


def lend_binds(binds: Sequence[Bind], owner: tuple[int, int] | None) -> None:
    """Make the sources of ``binds`` usable by a spawned process that runs as ``owner``.

    Writable binds are given to ``owner`` (the driver made them for this one run); a read-only
    bind's top directory or file gets read (and search) permission for others, since temporary
    directories are created private to the driver. Nothing happens for ``owner=None``.
    """
    if owner is None:
        return
    for b in binds:
        if b.writable:
            give_tree(b.host, owner)
            continue
        with contextlib.suppress(OSError):
            info = os.lstat(b.host)
            wanted = 0o005 if stat.S_ISDIR(info.st_mode) else 0o004
            if info.st_mode & wanted != wanted and not stat.S_ISLNK(info.st_mode):
                os.chmod(b.host, stat.S_IMODE(info.st_mode) | wanted)


def close_all_sandboxes() -> None:
    """Close every live sandbox (registered with :mod:`atexit` on import)."""
    for sb in list(_LIVE):
        with contextlib.suppress(Exception):
            sb.close()
