"""`lanehub bench sync` runs end to end at a tiny scale (figures are not asserted: they live in docs/benchmarks.md)."""

import json

from lanehub.chain.processes import run_lanehub


def test_bench_sync_measures_every_part(tmp_path):
    result = run_lanehub("bench", "sync", "--customers", "300", "--stores", "2", "--samples", "3",
                         "--catchup", "150", "--away", "1", "--workdir", str(tmp_path), "--json")
    figures = json.loads(result.stdout)
    assert figures["snapshot"]["customers"] == 300
    assert figures["latency"]["samples"] == 3
    assert figures["latency"]["hq_to_store_ms"]["p99"] > 0
    assert figures["latency"]["store_to_store_ms"]["p99"] > 0
    assert figures["catchup"]["changes_behind"] == 150
    assert figures["reconnect"]["broker_away_s"] == [1.0] and len(figures["reconnect"]["converged_s"]) == 1


def test_bench_import_measures_every_run(tmp_path):
    result = run_lanehub("bench", "import", "--customers", "300", "--workdir", str(tmp_path), "--json")
    runs = json.loads(result.stdout)["import"]
    assert [r["summary"] for r in runs] == ["pos -> lanehub: added 300; updated 0; deactivated 0",
                                            "pos -> lanehub: added 0; updated 0; deactivated 0",
                                            "pos -> lanehub: added 0; updated 3; deactivated 0",
                                            "pos -> lanehub: added 0; updated 0; deactivated 0"]
    assert all(r["seconds"] > 0 for r in runs)


def test_bench_chain_runs_simulated_stores_against_a_real_hq(tmp_path):
    result = run_lanehub("bench", "chain", "--stores", "8", "--seconds", "2", "--batch", "3", "--interval", "0.2",
                         "--workdir", str(tmp_path), "--json")
    figures = json.loads(result.stdout)["chain"]
    assert figures["stores"] == 8
    assert figures["changes_acked"] == figures["changes_sent"] > 0 and figures["rejected"] == 0
    assert figures["gaps"] == 0
    assert figures["ack_ms"]["p99"] > 0 and figures["fanout_ms"]["samples"] > 0
    assert figures["hq_rss_mib"]["peak"] > 0
