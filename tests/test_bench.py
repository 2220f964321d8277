"""`lanehub bench sync` runs end to end at a tiny scale (figures are not asserted: they live in docs/benchmarks.md)."""

import json

from postgres import libpq_url

from bench.big_ticket import report as big_ticket_report
from bench.lane import report
from lanehub.chain.processes import run_lanehub


def test_bench_sync_measures_every_part(tmp_path):
    data = tmp_path / "data"
    result = run_lanehub("bench", "sync", "--customers", "300", "--stores", "2", "--samples", "3",
                         "--catchup", "150", "--catchup-customers", "100", "--away", "1", "--data", str(data),
                         "--workdir", str(tmp_path / "run"), "--json")
    figures = json.loads(result.stdout)
    snapshot = figures["snapshot"]
    assert snapshot["customers"] == 300
    for kind in ("cold", "warm"):  # the edge's own process, sampled from /proc
        assert snapshot[kind]["snapshot_s"] > 0 and 0 < snapshot[kind]["edge_rss_after_mib"] <= snapshot[kind]["edge_peak_rss_mib"]
    assert figures["latency"]["samples"] == 3
    assert figures["latency"]["hq_to_store_ms"]["p99"] > 0
    assert figures["latency"]["store_to_store_ms"]["p99"] > 0
    catchup = figures["catchup"]
    assert catchup["changes_behind"] == 150 and catchup["customers"] == 100 and catchup["edge_peak_rss_mib"] > 0
    assert catchup["edge_written_mib"] >= 0  # from /proc/<pid>/io, the edge's WAL and checkpoints
    assert figures["reconnect"]["broker_away_s"] == [1.0] and len(figures["reconnect"]["converged_s"]) == 1
    # The generated HQ databases are kept in --data and reused by the next run.
    generated = {p.name: p.stat().st_mtime_ns for p in data.glob("hq-*.db")}
    assert set(generated) == {"hq-300.db", "hq-100.db"}
    again = run_lanehub("bench", "sync", "--customers", "300", "--only", "snapshot", "--data", str(data),
                        "--workdir", str(tmp_path / "again"), "--json")
    assert json.loads(again.stdout)["snapshot"]["warm"]["snapshot_s"] > 0
    assert {p.name: p.stat().st_mtime_ns for p in data.glob("hq-*.db")} == generated


def test_bench_import_measures_every_run(tmp_path):
    result = run_lanehub("bench", "import", "--customers", "300", "--workdir", str(tmp_path), "--json")
    runs = json.loads(result.stdout)["import"]
    assert [r["summary"] for r in runs] == ["pos -> lanehub: added 300; updated 0; deactivated 0",
                                            "pos -> lanehub: added 0; updated 0; deactivated 0",
                                            "pos -> lanehub: added 0; updated 3; deactivated 0",
                                            "pos -> lanehub: added 0; updated 0; deactivated 0"]
    assert all(r["seconds"] > 0 for r in runs)


def test_bench_chain_runs_simulated_stores_against_real_hq_processes_on_both_backends(tmp_path, postgres):
    result = run_lanehub("bench", "chain", "--stores", "8", "--seconds", "2", "--batch", "3", "--interval", "0.2",
                         "--postgres", libpq_url(postgres), "--workdir", str(tmp_path), "--json")
    runs = json.loads(result.stdout)
    assert [name for name in runs if name.startswith("chain_")] == [
        "chain_sqlite_1", "chain_postgresql_1", "chain_postgresql_2", "chain_postgresql_2_failover"]
    for name, processes in (("chain_sqlite_1", 1), ("chain_postgresql_1", 1), ("chain_postgresql_2", 2),
                            ("chain_postgresql_2_failover", 2)):
        figures = runs[name]
        assert figures["stores"] == 8 and figures["hq_processes"] == processes == len(figures["hq_rss_mib"])
        assert figures["changes_acked"] == figures["changes_sent"] > 0 and figures["rejected"] == 0
        assert figures["ack_ms"]["p99"] > 0 and figures["fanout_ms"]["samples"] > 0
        assert all(rss["peak"] > 0 for rss in figures["hq_rss_mib"].values())
        if name != "chain_postgresql_2_failover":
            assert figures["gaps"] == 0
    failover = runs["chain_postgresql_2_failover"]["failover"]
    assert failover["lost"] == 0 and failover["lease_moved_s"] <= 5


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
