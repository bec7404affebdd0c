"""``rebench view``: one self-contained HTML page per stored episode, for reading what an agent did.

The page shows the episode's outcome and budgets, its score timeline (an inline SVG plot of each
score call's normalized score and the best so far against elapsed time, invalid calls marked),
the score rows (each linked to the step that made it and to the kept solution it scored, shown
as a diff against the previous kept solution), the task instructions, and every step: action,
output, time taken and tokens.

Safety: everything on the page that came from the agent (actions, outputs, file names, solution
files, scorer messages) is escaped, and a Content-Security-Policy allows only the page's own
inline style and script (by their sha256), with no network at all: a ``<script>`` an agent
printed is shown as text and could not run even if escaping failed somewhere.

Size: a long episode stays fast to open. Output longer than :data:`INLINE_CHARS` is folded
(``<details>``), and each step shows at most a per-field cap of its action and of its output
(the first and last halves, with a marker saying how much was left out): the cap is
:data:`PAGE_TEXT_BUDGET` shared over the episode's steps, so a page stays within a fixed size
whatever the episode printed; the page says so and names the trajectory file holding the full
text. Generation is linear in the trajectory's size.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

from rebench_gym.errors import UsageError
from rebench_gym.results.html import BASE_CSS, Markup, Series, html_table, line_chart
from rebench_gym.results.leaderboard import fmt_seconds
from rebench_gym.results.solutions import SolutionKeeper, SolutionStoreError, keeper_for_store
from rebench_gym.results.store import EpisodeRecord, RunStore, ScoreRowRecord
from rebench_gym.results.transcript import (
    Transcript,
    action_call,
    find_run,
    load_transcripts,
    run_episodes,
    step_action,
    step_output,
)
from rebench_gym.sandbox.output import truncate_middle

#: texts up to this many characters are shown open; longer ones are folded
INLINE_CHARS = 1_500
#: characters of action and output text a page shows in all, shared over its steps
PAGE_TEXT_BUDGET = 12_000_000
#: the least and the most characters one step's action (or output) may show
MIN_FIELD_CHARS, MAX_FIELD_CHARS = 2_000, 40_000
#: characters of one solution's diff shown, and of all diffs of a page
DIFF_CHARS, PAGE_DIFF_BUDGET = 60_000, 4_000_000
#: files larger than this are compared by size and hash only, not diffed line by line
DIFF_FILE_BYTES = 512 * 1024

_CSS = (
    BASE_CSS
    + """
pre { white-space: pre-wrap; word-break: break-all; background: #f7f7f7; border: 1px solid #ddd;
      padding: 4px 6px; margin: 2px 0; font-size: 12px; max-height: 40em; overflow: auto; }
.step { border-top: 1px solid #ddd; padding: 4px 0; }
.step:target, tr:target { background: #fffbe0; }
.meta { font-size: 12px; color: #555; }
.meta a { font-weight: bold; }
.lbl { font-size: 11px; color: #777; text-transform: uppercase; }
.scored { border-left: 4px solid #2ca02c; padding-left: 6px; }
.invalid { border-left: 4px solid #d62728; padding-left: 6px; }
summary { cursor: pointer; font-size: 12px; color: #333; }
.add { color: #11632a; } .del { color: #a11; } .hunk { color: #555; }
.note { background: #eef4ff; border: 1px solid #99b; padding: 0.5em 1em; font-size: 13px; }
"""
)

#: the page's only script: shows the fold/unfold buttons (hidden without scripts) and wires them
_SCRIPT = """(function () {
  var tools = document.getElementById("tools");
  function fold(open) {
    var all = document.querySelectorAll("details.fold");
    for (var i = 0; i < all.length; i++) { all[i].open = open; }
  }
  document.getElementById("open-all").addEventListener("click", function () { fold(true); });
  document.getElementById("close-all").addEventListener("click", function () { fold(false); });
  tools.hidden = false;
})();"""


def _sha256_source(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


#: no network, no plugins, no forms; only the page's own style and script run
CSP = (
    "default-src 'none'; img-src data:; base-uri 'none'; form-action 'none'; "
    f"style-src '{_sha256_source(_CSS)}'; script-src '{_sha256_source(_SCRIPT)}'"
)


def _field_cap(steps: int) -> int:
    share = PAGE_TEXT_BUDGET // max(1, 2 * steps)
    return max(MIN_FIELD_CHARS, min(MAX_FIELD_CHARS, share))


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(value: float | None, fmt: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


def _block(label: str, text: str, cap: int, *, open_limit: int = INLINE_CHARS) -> str:
    """``text`` as an escaped ``<pre>``: shown open when short, else folded and capped."""
    shown = truncate_middle(text, cap)
    lines = text.count("\n") + 1 if text else 0
    if len(text) <= open_limit:
        return f'<div class="lbl">{escape(label)}</div><pre>{escape(shown)}</pre>'
    first = text.strip().split("\n", 1)[0][:120]
    cut = f", {len(text) - cap:,}+ characters left out in the middle" if len(text) > cap else ""
    return (
        f'<details class="fold"><summary><span class="lbl">{escape(label)}</span> '
        f"{len(text):,} characters, {lines:,} lines{cut}: <code>{escape(first)}</code>"
        f"</summary><pre>{escape(shown)}</pre></details>"
    )


def _running_best(rows: Sequence[ScoreRowRecord], aggregation: str) -> list[float]:
    """The episode's score after each row: best valid so far, or last valid for ``last``."""
    out: list[float] = []
    current = 0.0
    for row in rows:
        if row.valid and math.isfinite(row.normalized):
            current = row.normalized if aggregation == "last" else max(current, row.normalized)
        out.append(current)
    return out


def _plot(record: EpisodeRecord) -> str:
    rows = record.score_rows
    so_far = _running_best(rows, record.aggregation)
    best: list[tuple[float, float]] = [(0.0, 0.0)]
    for row, value in zip(rows, so_far, strict=True):
        best += [(row.elapsed_s, best[-1][1]), (row.elapsed_s, value)]
    end = max([record.wall_time_s or 0.0] + [r.elapsed_s for r in rows])
    best.append((end, best[-1][1]))
    label = "last valid so far" if record.aggregation == "last" else "best so far"
    series = [
        Series(label, tuple(best)),
        Series("invalid call", tuple((r.elapsed_s, 0.0) for r in rows if not r.valid), marks=True),
        Series("score call", tuple((r.elapsed_s, r.normalized) for r in rows if r.valid)),
    ]
    return line_chart(
        series,
        title="Score timeline",
        x_label="elapsed time in the episode",
        y_label="normalized score",
    )


# ----- solutions -----------------------------------------------------------------------------
def _is_text(data: bytes) -> bool:
    return b"\0" not in data[:8192]


def _file_diff(path: str, old: bytes | None, new: bytes | None) -> list[str]:
    """Unified diff lines of one file (or a one-line note for binary and large files)."""
    if old == new:
        return []
    sizes = f"{len(old) if old is not None else '-'} -> {len(new) if new is not None else '-'} B"
    big = max(len(old or b""), len(new or b"")) > DIFF_FILE_BYTES
    if big or not _is_text(old or b"") or not _is_text(new or b""):
        return [f"~~~ {path}: binary or large file changed ({sizes})"]
    a = (old or b"").decode("utf-8", errors="replace").splitlines(keepends=True)
    b = (new or b"").decode("utf-8", errors="replace").splitlines(keepends=True)
    return list(
        difflib.unified_diff(
            a,
            b,
            fromfile=f"a/{path}" if old is not None else "/dev/null",
            tofile=f"b/{path}" if new is not None else "/dev/null",
        )
    )


def _diff_html(lines: list[str], cap: int) -> str:
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        if used + len(line) > cap:
            out.append(f"[... {len(lines) - i:,} more diff lines left out ...]\n")
            break
        used += len(line)
        text = escape(line if line.endswith("\n") else line + "\n")
        if line.startswith(("+++", "---", "~~~")):
            out.append(f"<b>{text}</b>")
        elif line.startswith("+"):
            out.append(f'<span class="add">{text}</span>')
        elif line.startswith("-"):
            out.append(f'<span class="del">{text}</span>')
        elif line.startswith("@@"):
            out.append(f'<span class="hunk">{text}</span>')
        else:
            out.append(text)
    return "<pre>" + "".join(out) + "</pre>"


def _solutions(record: EpisodeRecord, keeper: SolutionKeeper | None) -> tuple[dict[str, int], str]:
    """Anchors of the kept solutions (solution id -> the first score row that scored it) and the
    section showing each as a diff against the previous kept one."""
    first_row: dict[str, int] = {}
    for seq, row in enumerate(record.score_rows):
        sid = row.solution_id
        if sid and sid not in first_row:
            first_row[sid] = seq
    if not first_row:
        return {}, ""
    parts = [
        '<h2 id="solutions">Kept solutions</h2><p>Each solution a score call scored, as a diff '
        "against the previous kept solution of the episode (the first against nothing).</p>"
    ]
    previous: dict[str, bytes] = {}
    budget = PAGE_DIFF_BUDGET
    for sid, seq in first_row.items():
        rows = [i for i, r in enumerate(record.score_rows) if r.solution_id == sid]
        links = ", ".join(f'<a href="#score-{i}">row {i}</a>' for i in rows)
        parts.append(
            f'<section id="sol-{seq}"><h3>Solution <code>{escape(sid[:12])}</code></h3>'
            f'<p class="meta">scored by score {links}; id <code>{escape(sid)}</code></p>'
        )
        try:
            if keeper is None or not keeper.exists(sid):
                parts.append("<p>Not kept in this store (no files to show).</p></section>")
                continue
            files = keeper.files(sid)
        except (SolutionStoreError, OSError) as e:  # damaged or tampered: say so, go on
            parts.append(f"<p>The kept solution cannot be read: {escape(str(e))}</p></section>")
            continue
        lines: list[str] = []
        for path in sorted(set(previous) | set(files)):
            lines += _file_diff(path, previous.get(path), files.get(path))
        cap = min(DIFF_CHARS, max(0, budget))
        summary = f"{len(files)} files, {sum(map(len, files.values())):,} bytes"
        if not lines:
            parts.append(f"<p>{summary}; no change from the previous kept solution.</p>")
        else:
            parts.append(
                f'<details class="fold" open><summary>diff ({summary}, {len(lines):,} diff '
                f"lines)</summary>{_diff_html(lines, cap)}</details>"
            )
            budget -= min(cap, sum(map(len, lines)))
        parts.append("</section>")
        previous = files
    return first_row, "".join(parts)


# ----- the page ------------------------------------------------------------------------------
def _score_table(t: Transcript, solution_rows: dict[str, int]) -> str:
    record = t.record
    so_far = _running_best(record.score_rows, record.aggregation)
    rows = []
    for seq, (row, value) in enumerate(zip(record.score_rows, so_far, strict=True)):
        step = t.score_steps[seq]
        step_cell = Markup(f'<a href="#step-{step}">step {step}</a>') if step else "-"
        sid = row.solution_id
        sol_cell: str = "-"
        if sid and sid in solution_rows:
            sol_cell = Markup(
                f'<a href="#sol-{solution_rows[sid]}"><code>{escape(sid[:12])}</code></a>'
            )
        rows.append(
            [
                Markup(f'<a id="score-{seq}" href="#score-{seq}">{seq}</a>'),
                fmt_seconds(row.elapsed_s),
                step_cell,
                _num(row.raw, ".4f"),
                _num(row.normalized),
                _num(value),
                "valid" if row.valid else "INVALID",
                truncate_middle(row.message, 400),
                sol_cell,
            ]
        )
    header = ["#", "elapsed", "step", "raw", "normalized", "so far", "valid", "message"]
    return html_table([*header, "solution"], rows)


def _budgets(record: EpisodeRecord) -> str:
    b = record.budgets
    tokens = record.tokens.get("total_tokens")
    rows = [
        ["time", fmt_seconds(b.get("time_budget_s")), fmt_seconds(record.wall_time_s)],
        [
            "tokens",
            "unlimited" if b.get("token_budget") is None else f"{b['token_budget']:,}",
            "-" if tokens is None else f"{tokens:,}",
        ],
        [
            "steps",
            "unlimited" if b.get("max_steps") is None else str(b["max_steps"]),
            "-" if record.steps is None else str(record.steps),
        ],
        ["cost", "-", "-" if record.cost_usd is None else f"${record.cost_usd:.4f}"],
    ]
    return html_table(["budget", "limit", "used"], rows)


def _anchors_text(anchors: dict[str, Any] | None) -> str:
    if not anchors:
        return "-"
    text = f"start {anchors.get('start')}, reference {anchors.get('reference')}"
    return text + (f" ({anchors['source']})" if anchors.get("source") else "")


def _overview(record: EpisodeRecord) -> str:
    items = [
        ("status", record.status),
        ("normalized score", _num(record.normalized_score)),
        ("raw score", _num(record.raw_score, ".4f")),
        ("end", record.end_reason or "-"),
        ("steps", "-" if record.steps is None else str(record.steps)),
        ("wall time", fmt_seconds(record.wall_time_s)),
        ("started", _when(record.started_at)),
        ("scale", record.scale),
        ("sandbox", str(record.make_kwargs.get("sandbox") or "bwrap (default)")),
        ("hidden score", "yes (the agent saw validity only)" if record.hidden_score else "no"),
        ("aggregation", record.aggregation),
        ("anchors", _anchors_text(record.anchors)),
        ("seed", "-" if record.seed is None else str(record.seed)),
        ("task version", record.task_version),
        ("rebench_gym", record.package_version),
        ("hardware", record.hardware),
        ("run", f"{record.run_id}, episode {record.episode_index}"),
    ]
    if record.error:
        items.append(("error", record.error))
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in items)
    return f"<table><tbody>{body}</tbody></table>"


def _action(step: dict[str, Any], cap: int) -> str:
    """A step's action: the tool and its arguments as the env parsed them, else the raw text."""
    call = action_call(step)
    if call is None:
        return _block("action (malformed)", step_action(step), cap)
    tool, args = call
    if tool == "bash":
        label = "bash" + (f" (timeout {args['timeout']:g} s)" if "timeout" in args else "")
        return _block(label, str(args["command"]), cap)
    if tool == "write_file":
        return _block(f"write_file {args['path']}", str(args["content"]), cap)
    if tool == "str_replace":
        text = f"--- old\n{args['old']}\n+++ new\n{args['new']}"
        return _block(f"str_replace {args['path']}", text, cap)
    if tool == "view":
        lines = f" lines {args.get('start', 1)}-{args.get('end', 'end')}" if len(args) > 1 else ""
        return _block("action", f"view {args['path']}{lines}", cap)
    return _block("action", tool, cap)


def _step_meta(step: dict[str, Any], prev_tokens: int | None, scores: list[int]) -> str:
    n = int(step.get("step") or 0)
    timings = step.get("timings") or {}
    parts = [f'<a href="#step-{n}">step {n}</a>']
    parts.append(f"at {fmt_seconds(timings.get('since_reset_s'))}")
    if timings.get("step_s") is not None:
        parts.append(f"took {float(timings['step_s']):.2f} s")
    if timings.get("think_s") is not None:
        parts.append(f"agent {float(timings['think_s']):.2f} s")
    tokens = step.get("tokens")
    total = tokens.get("total_tokens") if isinstance(tokens, dict) else None
    if isinstance(total, int):
        delta = f" (+{total - prev_tokens:,})" if prev_tokens is not None else ""
        parts.append(f"tokens {total:,}{delta}")
    reward = float(step.get("reward") or 0.0)
    if reward:
        parts.append(f"reward {reward:+.4f}")
    parts += [f'<a href="#score-{s}">score row {s}</a>' for s in scores]
    info = step.get("info") or {}
    if step.get("terminated"):
        parts.append("terminated")
    if step.get("truncated"):
        parts.append(f"truncated by {escape(str(info.get('truncated_by') or 'a budget'))}")
    if info.get("action_error"):
        parts.append("invalid action")
    return " · ".join(parts)


def _steps(t: Transcript) -> str:
    if not t.steps:
        return f'<p class="note">{escape(t.note or "no steps were recorded")}</p>'
    cap = _field_cap(len(t.steps))
    by_step: dict[int, list[int]] = {}
    for seq, step_no in enumerate(t.score_steps):
        if step_no is not None:
            by_step.setdefault(step_no, []).append(seq)
    invalid = {
        s for s, r in zip(t.score_steps, t.record.score_rows, strict=True) if s and not r.valid
    }
    out = [
        f'<p class="note">{len(t.steps):,} steps. Texts over {INLINE_CHARS:,} characters are '
        f"folded; each step shows at most {cap:,} characters of its action and of its output "
        "(first and last halves). The full text of every step is in the trajectory file "
        f"<code>{escape(str(t.trajectory_file))}</code>.</p>"
    ]
    prev_tokens: int | None = None
    for step in t.steps:
        n = int(step.get("step") or 0)
        scores = by_step.get(n, [])
        cls = "step invalid" if n in invalid else "step scored" if scores else "step"
        out.append(
            f'<section class="{cls}" id="step-{n}"><div class="meta">'
            f"{_step_meta(step, prev_tokens, scores)}</div>"
            f"{_action(step, cap)}"
            f"{_block('output', step_output(step), cap)}</section>"
        )
        tokens = step.get("tokens")
        total = tokens.get("total_tokens") if isinstance(tokens, dict) else None
        prev_tokens = total if isinstance(total, int) else prev_tokens
    last = t.steps[-1].get("observation")
    if isinstance(last, dict) and last.get("files"):
        out.append(_block("workspace files after the last step", str(last["files"]), 100_000))
    return "".join(out)


_SOLUTIONS_LINK = ' · <a href="#solutions">solutions</a>'


def render_episode(t: Transcript, keeper: SolutionKeeper | None = None) -> str:
    """The page of one episode (a self-contained HTML document)."""
    r = t.record
    title = f"{r.env_id} · {r.agent} · run {r.run_id} episode {r.episode_index}"
    solution_rows, solutions_html = _solutions(r, keeper)
    hidden = (
        '<p class="note">Hidden-score episode: the agent saw only whether each call was '
        "valid; the numbers here are the real scores kept in the store.</p>"
        if r.hidden_score
        else ""
    )
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(r.env_id)}: {escape(r.agent)}</h1>",
        '<p id="tools" hidden><button id="open-all" type="button">unfold all</button> '
        '<button id="close-all" type="button">fold all</button></p>',
        '<p><a href="#scores">scores</a> · <a href="#instructions">instructions</a> · '
        f'<a href="#steps">steps</a>{_SOLUTIONS_LINK if solutions_html else ""}</p>',
        _overview(r),
        "<h2>Budgets</h2>",
        _budgets(r),
        '<h2 id="scores">Scores</h2>',
        hidden,
        _plot(r),
        _score_table(t, solution_rows) if r.score_rows else "<p>No score calls.</p>",
        '<h2 id="instructions">Instructions</h2>',
        _block("instructions", t.instructions, 200_000, open_limit=200_000)
        if t.instructions is not None
        else f'<p class="note">{escape(t.note or "not recorded")}</p>',
    ]
    if t.start_files:
        out.append(_block("workspace files at the start", t.start_files, 100_000))
    out += ['<h2 id="steps">Steps</h2>', _steps(t), solutions_html]
    out.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(out) + "\n"


def page_paths(out: Path, records: Sequence[EpisodeRecord], single: bool) -> list[Path]:
    """Where each episode's page goes: ``out`` itself for one page, else ``<stem>-ep<N>``."""
    if single:
        return [out]
    return [
        out.with_name(f"{out.stem}-ep{r.episode_index}{out.suffix or '.html'}") for r in records
    ]


def write_pages(db: Path, run: str, out: Path, *, episode: int | None = None) -> list[Path]:
    """Write the pages of run ``run`` (an id, unique prefix or ``latest``) of the store ``db``.

    Returns:
        The files written, one per episode (``out`` itself when there is one episode).
    """
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; give the page's file name")
    with RunStore(db) as store:
        run_id = find_run(store, run)
        records = run_episodes(store, run_id, episode)
    transcripts = load_transcripts(records, db)
    keeper = keeper_for_store(db)
    paths = page_paths(out, records, single=len(records) == 1)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for transcript, path in zip(transcripts, paths, strict=True):
            path.write_text(render_episode(transcript, keeper), encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write the page {out}: {e}") from None
    return paths
