"""web/charts.py (pure SVG drawing) and web/monitoring.chart_for (samples -> chart), from values."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.domain.monitoring import LATENCY_BUCKETS, Window
from conveyor.spec.models import MonitorSpec
from conveyor.store.monitor_samples import Monitoring, Sample
from conveyor.web import charts
from conveyor.web.charts import Chart, Level, Marker, Panel, Series, render
from conveyor.web.monitoring import ChartInput, chart_for

NS = "{http://www.w3.org/2000/svg}"
HOSTILE = '</text><script>alert("x")</script><text a=\'&'


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything that is not well-formed XML
    assert root.tag == f"{NS}svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter() if t.tag in (f"{NS}text", f"{NS}title")]


def panel(points: tuple[tuple[float, float | None], ...], *levels: Level) -> Panel:
    return Panel("Error rate", "%", (Series("v1.1.0", points),), levels)


def test_threshold_line_at_its_value() -> None:
    # data up to 8%, threshold 2%: the axis ends at 8.8% rounded up, 10%; 2% is a fifth of the way up
    chart = Chart("t", (panel(((10, 1.0), (20, 8.0)), Level("rollback_if > 2%", 2.0, "threshold")),), 0, 30)
    root = parse(render(chart))
    (line,) = [e for e in root.iter(f"{NS}line") if e.get("class") == "threshold"]
    top = charts.LEGEND_HEIGHT + charts.TOP
    expected = top + charts.PLOT_HEIGHT * (1 - 2 / 10)
    assert float(line.get("y1", "nan")) == pytest.approx(expected, abs=0.01)
    assert line.get("y1") == line.get("y2")
    assert float(line.get("x1", "0")) == charts.LEFT
    assert float(line.get("x2", "0")) == charts.LEFT + charts.PLOT_WIDTH
    (g,) = [e for e in root.iter(f"{NS}g") if e.get("class") == "panel"]
    assert g.get("data-y-max") == "10"
    assert "rollback_if > 2%" in texts(root)


def test_second_panel_is_below_the_first() -> None:
    p95 = Panel("p95", "ms", (Series("new", ((5, 100.0),)),), (Level("> 800", 800, "threshold"),))
    chart = Chart("t", (panel(((5, 1.0),)), p95), 0, 10)
    root = parse(render(chart))
    (line,) = [e for e in root.iter(f"{NS}line") if e.get("class") == "threshold"]
    top = charts.LEGEND_HEIGHT + charts.PANEL_HEIGHT + charts.TOP
    assert float(line.get("y1", "nan")) == pytest.approx(top + charts.PLOT_HEIGHT * (1 - 800 / 1000), abs=0.01)


def test_hostile_labels_are_escaped() -> None:
    chart = Chart(
        HOSTILE,
        (Panel(HOSTILE, "%", (Series(HOSTILE, ((1, 5.0), (2, 6.0))),), (Level(HOSTILE, 1.0, "baseline"),), (2, 6.0)),),
        0,
        3,
        (Marker(HOSTILE, 1.5, "flag"),),
    )
    svg = render(chart)
    root = parse(svg)
    assert not [e for e in root.iter() if e.tag.endswith("script")]
    assert "<script>" not in svg
    assert HOSTILE in texts(root)  # shown as text, whole


@pytest.mark.parametrize(
    "points",
    [(), ((5.0, None),), ((5.0, 3.0),), ((5.0, 0.0), (10.0, 0.0), (15.0, 0.0))],
    ids=["empty", "no-data", "single", "all-zero"],
)
def test_degenerate_series(points: tuple[tuple[float, float | None], ...]) -> None:
    root = parse(render(Chart("t", (panel(points),), 0, 20)))
    polylines = list(root.iter(f"{NS}polyline"))
    assert len(polylines) == (1 if len(points) > 1 else 0)
    dots = [c for c in root.iter(f"{NS}circle")]
    assert len(dots) == sum(1 for _x, v in points if v is not None)
    for element in root.iter():  # every coordinate is a finite number inside the document
        for attr in ("x1", "y1", "x2", "y2", "cx", "cy"):
            if element.get(attr) is not None:
                assert 0 <= float(element.get(attr, "")) <= 1000
    if points and all(v == 0 for _x, v in points):  # flat at zero: on the x axis, axis to 1%
        (g,) = [e for e in root.iter(f"{NS}g") if e.get("class") == "panel"]
        assert g.get("data-y-max") == "1"
        bottom = charts.LEGEND_HEIGHT + charts.TOP + charts.PLOT_HEIGHT
        assert {float(c.get("cy", "")) for c in dots} == {bottom}


def test_no_panels_and_a_gap() -> None:
    parse(render(Chart("nothing", (), 0, 0)))
    root = parse(render(Chart("gap", (panel(((1, 1.0), (2, 2.0), (3, None), (4, 1.0), (5, 3.0))),), 0, 5)))
    assert len(list(root.iter(f"{NS}polyline"))) == 2  # no line across the interval without data


def test_x_ticks_and_labels() -> None:
    assert charts.x_ticks(0, 1800)[:3] == [0, 300, 600]
    assert charts.x_ticks(-20, 60)[0] == -20
    assert charts.clock_label(-20, 80) == "-0:20"
    assert charts.clock_label(90, 600) == "1:30"
    assert charts.clock_label(5, 30) == "5 s"
    assert charts.nice_max(8.8, "%") == 10
    assert charts.nice_max(0, "ms") == 10
    assert charts.nice_max(2100, "ms") == 2500


def window(requests: int, errors: int, fast: bool = True) -> Window:
    buckets = [0] * (len(LATENCY_BUCKETS) + 1)
    bound = 0.025 if fast else 0.5
    buckets[next(i for i, b in enumerate(LATENCY_BUCKETS) if b >= bound)] = requests  # under 25 ms or 500 ms
    return Window(requests=requests, errors=errors, latency_buckets=tuple(buckets), seconds=5.0)


def test_chart_for_a_breach() -> None:
    start = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    mon = Monitoring(
        "d1", start, start - timedelta(seconds=8), 30.0, 5.0, "rollback", 0, "breach", "breach",
        None, None, None, None, None, None, None, None,
    )  # fmt: skip
    breach = [{"signal": "error_rate", "breached": True}]
    stored = tuple(
        Sample(i, start + timedelta(seconds=5 * i), start + timedelta(seconds=5 * (i + 1)), w, v, f)
        for i, (w, v, f) in enumerate(
            [
                (window(100, 0), "healthy", []),
                (window(100, 1), "healthy", []),
                (window(100, 10, False), "breach", breach),
            ]
        )
    )
    spec = MonitorSpec.model_validate(
        {"rollback_if": {"error_rate": "> 2%", "p95_ms": "> 800"}, "regression": {"error_rate": "2x"}}
    )
    flag = {"flag": "<b>new-checkout</b>", "at": (start + timedelta(seconds=7)).isoformat(), "raised": True}
    data = ChartInput("shop", "production", "v1.1.0", "v1.0.0", mon, stored, spec, window(300, 3), (flag,))
    chart = chart_for(data)
    errors, p95 = chart.panels
    assert errors.series[0].points == ((5.0, 0.0), (10.0, 1.0), (15.0, 10.0))
    assert errors.breach == (15.0, 10.0) and p95.breach is None
    assert {(lv.kind, lv.value) for lv in errors.levels} == {("baseline", 1.0), ("threshold", 2.0)}
    assert {lv.label for lv in errors.levels} >= {"v1.0.0 before the switch", "regression error_rate 2x previous"}
    assert [(m.kind, m.at) for m in chart.markers] == [("deploy", -8.0), ("flag", 7.0), ("breach", 15.0)]
    assert (chart.x_from, chart.x_to) == (-8.0, 30.0)
    assert [lv.value for lv in p95.levels if lv.kind == "threshold"] == [800.0]
    root = parse(render(chart))
    assert "flag <b>new-checkout</b>" in texts(root)


def test_chart_for_a_window_just_started() -> None:
    start = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    mon = Monitoring(
        "d1", start, start, 1800.0, 10.0, "alert", 0, None, None,
        None, None, None, None, None, None, None, None,
    )  # fmt: skip
    chart = chart_for(ChartInput("shop", "staging", None, None, mon, (), None, None, ()))
    assert (chart.x_from, chart.x_to) == (0.0, 1800.0)
    assert [m.kind for m in chart.markers] == ["deploy"]
    root = parse(render(chart))
    assert not list(root.iter(f"{NS}polyline")) and not list(root.iter(f"{NS}circle"))
    assert "time since monitoring started (m:ss)" in texts(root)
