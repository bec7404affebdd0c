"""Results of rollouts: a SQLite run store, statistics, and leaderboards.

* :mod:`~rebench_gym.results.store`: :class:`RunStore`, the embedded SQLite store every
  ``rebench run`` writes to as it goes (episode rows, score log rows, run resumption), and
  :class:`StoreRecorder`, the wrapper that copies score log rows into it as they happen.
* :mod:`~rebench_gym.results.stats`: bootstrap confidence intervals, score@k by resampling runs
  as in the RE-Bench paper, score at a per-run time limit, score over time.
* :mod:`~rebench_gym.results.leaderboard`: :func:`build_leaderboard` groups finished episodes by
  agent, task and everything that makes normalized scores comparable (scale, task version,
  hardware, anchors) and renders Markdown or JSON; :mod:`~rebench_gym.results.html` renders a
  self-contained HTML page with inline SVG plots.
"""

from __future__ import annotations

from rebench_gym.results.leaderboard import (
    HUMAN_REFERENCE,
    Leaderboard,
    build_leaderboard,
    render_json,
    render_markdown,
)
from rebench_gym.results.store import (
    EpisodeRecord,
    EpisodeSpec,
    RunStore,
    ScoreRowRecord,
    StoreRecorder,
    default_db_path,
)

__all__ = [
    "HUMAN_REFERENCE",
    "EpisodeRecord",
    "EpisodeSpec",
    "Leaderboard",
    "RunStore",
    "ScoreRowRecord",
    "StoreRecorder",
    "build_leaderboard",
    "default_db_path",
    "render_json",
    "render_markdown",
]
