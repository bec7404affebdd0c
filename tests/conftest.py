"""Shared fixtures: one asset/anchor cache per test session, sandbox availability."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

# One cache for the whole session, so the kernel task's anchors are calibrated once per run.
_SESSION_CACHE = Path(tempfile.mkdtemp(prefix="rebench-test-cache-"))
os.environ.setdefault("REBENCH_CACHE_DIR", str(_SESSION_CACHE))
# Runs recorded by `rebench run` in tests go to the session dir, never the user's data dir.
os.environ.setdefault("REBENCH_DB", str(_SESSION_CACHE / "runs.db"))
atexit.register(shutil.rmtree, _SESSION_CACHE, ignore_errors=True)

HAVE_BWRAP = shutil.which("bwrap") is not None
SANDBOXES = [
    "local",
    pytest.param(
        "bwrap",
        marks=pytest.mark.skipif(
            not HAVE_BWRAP, reason="bubblewrap is not installed (apt-get install bubblewrap)"
        ),
    ),
]

warnings.filterwarnings("ignore", message="sandbox='local' gives the agent no isolation")


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """The session's asset and anchor cache."""
    return Path(os.environ["REBENCH_CACHE_DIR"])


@pytest.fixture
def tmp_workspace(tmp_path: Path) -> Iterator[Path]:
    ws = tmp_path / "ws"
    ws.mkdir()
    yield ws
