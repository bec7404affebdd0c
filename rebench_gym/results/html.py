"""The leaderboard as one self-contained HTML page with inline SVG plots.

No scripts, fonts, stylesheets or images are loaded from anywhere: the page is a single file that
reads the same from disk, a mail attachment or a CI artifact. Plots are drawn here as SVG:

* score@k against the total time budget ``k × per-run limit`` (log-2 axis), one line per agent,
  task and per-run limit, plus one per agent for the average over tasks;
* score over time (mean best-so-far normalized score against elapsed seconds), one plot per task.

The published human figures are shown beside them, labelled as such.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from rebench_gym.results.leaderboard import (
    Leaderboard,
    averages_table,
    fmt_seconds,
    score_at_k_table,
    task_table,
)

PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip

WIDTH, HEIGHT = 640, 340
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 60, 200, 30, 45


@dataclass(frozen=True)
class Series:
    """One line of a plot: a label and ``(x, y)`` points.

    ``marks`` draws the points as crosses without a line (events such as invalid score calls).
    """

    label: str
    points: tuple[tuple[float, float], ...]
    dashed: bool = False
    marks: bool = False


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        if v >= lo - step * 1e-9:
            ticks.append(round(v, 12))
        v += step
    return ticks


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    log2_x: bool = False,
    x_format: str = "seconds",
    hline: tuple[float, str] | None = None,
) -> str:
    """An SVG line chart (step-free polylines with point markers) as a string.

    Args:
        series: The lines.
        title: Title above the plot.
        x_label: Label of the x axis.
        y_label: Label of the y axis.
        log2_x: A log-2 x axis (points with x <= 0 are dropped).
        x_format: ``"seconds"`` (ticks as durations) or ``"number"``.
        hline: An optional dashed horizontal reference line ``(y, label)``.
    """
    pts = [(x, y) for s in series for x, y in s.points if math.isfinite(y)]
    if log2_x:
        pts = [(x, y) for x, y in pts if x > 0]
    w = WIDTH - MARGIN_L - MARGIN_R
    h = HEIGHT - MARGIN_T - MARGIN_B
    parts = [
        f'<svg width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
        f'<text x="{MARGIN_L}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    if not pts:
        parts.append(f'<text x="{MARGIN_L}" y="{MARGIN_T + h / 2}">no data</text></svg>')
        return "".join(parts)

    def tx(x: float) -> float:
        return math.log2(x) if log2_x else x

    xs = [tx(x) for x, _ in pts]
    ys = [y for _, y in pts] + ([hline[0]] if hline else [])
    x_lo, x_hi = min(xs), max(xs)
    if x_hi - x_lo < 1e-12:
        x_lo, x_hi = x_lo - 1.0, x_hi + 1.0
    y_lo, y_hi = min(0.0, min(ys)), max(1.0, max(ys) * 1.05)

    def px(x: float) -> float:
        return MARGIN_L + (tx(x) - x_lo) / (x_hi - x_lo) * w

    def py(y: float) -> float:
        return MARGIN_T + h - (y - y_lo) / (y_hi - y_lo) * h

    axis = MARGIN_T + h
    parts.append(
        f'<rect x="{MARGIN_L}" y="{MARGIN_T}" width="{w}" height="{h}" fill="none" stroke="#999"/>'
    )
    for yt in _nice_ticks(y_lo, y_hi):
        y = py(yt)
        parts.append(
            f'<line x1="{MARGIN_L}" x2="{MARGIN_L + w}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#eee"/>'
            f'<text x="{MARGIN_L - 6}" y="{y + 4:.1f}" font-size="11" '
            f'text-anchor="end">{yt:g}</text>'
        )
    if log2_x:
        xticks = [2.0**e for e in range(math.floor(x_lo), math.ceil(x_hi) + 1)]
        if len(xticks) > 8:
            stride = math.ceil(len(xticks) / 8)
            xticks = xticks[::stride]
    else:
        xticks = _nice_ticks(x_lo, x_hi)
    for xt in xticks:
        if not (x_lo - 1e-9 <= tx(xt) <= x_hi + 1e-9):
            continue
        x = px(xt)
        text = fmt_seconds(xt) if x_format == "seconds" else f"{xt:g}"
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{axis}" y2="{axis + 4}" stroke="#999"/>'
            f'<text x="{x:.1f}" y="{axis + 16}" font-size="11" '
            f'text-anchor="middle">{escape(text)}</text>'
        )
    parts.append(
        f'<text x="{MARGIN_L + w / 2}" y="{HEIGHT - 6}" font-size="12" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text x="14" y="{MARGIN_T + h / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 14 {MARGIN_T + h / 2})">{escape(y_label)}</text>'
    )
    legend_y = MARGIN_T + 8
    if hline is not None:
        y = py(hline[0])
        parts.append(
            f'<line x1="{MARGIN_L}" x2="{MARGIN_L + w}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#000" stroke-dasharray="6 4"/>'
            f'<line x1="{MARGIN_L + w + 10}" x2="{MARGIN_L + w + 30}" y1="{legend_y}" '
            f'y2="{legend_y}" stroke="#000" stroke-dasharray="6 4"/>'
            f'<text x="{MARGIN_L + w + 34}" y="{legend_y + 4}" font-size="10">'
            f"{escape(hline[1])}</text>"
        )
        legend_y += 16
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        points = [(x, y) for x, y in s.points if math.isfinite(y) and (x > 0 or not log2_x)]
        if not points:
            continue
        if s.marks:
            parts += [_cross(px(x), py(y), color) for x, y in points]
            parts.append(
                _cross(MARGIN_L + w + 20, legend_y, color)
                + f'<text x="{MARGIN_L + w + 34}" y="{legend_y + 4}" font-size="10">'
                f"{escape(s.label[:34])}</text>"
            )
            legend_y += 16
            continue
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        dash = ' stroke-dasharray="3 3"' if s.dashed else ""
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"{dash}/>'
        )
        parts += [
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{color}"/>' for x, y in points
        ]
        parts.append(
            f'<line x1="{MARGIN_L + w + 10}" x2="{MARGIN_L + w + 30}" y1="{legend_y}" '
            f'y2="{legend_y}" stroke="{color}" stroke-width="2"{dash}/>'
            f'<text x="{MARGIN_L + w + 34}" y="{legend_y + 4}" font-size="10">'
            f"{escape(s.label[:34])}</text>"
        )
        legend_y += 16
    parts.append("</svg>")
    return "".join(parts)


def _cross(x: float, y: float, color: str) -> str:
    """An SVG cross (×) of 8 px centred on ``(x, y)``."""
    return (
        f'<path d="M{x - 4:.1f},{y - 4:.1f}L{x + 4:.1f},{y + 4:.1f}M{x - 4:.1f},{y + 4:.1f}'
        f'L{x + 4:.1f},{y - 4:.1f}" stroke="{color}" stroke-width="2"/>'
    )


BASE_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f3f3f3; }
.warn { background: #fff3cd; border: 1px solid #e0b000; padding: 0.5em 1em; }
.ref { background: #eef4ff; border: 1px solid #99b; padding: 0.5em 1em; }
code { font-size: 12px; }
"""


class Markup(str):
    """Text that is already HTML (built from escaped parts): :func:`html_table` keeps it as is."""

    __slots__ = ()


def _cell(text: str) -> str:
    return text if isinstance(text, Markup) else escape(text)


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table; every cell is escaped unless it is :class:`Markup`."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(lb: Leaderboard, *, title: str = "RE-Bench leaderboard") -> str:
    """The leaderboard as one self-contained HTML document (tables and inline SVG plots)."""
    pct = round(100 * float(lb.settings.get("confidence", 0.95)))
    ref = lb.human_reference
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{BASE_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    if lb.warnings:
        items = "".join(f"<li>{escape(w)}</li>" for w in lb.warnings)
        out.append(f'<div class="warn"><strong>Warnings</strong><ul>{items}</ul></div>')
    out.append(
        f'<div class="ref"><strong>Human baseline: published figures, not measured here.'
        f"</strong> {escape(ref['source'])}. {escape(ref['note'])}<ul>"
        + "".join(f"<li>{escape(f)}</li>" for f in ref["figures"])
        + "</ul></div>"
    )
    out.append(
        f"<h2>Per agent and task</h2><p>Mean normalized score with a {pct}% "
        "percentile-bootstrap interval over runs.</p>"
    )
    if not lb.rows:
        out.append("<p>No finished episodes in the store.</p>")
    out.append(html_table(*task_table(lb)))
    out.append("<h2>Average over tasks</h2>")
    out.append(html_table(*averages_table(lb)))
    out.append(
        "<h2>score@k against total time budget</h2><p>k runs drawn with replacement; the best "
        "of the k counts (a random one for ScalingLaw). Total budget = k × per-run limit.</p>"
    )
    series = []
    for r in lb.rows:
        by_limit: dict[float | None, list[tuple[float, float]]] = defaultdict(list)
        for s in r.score_at_k:
            by_limit[s.limit_s].append((s.total_budget_s, s.estimate.mean))
        for limit, points in by_limit.items():
            label = f"{r.key.agent} {_short(r.key.env_id)} {fmt_seconds(limit)}"
            series.append(Series(label, tuple(points)))
    for a in lb.averages:
        if len(a.tasks) < 2:
            continue
        per_limit: dict[float | None, list[tuple[float, float]]] = defaultdict(list)
        for limit, k, est in a.score_at_k:
            if limit is not None:
                per_limit[limit].append((k * limit, est.mean))
        for limit, points in per_limit.items():
            label = f"{a.agent} average {fmt_seconds(limit)}"
            series.append(Series(label, tuple(points), dashed=True))
    full_scale = any(r.key.scale == "full" for r in lb.rows)
    hline = (
        (float(ref["human_8h_mean_normalized_score"]), "humans 8 h (published)")
        if full_scale
        else None
    )
    out.append(
        line_chart(
            series,
            title="score@k",
            x_label="total time budget (k × per-run limit)",
            y_label="normalized score",
            log2_x=True,
            hline=hline,
        )
    )
    out.append(html_table(*score_at_k_table(lb)))
    out.append(
        "<h2>Score over time</h2><p>Mean best-so-far normalized score (last valid so far "
        "for ScalingLaw) against elapsed seconds in the episode.</p>"
    )
    by_task: dict[str, list[Series]] = defaultdict(list)
    for r in lb.rows:
        label = f"{r.key.agent} {r.key.scale} {r.key.anchors}"
        by_task[r.key.env_id].append(Series(label, r.score_over_time))
    for env_id, task_series in sorted(by_task.items()):
        out.append(
            line_chart(
                task_series,
                title=env_id,
                x_label="elapsed time in the episode",
                y_label="normalized score",
            )
        )
    settings = ", ".join(f"{k}={v}" for k, v in sorted(lb.settings.items()))
    out.append(f"<p><small>Settings: {escape(settings)}</small></p></body></html>")
    return "\n".join(out) + "\n"


def _short(env_id: str) -> str:
    return env_id.removeprefix("RE-Bench/").removesuffix("-v0")
