"""The ``rebench serve`` benchmark rows measure what they say (``rebench bench`` judges them)."""

from __future__ import annotations

import pytest

pytest.importorskip("openenv")

from rebench_gym.serve.bench import serve_benchmarks, serve_lines
from tests.conftest import HAVE_BWRAP


@pytest.mark.slow
@pytest.mark.bwrap
@pytest.mark.skipif(not HAVE_BWRAP, reason="needs bubblewrap")
def test_serve_rows_compare_the_server_with_in_process_steps() -> None:
    row = serve_benchmarks("bwrap", repeats=20, sessions=4, sleep_s=0.5, steps=2)
    assert row["served_step_p50_ms"] > 0 and row["in_process_step_p50_ms"] > 0
    assert row["added_p50_ms"] == pytest.approx(
        row["served_step_p50_ms"] - row["in_process_step_p50_ms"]
    )
    # 4 sessions of `sleep 0.5` overlap: far above one session (a generous bound)
    assert row["ratio"] > 2.0, row
    assert row["one_session_steps_per_s"] < 2.1  # one session cannot beat 1 / 0.5 s
    text = "\n".join(serve_lines(row))
    assert "target < 3 ms" in text and "target >= 12x" in text
