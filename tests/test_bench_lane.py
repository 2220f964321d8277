"""`lanehub bench lane` runs end to end at a tiny scale (figures are not asserted: they live in docs/benchmarks.md)."""

import json

from bench.big_ticket import report as big_ticket_report
from bench.lane import report
from lanehub.chain.processes import run_lanehub


def test_bench_lane_measures_the_floor_beside_every_rate(tmp_path):
    result = run_lanehub("bench", "lane", "--customers", "200", "--products", "100", "--rate-lines", "10",
                         "--specific-prices", "5", "--rates", "50", "--seconds", "1", "--flood", "100",
                         "--search-samples", "3", "--workdir", str(tmp_path), "--json")
    figures = json.loads(result.stdout)
    assert [run["rate"] for run in figures["scan"]] == [50.0]
    for run in figures["scan"]:
        for floor in ("floor", "durable_floor"):
            assert run[floor]["messages"] == run["scans"] == 100
            assert all(run[floor][f"{name}_ms"] > 0 for name in ("p50", "p99", "p999", "max"))
            assert all(run["ratio"][floor][name] > 0 for name in ("p50", "p99", "p999", "max"))
    saturation = figures["saturation"]
    assert saturation["scans_per_s"] > 0
    for floor in ("floor", "durable_floor"):
        assert saturation[floor]["messages"] == 100 and saturation[floor]["per_s"] > 0
        assert saturation["ratio"][floor] > 0
    # The durable floor commits beside the edge's database (the same disk).
    assert (tmp_path / "lane" / "floor.db").exists() and (tmp_path / "lane" / "S001.db").exists()
    assert all(kind["p99_ms"] > 0 for kind in figures["search"].values())
    # What `bench lane` prints without --json: every figure beside its floors.
    lines = report(figures)
    for name in ("p50", "p99", "p99.9", "max"):
        assert any(line.split()[0] == name and "x floor" in line and "x durable" in line for line in lines), name
    assert any(line.startswith("saturation:") and "x floor" in line for line in lines)


def test_bench_lane_big_ticket_times_lines_and_a_flood(tmp_path):
    result = run_lanehub("bench", "lane", "--big-ticket", "20", "--rounds", "1", "--flood-scans", "60",
                         "--flood-rates", "300,0", "--quiet-rate", "20", "--quiet-seconds", "1", "--flood-timeout", "60",
                         "--customers", "200", "--products", "50", "--workdir", str(tmp_path), "--json")
    figures = json.loads(result.stdout)
    growth = figures["growth"]
    assert growth["lines"] == 20 and set(growth["median_ms"]) == {"1", "20"}
    assert all(ms > 0 for ms in growth["median_ms"].values()) and growth["ratio_to_first"]["20"] > 0
    assert [flood["flood"]["rate"] for flood in figures["flood"]] == [300.0, 0.0]
    for flood in figures["flood"]:
        assert (flood["flood"]["scans"], flood["flood"]["answered"], flood["flood"]["timed_out"]) == (60, 60, False)
        assert flood["alone"]["scans"] >= 15 and flood["alone"]["unanswered"] == 0
        assert flood["beside_flood"]["unanswered"] == 0 and flood["ratio_p99"] > 0
    assert (tmp_path / "big-ticket" / "S001.db").exists()
    lines = big_ticket_report(figures)
    assert any(line.strip().startswith("line    20:") and "x line 1" in line for line in lines)
    assert any("p99" in line and "x alone" in line for line in lines)
