"""The benchmark scripts still run against the code as it is (``make bench`` runs them at length; the
suite runs them briefly, those that need no outside tool but the Debian packages ``make test`` installs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` at the repository's top, for at most five minutes."""
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_apply_benchmark_applies_what_it_queued() -> None:
    done = run("bench/apply.py", "--batches", "3", "--customers", "distinct", "--no-docs")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout[done.stdout.index("{") :])
    assert (result["records"], result["raw_rows"]) == (300, 300)


def test_the_apply_benchmark_keeps_segments_and_writes_webhook_events() -> None:
    """With every kind of segment the benchmark gives (each a valid rule) and endpoints subscribed to
    some event types, the worker applies everything."""
    options = ["--segments", "20", "--webhooks", "2", "--subscribe", "segment.entered,order.applied"]
    done = run("bench/apply.py", "--batches", "3", "--customers", "distinct", "--no-docs", *options)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout[done.stdout.index("{") :])
    assert (result["records"], result["segments"], result["webhooks"]) == (300, 20, 2)
    # each order and each entry is one event in the outbox, whatever the number of endpoints; a round's
    # events of one time are one row of it (a batch's orders and the round's entries: a few rows)
    assert result["segment_entries"] > 300
    assert result["webhook_events"] == 300 + result["segment_entries"]
    assert 0 < result["webhook_rows"] <= 2 * result["rounds"] + 3
    # the floor of those rows: each member, entry and outbox row inserted again by raw sqlite3
    assert result["raw_beside_rows"] == 2 * result["segment_entries"] + result["webhook_rows"]


MICRO = ["bench/micro", "--benchmark-disable", "-o", "testpaths=bench"]


def test_the_micro_benchmarks_run() -> None:
    done = run("-m", "pytest", "-q", "-p", "no:cacheprovider", *MICRO)
    assert done.returncode == 0, done.stdout[-3000:]


def test_the_report_benchmark_finds_what_it_seeded() -> None:
    """bench/report.py exits non-zero when the report counts other defects than it seeded."""
    args = ["--orders", "3000", "--products", "1000", "--contacts", "2000", "--stores", "sqlite"]
    done = run("bench/report.py", *args, "--runs", "1", "--writes", "2", "--no-docs")
    assert done.returncode == 0, done.stderr[-3000:]
    (result,) = json.loads(done.stdout[done.stdout.index("[") :])
    assert result["store"] == "sqlite" and result["report_seconds"] > 0


def test_the_console_benchmark_times_every_page() -> None:
    sizes = ["--orders", "2000", "--profiles", "500", "--sessions", "200", "--samples", "2"]
    done = run("bench/console.py", *sizes, "--no-docs")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout[done.stdout.index("{") :])
    timed = result["pages"]
    assert {
        "Accounts",
        "Dashboard",
        "Dashboard's chart data",
        "Integration check",
        "A rule's samples",
    } <= set(timed)
    assert all(page["p50_ms"] > 0 for page in timed.values())


def test_the_import_benchmark_applies_every_record() -> None:
    done = run("bench/import.py", "--orders", "2000", "--limited", "1600", "--no-docs")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout[done.stdout.index("{") :])
    backfill, limited = result["backfill"], result["default_limits"]
    assert (backfill["accepted"], backfill["applied"]) == (2000, 2000)
    assert (limited["accepted"], limited["applied"]) == (1600, 1600)
    assert {"records_per_s_acknowledged", "records_per_s_applied", "requests"} <= set(backfill)
    assert {"records_per_s_acknowledged", "share_of_allowed", "share_429"} <= set(limited)
    assert limited["push_limit"] == "8/second" and limited["requests"] >= 16


def test_the_postgresql_benchmark_measures_both_stores() -> None:
    """bench/postgres.py starts its own PostgreSQL cluster and drives wrk: every figure on both stores,
    each applied figure's queue applied whole."""
    sizes = ["--seconds", "1", "--connections", "2", "--records", "400", "--apply-seconds", "120"]
    done = run("bench/postgres.py", *sizes, "--no-docs")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout[done.stdout.index("{") :])
    assert (result["postgresql"]["fsync"], result["postgresql"]["synchronous_commit"]) == ("on", "on")
    assert set(result["acknowledged"]) == {"1_api", "2_api"}
    for figures in result["acknowledged"].values():
        assert set(figures["sqlite"]["cores"]) == {"api", "wrk"}
        assert set(figures["postgresql"]["cores"]) == {"api", "postgres", "wrk"}
        assert all(figure["records_per_s"] > 0 for figure in figures.values())
    assert set(result["applied"]) == {"1_accounts", "4_accounts"}
    for figures in result["applied"].values():
        assert set(figures) == {"sqlite", "postgresql_1_workers", "postgresql_2_workers"}
        assert all((figure["records"], figure["applied"]) == (400, 400) for figure in figures.values())


def test_the_segments_benchmark_builds_what_it_counts() -> None:
    """bench/segments.py fails when the built segment's size differs from the dry-run count."""
    done = run("bench/segments.py", "--profiles", "3000", "--runs", "0", "--no-docs")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout[done.stdout.index("{") :])
    assert result["profiles"] == 3000 and result["members"] > 0


def test_the_webhooks_benchmark_delivers_every_event() -> None:
    """Every event is delivered, with and without another account's backlog held."""
    done = run("bench/webhooks.py", "--events", "50", "--backlog", "400", "--no-docs")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout[done.stdout.index("{") :])
    assert result["events"] == 100 and result["deliveries_per_second"] > 0
    assert result["backlog"] == 400 and result["backlog_deliveries_per_second"] > 0
