"""`lanehub bench sync` and `bench import` run end to end at a tiny scale (figures live in docs/benchmarks.md)."""

import json

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
