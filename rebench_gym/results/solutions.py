"""Kept solutions: the exact ``solution/`` every score call scored, content-addressed.

A score call scores a private snapshot of the agent's ``solution/`` (``ReBenchEnv._snapshot``).
When the env has a :class:`SolutionKeeper` it keeps that snapshot before the scorer runs, so the
solution can be scored again later (``rebench rescore``) after a scorer fix or new anchors,
without running the agent again. The score log row links to it by its solution id.

Layout under the keeper's root (by default ``<run store>.solutions/`` beside the SQLite file):

* ``blobs/<sha[:2]>/<sha>``: each distinct file content once, named by its sha256.
* ``solutions/<id>.json``: a manifest, canonical JSON ``{"format": 1, "files": {path: {"sha256",
  "size", "mode"}}, "links": {path: target}, "dirs": [path, ...]}``; the solution id is the
  sha256 of the manifest's bytes, so equal solutions share one id and one manifest.

Limits (what is dropped past them, and why): a solution whose files hold more than
``max_bytes`` bytes (default :data:`DEFAULT_MAX_BYTES`, 64 MiB) or more than :data:`MAX_FILES`
entries is not kept at all; :meth:`SolutionKeeper.keep` returns None and the row's solution id
stays NULL. A partial solution could not be scored again faithfully, and the large ones are
model weights and checkpoints (full-scale training tasks allow up to 20 GiB) that would fill
the disk with one copy per distinct score call; a run's scripts fit many times over. Blobs are
shared between solutions, so scoring the same files again costs only a manifest, if anything.

The kept files come from the agent, so nothing read back is trusted: ids must be 64 hex digits
(no path can be smuggled through one), a manifest must hash to its id, every blob must hash to
its name (a tampered file raises :class:`SolutionStoreError`), paths must be relative, without
``..``, ``.`` or empty parts, and no entry may lie below a symlink. :meth:`materialize` writes
only into a new directory, creating files with ``O_EXCL | O_NOFOLLOW`` (no file mode beyond
``0o755``: no setuid, setgid or sticky bit), makes symlinks last, and checks that each one
resolves inside the directory, deleting the whole tree when one does not.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from rebench_gym.errors import UsageError

#: the largest solution (sum of its files' sizes) a keeper keeps by default
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: the most entries (files, links and directories) of a kept solution
MAX_FILES = 20_000
#: the manifest format this module writes and reads
MANIFEST_FORMAT = 1
#: permission bits a kept file keeps (owner read/write, everyone's read and execute)
_MODE_MASK = 0o755
_ID = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


class SolutionStoreError(UsageError):
    """A kept solution is missing, damaged or tampered with, or unsafe to write out."""


class _TooLarge(Exception):
    pass


def _check_rel(path: str) -> PurePosixPath:
    """``path`` as a safe relative path, or :class:`SolutionStoreError`."""
    if not isinstance(path, str) or not path or "\0" in path or "\\" in path:
        raise SolutionStoreError(f"unsafe path in a kept solution: {path!r}")
    p = PurePosixPath(path)
    if p.is_absolute() or any(part in ("", ".", "..") for part in path.split("/")):
        raise SolutionStoreError(f"unsafe path in a kept solution: {path!r}")
    return p


def _check_id(solution_id: str) -> str:
    if not isinstance(solution_id, str) or not _ID.fullmatch(solution_id):
        raise SolutionStoreError(f"not a solution id (64 hex digits): {solution_id!r}")
    return solution_id


class SolutionKeeper:
    """A content-addressed store of scored solutions (see the module docstring).

    Args:
        root: The store's directory (created on first :meth:`keep`).
        max_bytes: The largest solution kept, in bytes of file content; larger ones are not
            kept (:meth:`keep` returns None).
    """

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise UsageError(f"max_bytes must be >= 0, not {max_bytes}")
        self.root = Path(root)
        self.max_bytes = int(max_bytes)

    # ----- paths -----------------------------------------------------------------------------
    def _blob(self, sha: str) -> Path:
        return self.root / "blobs" / sha[:2] / sha

    def _manifest(self, solution_id: str) -> Path:
        return self.root / "solutions" / f"{_check_id(solution_id)}.json"

    # ----- writing ---------------------------------------------------------------------------
    def keep(self, directory: Path) -> str | None:
        """Keep the solution in ``directory``; returns its id, or None when it is not kept
        because it is larger than ``max_bytes`` or has more than :data:`MAX_FILES` entries.

        Only regular files, directories and symlinks whose target stays inside ``directory``
        are kept (what a score call's snapshot holds); anything else is left out, as the
        snapshot leaves it out. Keeping the same files again returns the same id.
        """
        directory = Path(directory)
        try:
            manifest = self._scan(directory)
        except _TooLarge:
            return None
        data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        solution_id = hashlib.sha256(data).hexdigest()
        path = self._manifest(solution_id)
        if not path.exists():
            self._write_atomic(path, data)
        return solution_id

    def _scan(self, directory: Path) -> dict[str, Any]:
        files: dict[str, dict[str, Any]] = {}
        links: dict[str, str] = {}
        dirs: list[str] = []
        total = 0
        base = os.path.realpath(directory)
        for current, subdirs, names in os.walk(directory, followlinks=False):
            rel_dir = Path(current).relative_to(directory)
            for name in sorted(subdirs + names):
                full = Path(current) / name
                rel = (rel_dir / name).as_posix()
                st = os.lstat(full)
                if len(files) + len(links) + len(dirs) >= MAX_FILES:
                    raise _TooLarge
                if stat.S_ISLNK(st.st_mode):
                    target = os.readlink(full)
                    resolved = os.path.realpath(full)
                    if os.path.isabs(target) or not (
                        resolved == base or resolved.startswith(base + os.sep)
                    ):
                        continue  # points elsewhere: the snapshot leaves such links out too
                    links[rel] = target
                elif stat.S_ISDIR(st.st_mode):
                    dirs.append(rel)
                elif stat.S_ISREG(st.st_mode):
                    total += st.st_size
                    if total > self.max_bytes:
                        raise _TooLarge  # before any blob is written: a dropped one costs nothing
                    files[rel] = {"size": st.st_size, "mode": st.st_mode & _MODE_MASK}
        room = self.max_bytes
        for rel, meta in files.items():
            meta["sha256"], meta["size"] = self._store_blob(directory / rel, room)
            room -= meta["size"]
        return {"format": MANIFEST_FORMAT, "files": files, "links": links, "dirs": sorted(dirs)}

    def _store_blob(self, path: Path, room: int) -> tuple[str, int]:
        """Copy the file into the blob store (once per content); returns its sha256 and size.

        The file is copied to a temporary blob first and hashed as it is copied, so what is
        stored under a name is what was hashed, even if the source grew meanwhile (past
        ``room`` bytes: :class:`_TooLarge`).
        """
        blobs = self.root / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".in-", dir=blobs)
        try:
            h = hashlib.sha256()
            size = 0
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            with os.fdopen(fd, "wb") as out, os.fdopen(os.open(path, flags), "rb") as src:
                while chunk := src.read(_CHUNK):
                    size += len(chunk)
                    if size > room:
                        raise _TooLarge
                    h.update(chunk)
                    out.write(chunk)
            sha = h.hexdigest()
            final = self._blob(sha)
            if final.exists():
                os.unlink(tmp)
            else:
                final.parent.mkdir(exist_ok=True)
                os.chmod(tmp, 0o444)
                os.replace(tmp, final)
            return sha, size
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _write_atomic(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".in-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o444)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # ----- reading ---------------------------------------------------------------------------
    def exists(self, solution_id: str) -> bool:
        """Whether a manifest for ``solution_id`` is stored (its blobs are checked on read)."""
        try:
            return self._manifest(solution_id).is_file()
        except SolutionStoreError:
            return False

    def manifest(self, solution_id: str) -> dict[str, Any]:
        """The verified manifest of ``solution_id``.

        Raises:
            SolutionStoreError: it is missing, does not hash to its id, or names unsafe paths.
        """
        path = self._manifest(solution_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise SolutionStoreError(f"solution {solution_id} is not kept in {self.root}") from None
        if hashlib.sha256(data).hexdigest() != solution_id:
            raise SolutionStoreError(f"the manifest of solution {solution_id} was changed")
        try:
            manifest = json.loads(data)
            files = manifest["files"]
            links = manifest["links"]
            dirs = manifest["dirs"]
            ok = manifest["format"] == MANIFEST_FORMAT
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok or not isinstance(files, dict) or not isinstance(links, dict):
            raise SolutionStoreError(f"the manifest of solution {solution_id} is not readable")
        entries = [*files, *links, *dirs]
        for rel in entries:
            _check_rel(rel)
        for rel, target in links.items():
            if not isinstance(target, str) or not target or os.path.isabs(target) or "\0" in target:
                raise SolutionStoreError(f"unsafe link {rel!r} -> {target!r} in {solution_id}")
        link_paths = {PurePosixPath(p) for p in links}
        for rel in entries:
            if any(parent in link_paths for parent in PurePosixPath(rel).parents):
                raise SolutionStoreError(f"{rel!r} lies below a symlink in {solution_id}")
        for rel, meta in files.items():
            if not (
                isinstance(meta, dict)
                and isinstance(meta.get("sha256"), str)
                and _ID.fullmatch(meta["sha256"])
                and isinstance(meta.get("size"), int)
                and isinstance(meta.get("mode"), int)
            ):
                raise SolutionStoreError(f"bad entry {rel!r} in the manifest of {solution_id}")
        return dict(manifest)

    def _read_blob(self, sha: str, size: int) -> bytes:
        try:
            data = self._blob(sha).read_bytes()
        except FileNotFoundError:
            raise SolutionStoreError(f"blob {sha} of a kept solution is missing") from None
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
            raise SolutionStoreError(f"blob {sha} of a kept solution was changed")
        return data

    def files(self, solution_id: str) -> dict[str, bytes]:
        """The regular files of ``solution_id``: relative posix path -> content (verified).

        Symlinks and empty directories are not in it (:meth:`materialize` recreates them).
        """
        manifest = self.manifest(solution_id)
        return {
            rel: self._read_blob(meta["sha256"], meta["size"])
            for rel, meta in sorted(manifest["files"].items())
        }

    def materialize(self, solution_id: str, dest: Path) -> None:
        """Write the solution into ``dest``, which must not exist or be an empty directory.

        Every blob is verified first; nothing is written outside ``dest`` (see the module
        docstring). On any error ``dest`` is left without the partial tree.

        Raises:
            SolutionStoreError: the solution is not kept, was tampered with, or is unsafe.
        """
        manifest = self.manifest(solution_id)
        contents = {
            rel: (self._read_blob(meta["sha256"], meta["size"]), meta["mode"] & _MODE_MASK)
            for rel, meta in manifest["files"].items()
        }
        dest = Path(dest)
        if dest.is_symlink() or (dest.exists() and any(dest.iterdir())):
            raise SolutionStoreError(f"{dest} must be a new or empty directory")
        dest.mkdir(parents=True, exist_ok=True)
        try:
            self._write_tree(dest, manifest, contents)
        except BaseException:
            for child in list(dest.iterdir()):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
            raise

    def _write_tree(
        self, dest: Path, manifest: dict[str, Any], contents: dict[str, tuple[bytes, int]]
    ) -> None:
        def make_dirs(rel: PurePosixPath) -> None:
            path = dest
            for part in rel.parts:
                path = path / part
                try:
                    os.mkdir(path, 0o755)
                except FileExistsError:
                    if path.is_symlink() or not path.is_dir():
                        raise SolutionStoreError(f"{rel} collides in the kept solution") from None

        for rel in manifest["dirs"]:
            make_dirs(PurePosixPath(rel))
        for rel, (data, mode) in sorted(contents.items()):
            p = PurePosixPath(rel)
            make_dirs(p.parent)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(dest / rel, flags, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                os.fchmod(f.fileno(), mode | 0o400)
        base = os.path.realpath(dest)
        for rel, target in sorted(manifest["links"].items()):
            p = PurePosixPath(rel)
            make_dirs(p.parent)
            os.symlink(target, dest / rel)
        for rel in manifest["links"]:
            resolved = os.path.realpath(dest / rel)
            if not (resolved == base or resolved.startswith(base + os.sep)):
                raise SolutionStoreError(f"link {rel!r} of the kept solution leads outside it")


def keeper_for_store(db_path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> SolutionKeeper:
    """The keeper of the run store ``db_path``: ``<db_path>.solutions/`` beside the file."""
    db_path = Path(db_path)
    return SolutionKeeper(db_path.with_name(db_path.name + ".solutions"), max_bytes)


__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_FILES",
    "SolutionKeeper",
    "SolutionStoreError",
    "keeper_for_store",
]
