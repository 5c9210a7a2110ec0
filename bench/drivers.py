"""psycopg 3 against asyncpg on the two statements that dominate Patron's PostgreSQL load.

    pip install asyncpg && python bench/drivers.py

Starts a throwaway PostgreSQL cluster (as the tests do), then times, for each driver:
1. enqueue: 2,000 transactions, 32 at a time, each inserting one 75 KB row and committing (what a
   push does);
2. apply: 20 transactions, each inserting 500 rows of about 700 bytes with executemany (a worker's
   round).
psycopg runs in a thread pool (as Patron's store does); asyncpg in asyncio tasks on one loop.
"""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from conftest import PostgresCluster

BLOB = b"x" * 75_000
DOC = "y" * 700
ENQUEUES, CONCURRENCY, ROUNDS, ROWS = 2000, 32, 20, 500
TABLES = (
    "CREATE TABLE q (id bigserial primary key, body bytea);"
    " CREATE TABLE e (id bigserial primary key, k text, d text)"
)


def psycopg_run(url: str) -> dict[str, float]:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS q, e")
        for statement in TABLES.split(";"):
            c.execute(statement)  # type: ignore[arg-type]

    def enqueue(_: int) -> None:
        with psycopg.connect(url) as c:
            for _ in range(ENQUEUES // CONCURRENCY):
                c.execute("INSERT INTO q (body) VALUES (%s)", (BLOB,))
                c.commit()

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(enqueue, range(CONCURRENCY)))
    enqueue_s = time.perf_counter() - started
    started = time.perf_counter()
    with psycopg.connect(url) as c:
        for r in range(ROUNDS):
            with c.cursor() as cur:
                cur.executemany(
                    "INSERT INTO e (k, d) VALUES (%s, %s)", [(f"{r}-{i}", DOC) for i in range(ROWS)]
                )
            c.commit()
    apply_s = time.perf_counter() - started
    return {"enqueue_tx_per_s": ENQUEUES / enqueue_s, "apply_rows_per_s": ROUNDS * ROWS / apply_s}


async def asyncpg_run(url: str) -> dict[str, float]:
    import asyncpg

    conn = await asyncpg.connect(url)
    await conn.execute("DROP TABLE IF EXISTS q, e")
    await conn.execute(TABLES)
    pool = await asyncpg.create_pool(url, min_size=CONCURRENCY, max_size=CONCURRENCY)

    async def enqueue() -> None:
        async with pool.acquire() as c:
            for _ in range(ENQUEUES // CONCURRENCY):
                async with c.transaction():
                    await c.execute("INSERT INTO q (body) VALUES ($1)", BLOB)

    started = time.perf_counter()
    await asyncio.gather(*(enqueue() for _ in range(CONCURRENCY)))
    enqueue_s = time.perf_counter() - started
    started = time.perf_counter()
    for r in range(ROUNDS):
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO e (k, d) VALUES ($1, $2)", [(f"{r}-{i}", DOC) for i in range(ROWS)]
            )
    apply_s = time.perf_counter() - started
    await pool.close()
    await conn.close()
    return {"enqueue_tx_per_s": ENQUEUES / enqueue_s, "apply_rows_per_s": ROUNDS * ROWS / apply_s}


def main() -> None:
    import tempfile

    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="patron-bench-pg-")))
    try:
        url = cluster.new_database()
        results = {"psycopg": psycopg_run(url), "asyncpg": asyncio.run(asyncpg_run(url))}
    finally:
        cluster.stop()
    for name, figures in results.items():
        enqueue, apply = figures["enqueue_tx_per_s"], figures["apply_rows_per_s"]
        print(f"{name:8} enqueue {enqueue:8,.0f} tx/s   apply {apply:9,.0f} rows/s")


if __name__ == "__main__":
    main()
