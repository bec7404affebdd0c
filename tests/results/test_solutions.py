"""Kept solutions: content addressing, limits, tampering, unsafe manifests; the store's columns."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from rebench_gym.results import RunStore
from rebench_gym.results.solutions import (
    SolutionKeeper,
    SolutionStoreError,
    keeper_for_store,
)
from rebench_gym.results.store import RescoreRecord


def make_solution(root: Path) -> Path:
    sol = root / "solution"
    (sol / "pkg").mkdir(parents=True)
    (sol / "empty").mkdir()
    (sol / "solution.py").write_text("print('hi')\n")
    (sol / "pkg" / "data.bin").write_bytes(bytes(range(256)) * 10)
    (sol / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(sol / "run.sh", 0o4755)  # setuid: must not survive
    os.symlink("pkg/data.bin", sol / "alias.bin")
    return sol


def write_manifest(keeper: SolutionKeeper, manifest: dict) -> str:
    """Store a hand-made manifest under its true id (what an attacker with disk access does)."""
    data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    sid = hashlib.sha256(data).hexdigest()
    (keeper.root / "solutions").mkdir(parents=True, exist_ok=True)
    (keeper.root / "solutions" / f"{sid}.json").write_bytes(data)
    return sid


def test_keep_and_materialize_round_trip(tmp_path: Path) -> None:
    sol = make_solution(tmp_path)
    keeper = SolutionKeeper(tmp_path / "kept")
    sid = keeper.keep(sol)
    assert sid is not None and len(sid) == 64 and keeper.exists(sid)
    files = keeper.files(sid)
    assert set(files) == {"solution.py", "pkg/data.bin", "run.sh"}
    assert files["pkg/data.bin"] == bytes(range(256)) * 10
    out = tmp_path / "out"
    keeper.materialize(sid, out)
    assert (out / "solution.py").read_text() == "print('hi')\n"
    assert (out / "empty").is_dir()
    assert os.readlink(out / "alias.bin") == "pkg/data.bin"
    assert (out / "alias.bin").read_bytes() == files["pkg/data.bin"]
    mode = stat.S_IMODE(os.stat(out / "run.sh").st_mode)
    assert mode & 0o100 and not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX)
    # the same files again: the same id, nothing new stored
    blobs = sorted((keeper.root / "blobs").rglob("*"))
    assert keeper.keep(out) == sid
    assert sorted((keeper.root / "blobs").rglob("*")) == blobs
    # one byte changed: another id, the unchanged blobs shared
    (out / "solution.py").write_text("print('ho')\n")
    other = keeper.keep(out)
    assert other not in (None, sid)
    assert len(list((keeper.root / "blobs").rglob("*/*"))) == len(blobs) - 3 + 1


def test_a_solution_past_the_limit_is_not_kept(tmp_path: Path) -> None:
    sol = tmp_path / "solution"
    sol.mkdir()
    (sol / "a").write_bytes(b"x" * 600)
    (sol / "b").write_bytes(b"y" * 600)
    keeper = SolutionKeeper(tmp_path / "kept", max_bytes=1000)
    assert keeper.keep(sol) is None
    assert not keeper.root.exists()  # nothing of a dropped solution is stored
    (sol / "b").unlink()
    assert keeper.keep(sol) is not None


def test_links_leading_outside_are_not_kept(tmp_path: Path) -> None:
    sol = tmp_path / "solution"
    sol.mkdir()
    (tmp_path / "secret").write_text("hidden")
    os.symlink(str(tmp_path / "secret"), sol / "abs")
    os.symlink("../secret", sol / "rel")
    (sol / "ok.py").write_text("x = 1\n")
    keeper = SolutionKeeper(tmp_path / "kept")
    sid = keeper.keep(sol)
    assert sid is not None
    manifest = keeper.manifest(sid)
    assert manifest["links"] == {} and set(manifest["files"]) == {"ok.py"}


def test_tampered_blob_or_manifest_is_refused(tmp_path: Path) -> None:
    keeper = SolutionKeeper(tmp_path / "kept")
    sid = keeper.keep(make_solution(tmp_path))
    assert sid is not None
    sha = keeper.manifest(sid)["files"]["solution.py"]["sha256"]
    blob = keeper.root / "blobs" / sha[:2] / sha
    os.chmod(blob, 0o644)
    blob.write_text("import os; os.system('evil')\n")
    with pytest.raises(SolutionStoreError, match="changed"):
        keeper.files(sid)
    out = tmp_path / "out"
    with pytest.raises(SolutionStoreError, match="changed"):
        keeper.materialize(sid, out)
    assert not out.exists() or not any(out.iterdir())
    manifest = keeper.root / "solutions" / f"{sid}.json"
    os.chmod(manifest, 0o644)
    manifest.write_text(manifest.read_text().replace('"run.sh"', '"run2.sh"'))
    with pytest.raises(SolutionStoreError, match="manifest"):
        keeper.manifest(sid)
    for bad in ("../../etc/passwd", "x" * 64 + "/..", "ABC"):
        assert not keeper.exists(bad)
        with pytest.raises(SolutionStoreError, match="not a solution id"):
            keeper.files(bad)


@pytest.mark.parametrize(
    "entries",
    [
        {"files": {"../escape": "F"}, "links": {}, "dirs": []},
        {"files": {"/abs": "F"}, "links": {}, "dirs": []},
        {"files": {"a/./b": "F"}, "links": {}, "dirs": []},
        {"files": {}, "links": {"l": "/etc"}, "dirs": []},
        {"files": {"l/x": "F"}, "links": {"l": "sub"}, "dirs": ["sub"]},
    ],
)
def test_unsafe_manifests_are_refused(tmp_path: Path, entries: dict) -> None:
    keeper = SolutionKeeper(tmp_path / "kept")
    sol = tmp_path / "s"
    sol.mkdir()
    (sol / "f").write_text("data")
    good = keeper.keep(sol)
    assert good is not None
    entry = keeper.manifest(good)["files"]["f"]
    files = {k: entry for k in entries["files"]}
    sid = write_manifest(keeper, {"format": 1, **entries, "files": files})
    with pytest.raises(SolutionStoreError, match=r"unsafe|below a symlink"):
        keeper.materialize(sid, tmp_path / "out")
    assert not (tmp_path / "escape").exists()


def test_a_link_that_resolves_outside_through_another_link_is_caught(tmp_path: Path) -> None:
    """``up -> .`` and ``out -> up/..`` look harmless one by one; together they leave."""
    keeper = SolutionKeeper(tmp_path / "kept")
    sid = write_manifest(
        keeper, {"format": 1, "files": {}, "links": {"up": ".", "out": "up/.."}, "dirs": []}
    )
    dest = tmp_path / "a" / "dest"
    with pytest.raises(SolutionStoreError, match="outside"):
        keeper.materialize(sid, dest)
    assert dest.is_dir() and not any(dest.iterdir())


def test_materialize_needs_a_new_or_empty_directory(tmp_path: Path) -> None:
    keeper = SolutionKeeper(tmp_path / "kept")
    sid = keeper.keep(make_solution(tmp_path))
    assert sid is not None
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "there").write_text("x")
    with pytest.raises(SolutionStoreError, match="new or empty"):
        keeper.materialize(sid, dest)
    assert (dest / "there").read_text() == "x"


def test_keeper_for_store_sits_beside_the_database(tmp_path: Path) -> None:
    assert keeper_for_store(tmp_path / "runs.db").root == tmp_path / "runs.db.solutions"


def test_old_store_gains_the_solution_column_and_rescores_table(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE score_rows (episode_id INTEGER NOT NULL, seq INTEGER NOT NULL, "
        "timestamp REAL NOT NULL, elapsed_s REAL NOT NULL, raw REAL, normalized REAL NOT NULL, "
        "valid INTEGER NOT NULL, message TEXT NOT NULL, PRIMARY KEY (episode_id, seq));"
    )
    conn.close()
    with RunStore(db) as store:
        assert store.rescores() == []
    conn = sqlite3.connect(db)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(score_rows)")}
    conn.close()
    assert "solution_id" in cols


def test_rescores_are_stored_beside_and_never_over(tmp_path: Path) -> None:
    from tests.results.test_store import make_result, make_spec, score_row

    sid = "ab" * 32
    with RunStore(tmp_path / "runs.db") as store:
        run_id = store.open_run(make_spec(), 1)
        eid = store.begin_episode(run_id, 0, make_spec())
        row = score_row(1.0, 0.5) | {"solution_id": sid}
        bad = score_row(2.0, 0.0, valid=False) | {"solution_id": "../x"}
        store.finish_episode(eid, make_result(0.5, rows=[row, bad]))
        (ep,) = store.episodes()
        assert [r.solution_id for r in ep.score_rows] == [sid, None]
        assert [r.seq for r in ep.score_rows] == [0, 1]
        rescore = RescoreRecord(
            episode_id=eid,
            seq=0,
            rescored_at=1.0,
            scorer_version="v",
            anchors={"start": 2.0, "reference": 1.0, "source": "paper", "details": ""},
            sandbox="bwrap",
            raw=1.25,
            normalized=0.75,
            valid=True,
            message="ok",
        )
        store.add_rescores([rescore])
        with pytest.raises(sqlite3.IntegrityError):
            store.add_rescores([rescore])
        assert store.rescores(run_id=run_id) == [rescore]
        assert store.rescores(episode_id=eid + 1) == []
        (ep,) = store.episodes()
        assert ep.score_rows[0].normalized == 0.5  # the original is untouched
