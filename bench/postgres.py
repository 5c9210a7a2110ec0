"""Throughput on PostgreSQL beside SQLite, measured in one run on the same machine.

    python bench/postgres.py [--seconds 20] [--connections 32] [--records 200000] [--apply-seconds 30]

Starts a throwaway PostgreSQL cluster as the tests do (``initdb`` into a temporary directory, TCP on
127.0.0.1 and a free port, the server's defaults, ``fsync`` and ``synchronous_commit`` on, but for the
two counters below), then
measures each figure on a fresh SQLite store and on a fresh PostgreSQL database, one after the other:

1. **Acknowledged**: ``wrk`` POSTs bench/push.py's bodies (100 orders each) for ``--seconds`` to
   ``patron serve --no-worker --workers N`` (N = 1 and 2 API processes): records/s validated,
   committed and answered 202.
2. **Applied**: ``--records`` orders (each by a new customer) queued through the Python API, in one
   account or spread over four in turn, then ``patron worker`` processes started (on PostgreSQL one
   and two; on SQLite one) and timed from their first commit until the queue is empty, or for at
   most ``--apply-seconds``: records/s applied.

The accounts' push limit is lifted and their queue limit raised, as bench/push.py does; a lifted
limit is counted nowhere, so no Redis is needed. Beside each figure, the CPU that each side used in
cores (CPU seconds per second of the figure, from psutil): the API processes or the workers,
PostgreSQL's processes, ``wrk``; PostgreSQL's WAL flushes per second with the share of the time one
was in progress (``pg_stat_wal``, with ``track_wal_io_timing`` on); and the statements the database
ran, a request or a record, with the three that took it longest (``pg_stat_statements``).

Prints JSON and rewrites the postgresql section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).parent))
from common import fresh, machine, queued, write_section
from push import RECORDS_PER_REQUEST, body_template, order, wrk_at

from conftest import PATRON, PostgresCluster, start_server, stop_process
from patron import accounts
from patron.config import Settings
from patron.ingest.push import push
from patron.ingest.submit import Submitter
from patron.store import open_store

LIFTED = ("--push", "unlimited", "--queue", "100000000")
QUEUED = "select coalesce(sum(accepted), 0) from import_batches where status = 'queued'"


class Cpu:
    """CPU seconds (user and system) spent by groups of processes, each group some processes and
    their descendants, counted per process so that one starting or ending meanwhile is still right."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.started = time.monotonic()
        self.before = self.sample()

    def sample(self) -> dict[str, dict[int, float]]:
        spent: dict[str, dict[int, float]] = {}
        for name, pids in self.groups.items():
            spent[name] = {}
            for pid in pids:
                try:
                    root = psutil.Process(pid)
                    tree = [root, *root.children(recursive=True)]
                except psutil.Error:
                    continue
                for process in tree:
                    try:
                        times = process.cpu_times()
                    except psutil.Error:  # it ended meanwhile
                        continue
                    spent[name][process.pid] = times.user + times.system
        return spent

    def cores(self) -> dict[str, float]:
        """Each group's CPU seconds since this was made, per second."""
        after, seconds = self.sample(), time.monotonic() - self.started
        return {
            name: sum(t - self.before[name].get(pid, 0.0) for pid, t in after[name].items()) / seconds
            for name in self.groups
        }


class Postgres:
    """The benchmark's throwaway cluster: a fresh database for each figure, its postmaster's process
    id, what its WAL counters say, and the statements a database ran (``pg_stat_statements``)."""

    SETTINGS = {"track_wal_io_timing": "on", "shared_preload_libraries": "pg_stat_statements"}

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="patron-bench-pg-"))
        self.cluster = PostgresCluster(self.directory, self.SETTINGS)
        self.pid = int((self.directory / "data" / "postmaster.pid").read_text().split()[0])
        template = f"{self.cluster.url}/{self.cluster.TEMPLATE}"
        with psycopg.connect(template, autocommit=True) as conn:  # in every database copied from it
            conn.execute("CREATE EXTENSION pg_stat_statements")
        with psycopg.connect(f"{self.cluster.url}/postgres", autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            fsync = conn.execute("SHOW fsync").fetchone()
            commit = conn.execute("SHOW synchronous_commit").fetchone()
        assert version and fsync and commit
        self.settings = {"version": version[0], "fsync": fsync[0], "synchronous_commit": commit[0]}

    def wal(self) -> tuple[int, float]:
        """WAL flushes so far, and the seconds spent in them (every backend's, once it has reported)."""
        with psycopg.connect(f"{self.cluster.url}/postgres", autocommit=True) as conn:
            row = conn.execute("SELECT wal_sync, wal_sync_time FROM pg_stat_wal").fetchone()
        assert row is not None
        return int(row[0]), float(row[1]) / 1000

    def statements(self, url: str) -> dict[str, tuple[int, float]]:
        """The statements run in the database at ``url`` so far: each one's calls and seconds."""
        query = (
            "SELECT query, calls, total_exec_time FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        with psycopg.connect(url, autocommit=True) as conn:
            return {text: (int(calls), ms / 1000) for text, calls, ms in conn.execute(query)}

    def stop(self) -> None:
        try:
            self.cluster.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def environment_of(url: str | None) -> dict[str, str]:
    return {} if url is None else {"PATRON_DATABASE_URL": url}


# acknowledged -------------------------------------------------------------------------------------


def acknowledged(
    body: Path, processes: int, url: str | None, pg: Postgres, seconds: int, connections: int
) -> dict[str, Any]:
    """``wrk`` against ``patron serve --no-worker --workers processes`` on a fresh store (SQLite, or the
    PostgreSQL database at ``url``): records/s acknowledged, and the cores each side used."""
    environment = environment_of(url)
    work, data_dir, tenant = fresh("pg-ack", *LIFTED, environment=environment)
    options = ["--no-worker", "--workers", str(processes), "--log-level", "WARNING"]
    try:
        server = start_server(data_dir, *options, environment=environment)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    try:
        groups = {"api": [server.process.pid]} | ({"postgres": [pg.pid]} if url else {})
        flushes, ran = pg.wal(), pg.statements(url) if url else {}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = Cpu(groups)
        measured = wrk_at(
            f"https://127.0.0.1:{server.port}", tenant.key, body, "/v2/push", seconds, connections
        )
        cores = cpu.cores()
        waited = resource.getrusage(resource.RUSAGE_CHILDREN)
        cores["wrk"] = (waited.ru_utime + waited.ru_stime - children.ru_utime - children.ru_stime) / seconds
    finally:
        server.stop()  # its connections close, and PostgreSQL's backends report their WAL counters
        shutil.rmtree(work, ignore_errors=True)
    result = {**measured, "cores": cores}
    if url:
        requests = measured["requests_per_s"] * seconds
        result |= wal_share(pg, flushes, seconds) | statements(pg, url, ran, requests, "request")
    return result


def wal_share(pg: Postgres, before: tuple[int, float], seconds: float) -> dict[str, float]:
    time.sleep(0.5)  # the WAL writer reports its counters in its own time
    after = pg.wal()
    return {
        "wal_flushes_per_s": (after[0] - before[0]) / seconds,
        "wal_flushing_share": (after[1] - before[1]) / seconds,
    }


def statements(
    pg: Postgres, url: str, before: dict[str, tuple[int, float]], count: float, unit: str
) -> dict[str, Any]:
    """The statements the database ran since ``before``, for each of ``count`` requests or records:
    how many, and the three that took PostgreSQL longest (calls a ``unit`` and seconds in all)."""
    ran = {
        text: (calls - before.get(text, (0, 0.0))[0], seconds - before.get(text, (0, 0.0))[1])
        for text, (calls, seconds) in pg.statements(url).items()
    }
    top = sorted(ran.items(), key=lambda item: -item[1][1])[:3]
    return {
        f"statements_per_{unit}": sum(calls for calls, _ in ran.values()) / count,
        "statement_seconds": sum(seconds for _, seconds in ran.values()),
        "top_statements": [
            {
                "statement": " ".join(text.split())[:120],
                f"calls_per_{unit}": calls / count,
                "seconds": seconds,
            }
            for text, (calls, seconds) in top
        ],
    }


# applied ------------------------------------------------------------------------------------------


def applied(
    records: int, account_count: int, workers: int, url: str | None, pg: Postgres, most_seconds: float
) -> dict[str, Any]:
    """``records`` orders queued on a fresh store over ``account_count`` accounts, then applied by
    ``workers`` ``patron worker`` processes: records/s from their first commit to the queue's end (or
    ``most_seconds`` after that commit), and the cores each side used meanwhile."""
    work = Path(tempfile.mkdtemp(prefix="patron-bench-pg-apply-"))
    data_dir = work / "data"
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        queue_orders(data_dir, url, records, account_count)
        backlog = stack.enter_context(backlog_of(data_dir, url))
        initial = backlog()
        env = {k: v for k, v in os.environ.items() if k not in ("PATRON_DATABASE_URL", "PATRON_REDIS_URL")}
        env |= {"PATRON_DATA_DIR": str(data_dir), **environment_of(url)}
        command = [*PATRON, "worker", "--log-level", "WARNING"]
        started = time.monotonic()
        running = [subprocess.Popen(command, env=env) for _ in range(workers)]
        try:
            first, flushes = wait_for_first_round(backlog, initial, running), pg.wal()
            statements_before = pg.statements(url) if url else {}
            cpu = Cpu({"workers": [p.pid for p in running]} | ({"postgres": [pg.pid]} if url else {}))
            timed_from = time.monotonic()
            deadline = timed_from + most_seconds
            while (left := backlog()) > 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            seconds = time.monotonic() - timed_from
            cores = cpu.cores()
            ran = statements(pg, url, statements_before, max(1, first - left), "record") if url else {}
        finally:
            for process in running:
                stop_process(process)
    if first > left:
        rate = (first - left) / seconds
    else:  # the whole queue went in the first round: timed from the workers' start
        rate, seconds = initial / (timed_from - started), timed_from - started
    result = {
        "records": initial,
        "applied": initial - left,
        "seconds": seconds,
        "records_per_s": rate,
        "cores": cores,
    }
    if url:
        result |= wal_share(pg, flushes, seconds) | ran
    return result


def wait_for_first_round(backlog: Callable[[], int], initial: int, running: list[Any]) -> int:
    """The backlog once the workers' first round has committed (the workers' start is not timed)."""
    deadline = time.monotonic() + 120
    while (left := backlog()) == initial:
        if any(p.poll() is not None for p in running) or time.monotonic() > deadline:
            raise SystemExit("the workers applied nothing (ended, or nothing in 120 s)")
        time.sleep(0.02)
    return left


@contextmanager
def backlog_of(data_dir: Path, url: str | None) -> Iterator[Callable[[], int]]:
    """Records queued and not yet applied, in the SQLite store of ``data_dir`` or at ``url`` (read on
    one connection, so that polling starts no PostgreSQL backend of its own each time)."""
    if url is None:
        yield lambda: queued(data_dir)
        return
    with psycopg.connect(url, autocommit=True) as conn:

        def backlog() -> int:
            row = conn.execute(QUEUED).fetchone()
            return int(row[0]) if row else 0

        yield backlog


def queue_orders(data_dir: Path, url: str | None, records: int, account_count: int) -> None:
    """``records`` orders, 100 a request, each by a new customer, queued through the Python API
    (validated, packed and committed as a push is), requests going to ``account_count`` accounts in turn."""
    store = open_store(replace(Settings(), data_dir=data_dir, database_url=url))
    store.start()
    try:
        created = [
            store.write_blocking(lambda conn, n=n: accounts.create_account(conn, f"bench-{n}", "staging"))[0]
            for n in range(account_count)
        ]
        lifted = [msgspec.structs.replace(account, queue_limit=10**9) for account in created]
        submit = Submitter(store, wake=lambda: None)  # the workers start once all is queued
        numbers = iter(range(records // RECORDS_PER_REQUEST))

        async def pusher() -> None:
            for n in numbers:
                body = [order(str(n), n * RECORDS_PER_REQUEST + i) for i in range(RECORDS_PER_REQUEST)]
                reply, _ = await push(
                    submit, lifted[n % account_count], json.dumps(body).encode(), accounts.now()
                )
                if reply.accepted != RECORDS_PER_REQUEST:
                    raise SystemExit(f"request {n}: {msgspec.json.encode(reply).decode()[:500]}")

        async def fill() -> None:
            await asyncio.gather(*(pusher() for _ in range(8)))

        asyncio.run(fill())
    finally:
        store.close()


# the run ------------------------------------------------------------------------------------------


@contextmanager
def cluster() -> Iterator[Postgres]:
    pg = Postgres()
    try:
        yield pg
    finally:
        pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=20, help="how long wrk pushes, for each figure")
    parser.add_argument("--connections", type=int, default=32, help="wrk's connections")
    parser.add_argument("--records", type=int, default=200_000, help="orders queued for each applied figure")
    parser.add_argument(
        "--apply-seconds", type=float, default=30, help="the longest an applied figure is timed"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/performance.md")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    if args.records < RECORDS_PER_REQUEST * 4:
        raise SystemExit(
            f"--records must be at least {RECORDS_PER_REQUEST * 4} (a request for each of 4 accounts)"
        )
    results: dict[str, Any] = {"machine": machine()}
    with cluster() as pg, tempfile.TemporaryDirectory(prefix="patron-bench-pg-body-") as directory:
        results["postgresql"] = pg.settings
        body = Path(directory) / "body.json"
        body.write_text(body_template())
        results["acknowledged"] = {
            f"{n}_api": {
                store: acknowledged(body, n, url, pg, args.seconds, args.connections)
                for store, url in (("sqlite", None), ("postgresql", pg.cluster.new_database()))
            }
            for n in (1, 2)
        }
        figures: dict[str, dict[str, Any]] = {}
        for count in (1, 4):
            run = {"sqlite": applied(args.records, count, 1, None, pg, args.apply_seconds)}
            for workers in (1, 2):
                url = pg.cluster.new_database()
                run[f"postgresql_{workers}_workers"] = applied(
                    args.records, count, workers, url, pg, args.apply_seconds
                )
            figures[f"{count}_accounts"] = run
        results["applied"] = figures
    print(json.dumps(results, indent=2))
    if not args.no_docs:
        write_docs(results, args)


def cores(figure: dict[str, Any]) -> str:
    """``cores: API 1.20, PostgreSQL 0.40, wrk 0.20; 210 WAL flushes/s, flushing 35% of the time;
    5.3 statements a request``."""
    names = {"api": "API", "workers": "workers", "postgres": "PostgreSQL", "wrk": "wrk"}
    used = ", ".join(f"{names[name]} {value:.2f}" for name, value in figure["cores"].items())
    said = f"cores: {used}"
    if "wal_flushes_per_s" in figure:
        flushes, share = figure["wal_flushes_per_s"], figure["wal_flushing_share"]
        said += f"; {flushes:,.0f} WAL flushes/s, flushing {share:.0%} of the time"
    for unit in ("request", "record"):
        if f"statements_per_{unit}" in figure:
            said += f"; {figure[f'statements_per_{unit}']:.1f} statements a {unit}"
    return said


def write_docs(r: dict[str, Any], args: argparse.Namespace) -> None:
    rows = []
    for n in (1, 2):
        sqlite, pg = r["acknowledged"][f"{n}_api"]["sqlite"], r["acknowledged"][f"{n}_api"]["postgresql"]
        processes = f"{n} API process{'es' if n > 1 else ''}"
        rows.append(
            (
                f"records/s acknowledged, `patron serve --no-worker --workers {n}` ({processes})",
                f"PostgreSQL: {pg['records_per_s']:,.0f} ({pg['requests_per_s']:,.0f} req/s; {cores(pg)})",
                f"SQLite: {sqlite['records_per_s']:,.0f}"
                f" ({sqlite['requests_per_s']:,.0f} req/s; {cores(sqlite)})",
                f"{pg['records_per_s'] / sqlite['records_per_s']:.2f}",
                "",
            )
        )
    for count in (1, 4):
        run = r["applied"][f"{count}_accounts"]
        sqlite = run["sqlite"]
        where = "one account" if count == 1 else "four accounts (requests in turn)"
        for workers in (1, 2):
            pg = run[f"postgresql_{workers}_workers"]
            processes = "one `patron worker` process" if workers == 1 else "two `patron worker` processes"
            rows.append(
                (
                    f"records/s applied, {where}, {processes}",
                    f"PostgreSQL: {pg['records_per_s']:,.0f} ({pg['applied']:,} orders timed over"
                    f" {pg['seconds']:.1f} s; {cores(pg)})",
                    f"SQLite, one worker: {sqlite['records_per_s']:,.0f} ({sqlite['applied']:,} orders over"
                    f" {sqlite['seconds']:.1f} s; {cores(sqlite)})",
                    f"{pg['records_per_s'] / sqlite['records_per_s']:.2f}",
                    "",
                )
            )
    command = f"python bench/postgres.py --seconds {args.seconds} --connections {args.connections}"
    command += f" --records {args.records} --apply-seconds {args.apply_seconds:g}"
    settings = r["postgresql"]
    preamble = f"""Measured by `{command}` on {time.strftime("%Y-%m-%d")}, {r["machine"]}; PostgreSQL
{settings["version"]} in a throwaway cluster on the same machine (`initdb`, TCP on 127.0.0.1, the
server's defaults, `fsync` {settings["fsync"]} and `synchronous_commit` {settings["synchronous_commit"]},
with `track_wal_io_timing` on and `pg_stat_statements` loaded), beside SQLite in the same run.
Acknowledged: `wrk` with 2 threads and {args.connections} connections over HTTPS on loopback for
{args.seconds} s, 100 orders a request (bench/push.py's bodies), the push limit lifted. Applied:
{args.records:,} orders, each by a new customer, queued first, then timed from the workers' first
commit to the empty queue (at most {args.apply_seconds:g} s). Cores: CPU seconds a second of each
side, over the figure's time; WAL flushes and statements: PostgreSQL's own counters."""
    write_section("postgresql", preamble, rows)


if __name__ == "__main__":
    main()
