"""Server-rendered SVG charts (lanehub/web/charts.py): labels are escaped, an
empty chart says "no data", and every figure the picture shows is in its table
as text (and in the SVG's aria-label and <title>) for people who cannot see it."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from lanehub.web.charts import NO_DATA, Bar, Series, bar_chart, lag_and_outbox_chart, line_chart, nice_ceiling

SVG = "{http://www.w3.org/2000/svg}"


def svg_of(markup: str) -> ET.Element:
    """The chart's SVG, parsed as XML: a picture a browser can draw."""
    return ET.fromstring(re.search(r"<svg.*</svg>", str(markup), re.S).group(0))


def table_rows(markup: str) -> list[list[str]]:
    body = re.search(r"<tbody>(.*)</tbody>", str(markup), re.S).group(1)
    return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)]


def test_labels_are_escaped_in_the_title_legend_bars_and_table():
    evil = '<script>alert("x")</script>'
    line = str(line_chart(evil, [Series(evil, [(0, 1), (60, 2)])], start=0, end=120))
    bars = str(bar_chart(evil, [Bar(evil, 3, note=evil)], label_header=evil, value_header="n"))
    for markup in (line, bars):
        assert "<script>" not in markup
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in markup
        picture = svg_of(markup)
        assert picture.find(f"{SVG}title").text == evil  # escaped in the markup, the label itself when read
        assert picture.get("role") == "img" and evil in picture.get("aria-label")


def test_an_empty_chart_says_no_data():
    for markup in (line_chart("Lag", [Series("Lag", [])], start=0, end=3600),
                   line_chart("Lag", [Series("Lag", [(0, None)])], start=0, end=3600),
                   lag_and_outbox_chart("S001", [], start=0, end=3600),
                   bar_chart("Sales", []), bar_chart("Sales", [Bar("2026-01-01", 0)])):
        picture = svg_of(markup)
        assert [t.text for t in picture.iter(f"{SVG}text")] == [NO_DATA]
        assert picture.get("aria-label").endswith(": no data") and "<table" not in str(markup)


def test_the_line_chart_puts_every_figure_in_its_table_and_draws_gaps_for_unknown_values():
    samples = [{"at": 0, "lag": 4, "pending_up": 0}, {"at": 60, "lag": None, "pending_up": 7},
               {"at": 120, "lag": 2, "pending_up": 3}]
    markup = str(lag_and_outbox_chart("Store S001", samples, start=0, end=3600))
    assert table_rows(markup) == [["00:00", "4", "0"], ["00:01", "", "7"], ["00:02", "2", "3"]]
    assert "<th>Lag (changes behind HQ)</th><th>Outbox (waiting for HQ)</th>" in markup
    picture = svg_of(markup)
    assert "latest: Lag (changes behind HQ) 2, Outbox (waiting for HQ) 3" in picture.get("aria-label")
    lines = picture.findall(f"{SVG}polyline")
    assert len(lines) == 1  # the outbox; the lag's two known points are cut apart by the unknown one
    assert len(lines[0].get("points").split()) == 3
    assert len(picture.findall(f"{SVG}circle")) == 5  # every known point is marked
    assert "10" in [t.text for t in picture.iter(f"{SVG}text")]  # the axis top: 7 rounded up


def test_the_bar_chart_has_a_bar_and_a_table_row_per_label():
    bars = [Bar("2026-03-01", 2, "5.50 EUR"), Bar("2026-03-02", 0), Bar("2026-03-03", 1, "1.20 EUR")]
    markup = str(bar_chart("Sales per day", bars, label_header="Day", value_header="Sales", note_header="Takings"))
    assert table_rows(markup) == [["2026-03-01", "2", "5.50 EUR"], ["2026-03-02", "0", ""], ["2026-03-03", "1", "1.20 EUR"]]
    picture = svg_of(markup)
    tips = [rect.find(f"{SVG}title").text for rect in picture.findall(f"{SVG}rect")]
    assert tips == ["2026-03-01: 2 (5.50 EUR)", "2026-03-02: 0", "2026-03-03: 1 (1.20 EUR)"]
    heights = [float(rect.get("height")) for rect in picture.findall(f"{SVG}rect")]
    assert heights[0] == 2 * heights[2] and heights[1] == 0
    assert picture.get("aria-label") == "Sales per day: 3 in all, 3 bars, the highest 2"


def test_the_axis_top_is_a_round_number_at_or_above_the_highest_value():
    assert [nice_ceiling(v) for v in (0, 1, 1.5, 3, 7, 10, 11, 99, 450)] == [1, 1, 2, 5, 10, 10, 20, 100, 500]
