"""``rebench view``: the episode page of real recorded runs, rendered in headless Chromium.

The runs come from ``tests/results/conftest.py`` (real mini-scale rollouts in bubblewrap). The
Chromium checks need Debian's ``chromium`` (``apt-get install chromium``); they are skipped with
that reason where it is missing. Set ``REBENCH_TEST_ARTIFACTS=DIR`` to keep the screenshots.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from rebench_gym.cli import main
from rebench_gym.results import RunStore
from rebench_gym.results.view import CSP, PAGE_TEXT_BUDGET, write_pages
from rebench_gym.wrappers.trajectory import read_trajectory
from tests.results.conftest import RecordedRuns, record_chatty_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (apt-get install chromium): the page is checked "
    "in headless Chromium",
)


# ----- headless Chromium ---------------------------------------------------------------------
def chromium(page: Path, tmp_path: Path, *args: str, timeout: float = 180) -> tuple[str, str]:
    """Open ``page`` in headless Chromium; returns (stdout, console lines of stderr)."""
    assert CHROMIUM is not None
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the page itself writes nothing to the console: every console line is an uncaught error,
    # a blocked script or load (Content-Security-Policy), or a warning
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, "\n".join(console)


def screenshot(page: Path, tmp_path: Path, height: int = 3000) -> Path:
    """Save a screenshot of ``page``; returns the PNG (kept in $REBENCH_TEST_ARTIFACTS if set)."""
    png = tmp_path / f"{page.stem}.png"
    _, console = chromium(page, tmp_path, f"--screenshot={png}", f"--window-size=1280,{height}")
    assert console == "", console
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    keep = os.environ.get("REBENCH_TEST_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / png.name)
    return png


@needs_chromium
def test_console_check_catches_errors(tmp_path: Path) -> None:
    """The check the page tests rely on sees an uncaught error and a script CSP blocks."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"script-src 'none'\"></head><body><script>nope()</script>"
        "<img src=x onerror=nope()></body></html>"
    )
    _, console = chromium(page, tmp_path, "--dump-dom")
    assert "Content Security Policy" in console
    page.write_text("<!DOCTYPE html><html><body><script>nope()</script></body></html>")
    _, console = chromium(page, tmp_path, "--dump-dom")
    assert "Uncaught ReferenceError" in console


# ----- pages of real runs --------------------------------------------------------------------
def steps_of(runs: RecordedRuns, run_id: str) -> list[dict[str, Any]]:
    """The recorded steps of ``run_id``'s episode (matched by start time, as the page does)."""
    with RunStore(runs.db) as store:
        (record,) = store.episodes(run_id=run_id)
    (episode,) = [
        e
        for e in read_trajectory(runs.trajectory)
        if record.started_at <= e.header["time"] <= (record.finished_at or 0)
    ]
    return list(episode.steps)


def test_reference_page(recorded_runs: RecordedRuns, tmp_path: Path) -> None:
    out = tmp_path / "reference.html"
    assert (
        main(["view", recorded_runs.reference, "--db", str(recorded_runs.db), "--out", str(out)])
        == 0
    )
    html = out.read_text()
    with RunStore(recorded_runs.db) as store:
        (record,) = store.episodes(run_id=recorded_runs.reference)
    steps = steps_of(recorded_runs, recorded_runs.reference)
    assert record.steps == len(steps) >= 4
    # every step, in order, with its time and tokens
    ids = [int(n) for n in re.findall(r'<section class="[^"]*" id="step-(\d+)"', html)]
    assert ids == list(range(1, len(steps) + 1))
    assert html.count("tokens ") >= len(steps)
    # the plot, the budgets, the instructions
    assert "<svg" in html and "Score timeline" in html and "best so far" in html
    assert "10,000,000" in html  # the token budget's limit
    assert "Optimize a Kernel" in html
    # each score row links to the step that made it and to the solution it scored
    assert len(record.score_rows) >= 2
    for seq, row in enumerate(record.score_rows):
        step = re.search(rf'id="score-{seq}".*?href="#step-(\d+)"', html)
        assert step is not None
        assert "[score]" in json.dumps(steps[int(step.group(1)) - 1]["observation"])
        assert row.solution_id is not None
        anchor = re.search(rf'id="score-{seq}".*?href="#sol-(\d+)"', html)
        assert anchor is not None and f'id="sol-{anchor.group(1)}"' in html
    # the first kept solution is shown as a diff adding the reference's code
    assert '<span class="add">+import torch' in html
    # no network: nothing is loaded from anywhere, and the policy forbids it
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "default-src 'none'" in CSP and CSP in html.replace("&#x27;", "'")


def test_agent_output_is_text(recorded_runs: RecordedRuns, tmp_path: Path) -> None:
    """What the agent printed (a script tag, an onerror image, a broken solution raising a
    closing tag) shows as text; a malformed action and an invalid score call are marked."""
    (page,) = write_pages(recorded_runs.db, recorded_runs.scripted, tmp_path / "scripted.html")
    html = page.read_text()
    assert "<script>document.title" not in html and "<img src=x" not in html
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in html
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)" in html
    assert html.count("<script>") == 1  # the page's own
    assert "action (malformed)" in html and "invalid action" in html
    assert 'class="step invalid"' in html and "INVALID" in html
    assert "characters left out" not in html  # the env cut the long output to 16,000: it fits
    assert '<details class="fold"><summary><span class="lbl">output</span>' in html  # folded
    assert "$0.0060" in html  # the cost the agent reported


def test_page_without_trajectory(recorded_runs: RecordedRuns, tmp_path: Path) -> None:
    (page,) = write_pages(recorded_runs.db, recorded_runs.noop, tmp_path / "noop.html")
    html = page.read_text()
    assert "no trajectory was recorded" in html and "--record PATH" in html
    assert "<svg" in html and 'id="score-0"' in html


@needs_chromium
def test_pages_render_in_chromium(recorded_runs: RecordedRuns, tmp_path: Path) -> None:
    pages = write_pages(recorded_runs.db, recorded_runs.scripted, tmp_path / "scripted.html")
    pages += write_pages(recorded_runs.db, recorded_runs.reference, tmp_path / "reference.html")
    for page in pages:
        dom, console = chromium(page, tmp_path, "--dump-dom")
        assert console == "", console  # no errors, nothing blocked
        assert '<p id="tools">' in dom  # the page's own script ran under its policy
        assert "<title>pwned" not in dom and "<title>1<" not in dom
        assert "<svg" in dom and dom.count('class="step') >= 4
        screenshot(page, tmp_path)


# ----- a long episode --------------------------------------------------------------------------
def test_long_episode_page_is_fast_and_bounded(tmp_path: Path) -> None:
    """2,000 steps with 16 MB of output, recorded by the real recorder into a real store: the
    page is written in seconds, stays bounded in size and shows every step."""
    db, trajectory = tmp_path / "runs.db", tmp_path / "trajectory.jsonl"
    record_chatty_run(db, trajectory, "long", steps=2000)
    assert trajectory.stat().st_size > 16_000_000
    started = time.perf_counter()
    (page,) = write_pages(db, "long", tmp_path / "long.html")
    seconds = time.perf_counter() - started
    assert seconds < 30, seconds  # generous: about 1 s on 2 cores
    html = page.read_text()
    assert len(html) < PAGE_TEXT_BUDGET * 1.3  # bounded, whatever the episode printed
    assert len(re.findall(r'<section class="[^"]*" id="step-\d+"', html)) == 2000
    assert html.count('<a id="score-') == 40 and html.count('class="step invalid"') == 10
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html and "<b>not bold" not in html
    if CHROMIUM is not None:  # it also opens and lays out in a browser, without errors
        started = time.perf_counter()
        screenshot(page, tmp_path, height=2000)
        assert time.perf_counter() - started < 120


def test_run_of_several_episodes(tmp_path: Path) -> None:
    """One page per episode, each with its own steps from the shared trajectory file; of an
    index run twice (failed, then finished) the finished attempt."""
    db, trajectory = tmp_path / "runs.db", tmp_path / "trajectory.jsonl"
    record_chatty_run(db, trajectory, "three", steps=3, episodes=3, fail_first=True)
    pages = write_pages(db, "three", tmp_path / "pages" / "run.html")
    assert [p.name for p in pages] == ["run-ep0.html", "run-ep1.html", "run-ep2.html"]
    for index, page in enumerate(pages):
        html = page.read_text()
        assert f"episode {index} step 3" in html and "status</th><td>finished" in html
        assert f"episode {(index + 1) % 3} step" not in html
    (one,) = write_pages(db, "three", tmp_path / "one.html", episode=1)
    assert one.name == "one.html" and "episode 1 step 1" in one.read_text()


# ----- the command -----------------------------------------------------------------------------
def test_view_command_errors(
    recorded_runs: RecordedRuns, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(recorded_runs.db)
    out = str(tmp_path / "x.html")
    assert main(["view", "no-such-run", "--db", db, "--out", out]) == 2
    assert "latest runs" in capsys.readouterr().err
    assert main(["view", recorded_runs.noop, "--db", db, "--episode", "3", "--out", out]) == 2
    assert "has no episode 3" in capsys.readouterr().err
    assert main(["view", "latest", "--db", str(tmp_path / "none.db"), "--out", out]) == 2
    assert "no run store" in capsys.readouterr().err
    assert main(["view", "noop", "--db", db, "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert not Path(out).exists()
    assert main(["view", "scripted", "--db", db, "--out", out, "--json"]) == 0  # a prefix
    assert json.loads(capsys.readouterr().out) == [out]
