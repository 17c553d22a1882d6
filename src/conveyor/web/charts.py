"""Charts of a monitoring window, drawn as SVG on the server (no JS, no charting library).

Pure: typed series in, an SVG document (a string) out. Every text that reaches the SVG (labels,
titles, versions, flag names) is escaped, so a hostile name cannot add markup. One ``Chart`` is a
column of ``Panel``s (error rate, p95) sharing the time axis, its markers (the deploy, flag
changes, the breach) and one legend; it reads at 720 px wide."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Literal

WIDTH = 720
PANEL_HEIGHT = 210  # one panel, with its title and x axis
LEFT, RIGHT = 72, 20  # the plot area's margins inside a panel
TOP, BOTTOM = 30, 44
LEGEND_HEIGHT = 58  # the title and the legend above the panels (two rows)
PLOT_WIDTH = WIDTH - LEFT - RIGHT
PLOT_HEIGHT = PANEL_HEIGHT - TOP - BOTTOM
Y_TICKS = 4

COLOURS = {
    "new": "#1f5fbf",
    "baseline": "#6b6b6b",
    "threshold": "#c62828",
    "deploy": "#6a1b9a",
    "flag": "#d47500",
    "breach": "#c62828",
}
HALO = ' stroke="#fff" stroke-width="3" paint-order="stroke"'
FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', sans-serif\""


@dataclass(frozen=True)
class Series:
    """A line: (x, value) points, x in seconds since the window started, value in the panel's
    unit (None: no data for that interval, drawn as a gap)."""

    label: str
    points: tuple[tuple[float, float | None], ...]


@dataclass(frozen=True)
class Level:
    """A horizontal line across the panel: the previous release's baseline or a threshold."""

    label: str
    value: float
    kind: Literal["baseline", "threshold"]


@dataclass(frozen=True)
class Marker:
    """A vertical line at ``at`` seconds: the deploy (the switch), a flag change, the breach."""

    label: str
    at: float
    kind: Literal["deploy", "flag", "breach"]


@dataclass(frozen=True)
class Panel:
    title: str
    unit: Literal["%", "ms"]
    series: tuple[Series, ...] = ()
    levels: tuple[Level, ...] = ()
    breach: tuple[float, float] | None = None  # (x, value) of the breaching point, drawn as a ring


@dataclass(frozen=True)
class Chart:
    title: str
    panels: tuple[Panel, ...]
    x_from: float  # the time axis, seconds since the window started
    x_to: float
    markers: tuple[Marker, ...] = field(default=())


# --- scales ------------------------------------------------------------------------------------


def nice_max(value: float, unit: str) -> float:
    """The top of the y axis: ``value`` rounded up to 1, 2, 2.5 or 5 x 10^k (a floor for flat
    or empty data: 1% or 10 ms)."""
    floor = 1.0 if unit == "%" else 10.0
    if not math.isfinite(value) or value <= 0:
        return floor
    exponent = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * exponent * (1 + 1e-9):
            return max(step * exponent, floor / 100)
    return 10 * exponent  # pragma: no cover - the loop ends at 10


def y_max(panel: Panel) -> float:
    """The panel's y axis top: data, baseline and thresholds all fit, with a tenth of room."""
    values = [v for s in panel.series for _x, v in s.points if v is not None and math.isfinite(v)]
    values += [lv.value for lv in panel.levels if math.isfinite(lv.value)]
    if panel.breach is not None:
        values.append(panel.breach[1])
    return nice_max(max(values, default=0.0) * 1.1, panel.unit)


def y_of(value: float, top: float, panel_top: float = 0.0) -> float:
    """The y coordinate of ``value`` in a panel whose axis ends at ``top``, the panel starting at
    ``panel_top`` in the document."""
    share = min(max(value / top, 0.0), 1.0)
    return round(panel_top + TOP + PLOT_HEIGHT * (1 - share), 2)


def x_of(seconds: float, x_from: float, x_to: float) -> float:
    span = x_to - x_from if x_to > x_from else 1.0
    return round(LEFT + PLOT_WIDTH * (seconds - x_from) / span, 2)


def x_ticks(x_from: float, x_to: float) -> list[float]:
    """Tick positions at a round step (1 s .. 1 h) giving at most 8 ticks, 0 among them."""
    span = max(x_to - x_from, 1.0)
    step = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600) if span / s <= 8), 7200)
    first = math.ceil(x_from / step) * step
    return [float(first + i * step) for i in range(int((x_to - first) // step) + 1)]


def clock_label(seconds: float, span: float) -> str:
    """0:30, 12:00, -0:20 on spans of a minute or more; 5 s, 10 s below."""
    if span < 60:
        return f"{seconds:g} s"
    sign = "-" if seconds < 0 else ""
    whole = round(abs(seconds))
    return f"{sign}{whole // 60}:{whole % 60:02d}"


def value_label(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.3g}%"
    return f"{value / 1000:.3g} s" if value >= 1000 else f"{value:.3g} ms"


# --- drawing -----------------------------------------------------------------------------------


def _text(
    x: float, y: float, body: str, *, anchor: str = "start", size: int = 12, fill: str = "#222", extra: str = ""
) -> str:
    return (
        f'<text x="{x:.2f}" y="{y:.2f}" font-size="{size}" fill="{fill}" text-anchor="{anchor}"{extra}>'
        f"{escape(body)}</text>"
    )


def _panel(panel: Panel, chart: Chart, top_y: float) -> list[str]:
    top = y_max(panel)
    x0, x1 = chart.x_from, chart.x_to
    plot_bottom = top_y + TOP + PLOT_HEIGHT
    out = [f'<g class="panel" data-unit="{escape(panel.unit)}" data-y-max="{top:g}">']
    out.append(_text(LEFT, top_y + 18, panel.title, size=14, extra=' font-weight="600"'))
    out.append(
        f'<rect x="{LEFT}" y="{top_y + TOP:.2f}" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" '
        'fill="#fafafa" stroke="#ccc"/>'
    )
    for i in range(Y_TICKS + 1):
        value = top * i / Y_TICKS
        y = y_of(value, top, top_y)
        out.append(f'<line x1="{LEFT}" y1="{y}" x2="{LEFT + PLOT_WIDTH}" y2="{y}" stroke="#e4e4e4"/>')
        out.append(_text(LEFT - 6, y + 4, value_label(value, panel.unit), anchor="end", size=11, fill="#555"))
    unit_name = "error rate (%)" if panel.unit == "%" else "latency (ms)"
    mid = top_y + TOP + PLOT_HEIGHT / 2
    out.append(
        _text(16, mid, unit_name, anchor="middle", size=11, fill="#555", extra=f' transform="rotate(-90 16 {mid:.2f})"')
    )
    span = x1 - x0
    for tick in x_ticks(x0, x1):
        x = x_of(tick, x0, x1)
        out.append(f'<line x1="{x}" y1="{plot_bottom:.2f}" x2="{x}" y2="{plot_bottom + 4:.2f}" stroke="#888"/>')
        out.append(_text(x, plot_bottom + 16, clock_label(tick, span), anchor="middle", size=11, fill="#555"))
    axis = "time since monitoring started (m:ss)" if span >= 60 else "time since monitoring started (s)"
    out.append(_text(LEFT + PLOT_WIDTH / 2, plot_bottom + 34, axis, anchor="middle", size=11, fill="#555"))
    labels: list[str] = []
    for n, marker in enumerate(chart.markers):
        if not x0 <= marker.at <= x1:
            continue
        x = x_of(marker.at, x0, x1)
        dash = ' stroke-dasharray="2 3"' if marker.kind == "flag" else ""
        out.append(
            f'<line class="marker {marker.kind}" x1="{x}" y1="{top_y + TOP:.2f}" x2="{x}" y2="{plot_bottom:.2f}" '
            f'stroke="{COLOURS[marker.kind]}" stroke-width="1.5"{dash}><title>{escape(marker.label)}</title></line>'
        )
        label_y = top_y + TOP + 12 + 12 * (n % 3)  # staggered: markers close together stay readable
        labels.append(_text(x + 3, label_y, marker.label, size=10, fill=COLOURS[marker.kind], extra=HALO))
    placed: dict[str, list[float]] = {"threshold": [], "baseline": []}  # label baselines per side
    for level in sorted(panel.levels, key=lambda lv: lv.value):
        y = y_of(level.value, top, top_y)
        dash = "6 4" if level.kind == "threshold" else "3 3"
        out.append(
            f'<line class="{level.kind}" data-value="{level.value:g}" x1="{LEFT}" y1="{y}" x2="{LEFT + PLOT_WIDTH}" '
            f'y2="{y}" stroke="{COLOURS[level.kind]}" stroke-width="1.5" stroke-dasharray="{dash}">'
            f"<title>{escape(level.label)}</title></line>"
        )
        # thresholds labelled on the right, baselines on the left: close levels stay readable
        # levels close together: each label at least a line above the one below it
        lx, anchor = (LEFT + PLOT_WIDTH - 4, "end") if level.kind == "threshold" else (LEFT + 90, "start")
        ly = min([y - 4, *(p - 11 for p in placed[level.kind])])
        placed[level.kind].append(ly)
        labels.append(_text(lx, ly, level.label, anchor=anchor, size=10, fill=COLOURS[level.kind], extra=HALO))
    for series in panel.series:
        out.extend(_series(series, panel, top, top_y, x0, x1))
    out.extend(labels)  # over the lines, each on a white halo
    if panel.breach is not None:
        bx, bv = panel.breach
        x, y = x_of(bx, x0, x1), y_of(bv, top, top_y)
        out.append(
            f'<circle class="breach" cx="{x}" cy="{y}" r="7" fill="none" '
            f'stroke="{COLOURS["breach"]}" stroke-width="2.5">'
            f"<title>{escape('breach: ' + value_label(bv, panel.unit))}</title></circle>"
        )
    out.append("</g>")
    return out


def _series(series: Series, panel: Panel, top: float, top_y: float, x0: float, x1: float) -> list[str]:
    out, run = [], []  # runs of consecutive points with data, drawn as one polyline each
    for x, v in [*series.points, (math.nan, None)]:
        if v is not None and math.isfinite(v):
            run.append((x_of(x, x0, x1), y_of(v, top, top_y)))
            out.append(
                f'<circle cx="{run[-1][0]}" cy="{run[-1][1]}" r="2.5" fill="{COLOURS["new"]}">'
                f"<title>{escape(f'{series.label}: {value_label(v, panel.unit)}')}</title></circle>"
            )
            continue
        if len(run) > 1:
            points = " ".join(f"{px},{py}" for px, py in run)
            out.insert(
                0,
                f'<polyline class="series" points="{points}" fill="none" stroke="{COLOURS["new"]}" stroke-width="2"/>',
            )
        run = []
    return out


def _legend(chart: Chart) -> list[str]:
    entries: list[tuple[str, str, str]] = []  # (kind, colour, label) in order, once each
    for panel in chart.panels:
        entries += [("new", COLOURS["new"], s.label) for s in panel.series]
        entries += [(lv.kind, COLOURS[lv.kind], lv.label) for lv in panel.levels if lv.kind == "baseline"]
    if any(lv.kind == "threshold" for p in chart.panels for lv in p.levels):
        entries.append(("threshold", COLOURS["threshold"], "rollback threshold"))
    for kind, label in (("deploy", "deploy (switch)"), ("flag", "flag change"), ("breach", "breach")):
        if any(m.kind == kind for m in chart.markers):
            entries.append((kind, COLOURS[kind], label))
    unique = list(dict.fromkeys(entries))
    out = ['<g class="legend">']
    x, y = float(LEFT), 34.0
    for kind, colour, label in unique:
        width = 34 + 6.2 * len(label)
        if x + width > WIDTH - RIGHT and x > LEFT:
            x, y = float(LEFT), y + 16
        dash = {
            "baseline": ' stroke-dasharray="3 3"',
            "threshold": ' stroke-dasharray="6 4"',
            "flag": ' stroke-dasharray="2 3"',
        }
        out.append(
            f'<line x1="{x:.2f}" y1="{y - 4:.2f}" x2="{x + 22:.2f}" y2="{y - 4:.2f}" '
            f'stroke="{colour}" stroke-width="2.5"{dash.get(kind, "")}/>'
        )
        out.append(_text(x + 28, y, label, size=11))
        x += width
    out.append("</g>")
    return out


def render(chart: Chart) -> str:
    """The chart as a standalone SVG document (UTF-8 text, starting with ``<svg``)."""
    height = LEGEND_HEIGHT + PANEL_HEIGHT * max(len(chart.panels), 1)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" {FONT}>',
        f"<title>{escape(chart.title)}</title>",
        f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>',
        _text(LEFT, 16, chart.title, size=13, extra=' font-weight="600"'),
        *_legend(chart),
    ]
    if not chart.panels:
        out.append(_text(WIDTH / 2, LEGEND_HEIGHT + 40, "no samples yet", anchor="middle", fill="#777"))
    for i, panel in enumerate(chart.panels):
        out.extend(_panel(panel, chart, LEGEND_HEIGHT + i * PANEL_HEIGHT))
    out.append("</svg>")
    return "\n".join(out)
