"""The ``files`` observation: a sorted, bounded listing whose cost does not grow with the
workspace."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rebench_gym.envs import observation
from rebench_gym.envs.observation import workspace_tree


def _fill(root: Path, dirs: int, files_per_dir: int) -> None:
    for d in range(dirs):
        sub = root / "venv" / f"pkg{d:03d}"
        sub.mkdir(parents=True)
        for f in range(files_per_dir):
            (sub / f"m{f:04d}.py").write_bytes(b"x")


def test_a_small_workspace_is_listed_whole_and_sorted(tmp_path: Path) -> None:
    (tmp_path / "solution").mkdir()
    (tmp_path / "solution" / "a.py").write_bytes(b"x" * 2048)
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "solution" / "__pycache__").mkdir()
    (tmp_path / "solution" / "__pycache__" / "a.pyc").write_bytes(b"")
    assert workspace_tree(tmp_path).splitlines() == [
        "notes.txt  2 B",
        "solution/",
        "solution/a.py  2.0 KB",
    ]


def test_a_huge_workspace_is_cut_with_a_marker_and_top_levels_first(tmp_path: Path) -> None:
    (tmp_path / "solution").mkdir()
    (tmp_path / "solution" / "solution.py").write_text("x")
    _fill(tmp_path, 50, 1000)  # 50,000 files
    lines = workspace_tree(tmp_path, max_entries=200).splitlines()
    assert len(lines) == 201 and "listing stopped at 200 entries" in lines[-1]
    assert {"solution/", "solution/solution.py  1 B", "venv/"} <= set(lines)
    assert lines[:-1] == sorted(lines[:-1])


def test_the_walk_reads_only_about_what_it_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(tmp_path, 50, 1000)
    read = [0]
    real_scandir = os.scandir

    class Counting:
        def __init__(self, path: Path) -> None:
            self.it = real_scandir(path)

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self.it.close()

        def __iter__(self) -> Iterator[os.DirEntry[str]]:
            for entry in self.it:
                read[0] += 1
                yield entry

    monkeypatch.setattr(observation.os, "scandir", Counting)
    observation.workspace_tree(tmp_path, max_entries=200)
    assert read[0] <= 201  # of 50,051 entries


def test_the_listing_is_cached_until_something_listed_changes(tmp_path: Path) -> None:
    (tmp_path / "solution").mkdir()
    (tmp_path / "solution" / "a.py").write_text("x")
    listing = observation.WorkspaceListing(tmp_path)
    first = listing.text()
    assert listing.text() is first  # nothing changed: the cached text, no walk

    def after(change: Callable[[], object]) -> str:
        change()
        text = listing.text()
        assert text == workspace_tree(tmp_path), "the listing missed a change"
        return text

    assert "b.py" in after(lambda: (tmp_path / "solution" / "b.py").write_text("y"))
    assert "a.py  5 B" in after(lambda: (tmp_path / "solution" / "a.py").write_text("xxxxx"))
    assert "c.py" in after(lambda: (tmp_path / "solution" / "b.py").rename(tmp_path / "c.py"))
    assert "deep/" in after(lambda: (tmp_path / "solution" / "deep").mkdir())
    assert "d.txt" in after(lambda: (tmp_path / "solution" / "deep" / "d.txt").write_text("z"))
    assert "c.py" not in after(lambda: (tmp_path / "c.py").unlink())
    # appending to an open file, as a training log does
    with open(tmp_path / "solution" / "a.py", "a") as fh:
        fh.write("more")
        fh.flush()
        assert "a.py  9 B" in listing.text()
    same = listing.text()
    assert listing.text() is same
    listing.close()
