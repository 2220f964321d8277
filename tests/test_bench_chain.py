"""`lanehub bench chain` runs end to end at a tiny scale (figures are not asserted: they live in docs/benchmarks.md)."""

import json

from postgres import libpq_url

from lanehub.chain.processes import run_lanehub


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
