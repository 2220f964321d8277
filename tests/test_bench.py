"""`lanehub bench sync` runs end to end at a tiny scale (figures are not asserted: they live in docs/benchmarks.md)."""

import json

from core.procs import run_lanehub


def test_bench_sync_measures_every_part(tmp_path):
    result = run_lanehub("bench", "sync", "--customers", "300", "--stores", "2", "--samples", "3",
                         "--catchup", "150", "--workdir", str(tmp_path), "--json")
    figures = json.loads(result.stdout)
    assert figures["snapshot"]["customers"] == 300
    assert figures["latency"]["samples"] == 3
    assert figures["latency"]["hq_to_store_ms"]["p99"] > 0
    assert figures["latency"]["store_to_store_ms"]["p99"] > 0
    assert figures["catchup"]["changes_behind"] == 150
