"""Small charts drawn on the server as SVG: no chart library, no CDN, no script.

``line_chart`` draws values over time (a store's lag and outbox over the last
hour), ``bar_chart`` one bar per label (sales per day). Each returns markup for
a template: a ``<figure>`` with the SVG (``role="img"``, an ``aria-label`` and a
``<title>``) and the same figures as text in a ``<table>``, so a screen reader,
a text browser and a test read what the picture shows. Every label is escaped.
Styling is by SVG presentation attributes only (the pages' CSP allows no more).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 480, 130
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 22, 22  # room for the axis labels and the legend
COLOURS = ("#1f6feb", "#cf222e", "#1a7f37", "#9a6700")
NO_DATA = "no data"


@dataclass(frozen=True)
class Series:
    """One line: ``points`` are (epoch seconds, value); a value of None is a gap (not known)."""

    label: str
    points: Sequence[tuple[float, float | None]]


@dataclass(frozen=True)
class Bar:
    """One bar; ``note`` is an extra figure for the table only (a day's takings)."""

    label: str
    value: float
    note: str = ""


def clock(stamp: float) -> str:
    """An x label: the time of day, UTC (as the pages' ``when`` filter)."""
    return time.strftime("%H:%M", time.gmtime(stamp))


def nice_ceiling(value: float) -> float:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``value`` (and at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # not reached: value <= 10 * power by the choice of power


def figure(value: float) -> str:
    """A figure as text: whole numbers without ".0"."""
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _svg(title: str, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
            f'height="{HEIGHT}" role="img" aria-label="{escape(label)}" class="chart-picture">'
            f"<title>{escape(title)}</title>" + "".join(body) + "</svg>")


def _empty(title: str) -> Markup:
    text = (f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="13" fill="#57606a">'
            f"{NO_DATA}</text>")
    frame = f'<rect x="0.5" y="0.5" width="{WIDTH - 1}" height="{HEIGHT - 1}" fill="none" stroke="#d0d7de"/>'
    return Markup(f'<figure class="chart chart-empty">{_svg(title, [frame, text], f"{title}: {NO_DATA}")}'
                  f"<figcaption>{escape(title)}: {NO_DATA}</figcaption></figure>")


def _axes(top: float, unit: str) -> list[str]:
    bottom_y, right_x = HEIGHT - BOTTOM, WIDTH - RIGHT
    return [
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom_y}" stroke="#8c959f"/>',
        f'<line x1="{LEFT}" y1="{bottom_y}" x2="{right_x}" y2="{bottom_y}" stroke="#8c959f"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end" font-size="10" fill="#57606a">'
        f"{escape(figure(top) + unit)}</text>",
        f'<text x="{LEFT - 4}" y="{bottom_y}" text-anchor="end" font-size="10" fill="#57606a">0</text>',
    ]


def _cell(value: float | None, unit: str) -> str:
    """A figure in the chart's table: empty when unknown."""
    return "" if value is None else str(escape(figure(value) + unit))


def line_chart(title: str, series: Sequence[Series], *, start: float, end: float,
               x_label: Callable[[float], str] = clock, x_header: str = "Time (UTC)", unit: str = "") -> Markup:
    """Lines of values over [start, end] (epoch seconds), one colour per series, a legend,
    and a table of every point (one row per time, one column per series)."""
    known = [value for s in series for _, value in s.points if value is not None]
    if not known:
        return _empty(title)
    top = nice_ceiling(max(known))
    span = max(end - start, 1.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def xy(at: float, value: float) -> str:
        x = LEFT + plot_w * min(max((at - start) / span, 0.0), 1.0)
        y = TOP + plot_h * (1 - value / top)
        return f"{x:.1f},{y:.1f}"

    body = _axes(top, unit)
    bottom_y = HEIGHT - BOTTOM
    body.append(f'<text x="{LEFT}" y="{bottom_y + 14}" font-size="10" fill="#57606a">{escape(x_label(start))}</text>')
    body.append(f'<text x="{WIDTH - RIGHT}" y="{bottom_y + 14}" text-anchor="end" font-size="10" fill="#57606a">'
                f"{escape(x_label(end))}</text>")
    latest = []
    for n, line in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        runs: list[list[str]] = [[]]
        for at, value in sorted(line.points, key=lambda p: p[0]):
            if value is None:
                runs.append([])  # a gap: the line stops and starts again
            else:
                runs[-1].append(xy(at, value))
        for run in runs:
            if len(run) > 1:
                body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(run)}"/>')
            for point in run:
                x, y = point.split(",")
                body.append(f'<circle cx="{x}" cy="{y}" r="2" fill="{colour}"/>')
        values = [v for _, v in sorted(line.points, key=lambda p: p[0]) if v is not None]
        latest.append(f"{line.label} {figure(values[-1]) + unit if values else 'unknown'}")
        legend_x = LEFT + 6 + 200 * n
        body.append(f'<rect x="{legend_x}" y="6" width="10" height="10" fill="{colour}"/>'
                    f'<text x="{legend_x + 14}" y="15" font-size="11" fill="#24292f">{escape(line.label)}</text>')
    label = f"{title} ({x_label(start)} to {x_label(end)}); latest: {', '.join(latest)}"
    times = sorted({at for line in series for at, _ in line.points})
    by_series = [dict(line.points) for line in series]
    head = f"<th>{escape(x_header)}</th>" + "".join(f"<th>{escape(line.label)}</th>" for line in series)
    rows = "".join(
        f"<tr><td>{escape(x_label(at))}</td>"
        + "".join(f"<td>{_cell(values.get(at), unit)}</td>" for values in by_series)
        + "</tr>" for at in times)
    return Markup(f'<figure class="chart">{_svg(title, body, label)}<figcaption>{escape(title)}</figcaption>'
                  f"<details><summary>Figures</summary><table class=\"chart-figures\"><thead><tr>{head}</tr></thead>"
                  f"<tbody>{rows}</tbody></table></details></figure>")


def bar_chart(title: str, bars: Sequence[Bar], *, label_header: str = "", value_header: str = "",
              note_header: str = "", unit: str = "") -> Markup:
    """One bar per label, left to right, with the label of the first, the last and every
    seventh bar under it; each bar's <title> and the table give every figure."""
    if not bars or not any(bar.value for bar in bars):
        return _empty(title)
    top = nice_ceiling(max(bar.value for bar in bars))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / len(bars)
    body = _axes(top, unit)
    bottom_y = HEIGHT - BOTTOM
    for n, bar in enumerate(bars):
        height = plot_h * bar.value / top
        x = LEFT + n * step
        tip = f"{bar.label}: {figure(bar.value)}{unit}" + (f" ({bar.note})" if bar.note else "")
        body.append(f'<rect x="{x + step * 0.15:.1f}" y="{bottom_y - height:.1f}" width="{step * 0.7:.1f}" '
                    f'height="{height:.1f}" fill="{COLOURS[0]}"><title>{escape(tip)}</title></rect>')
        if n in (0, len(bars) - 1) or n % 7 == 0 and n < len(bars) - 3:
            anchor = "start" if n == 0 else ("end" if n == len(bars) - 1 else "middle")
            at = x if n == 0 else (x + step if n == len(bars) - 1 else x + step / 2)
            body.append(f'<text x="{at:.1f}" y="{bottom_y + 14}" text-anchor="{anchor}" font-size="10" '
                        f'fill="#57606a">{escape(bar.label)}</text>')
    total = sum(bar.value for bar in bars)
    label = f"{title}: {figure(total)}{unit} in all, {len(bars)} bars, the highest {figure(max(b.value for b in bars))}{unit}"
    notes = any(bar.note for bar in bars)
    head = f"<th>{escape(label_header)}</th><th>{escape(value_header)}</th>" + (
        f"<th>{escape(note_header)}</th>" if notes else "")
    rows = "".join(f"<tr><td>{escape(bar.label)}</td><td>{escape(figure(bar.value) + unit)}</td>"
                   + (f"<td>{escape(bar.note)}</td>" if notes else "") + "</tr>" for bar in bars)
    return Markup(f'<figure class="chart">{_svg(title, body, label)}<figcaption>{escape(title)}</figcaption>'
                  f"<details><summary>Figures</summary><table class=\"chart-figures\"><thead><tr>{head}</tr></thead>"
                  f"<tbody>{rows}</tbody></table></details></figure>")


def lag_and_outbox_chart(title: str, samples: Sequence[dict], *, start: float, end: float) -> Markup:
    """A store's replication over time, as HQ and the store page both show it: from
    samples with ``at``, ``lag`` (None: HQ's head was not known) and ``pending_up``."""
    return line_chart(title, [
        Series("Lag (changes behind HQ)", [(s["at"], s["lag"]) for s in samples]),
        Series("Outbox (waiting for HQ)", [(s["at"], s["pending_up"]) for s in samples]),
    ], start=start, end=end)
