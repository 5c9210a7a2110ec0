"""Visibility: the time from a push's 202 to its records being readable (applied by the worker),
under a steady load, measured in one run.

    python bench/visibility.py [--rate 50] [--seconds 20] [--no-docs]

Starts ``patron serve`` (with its worker) on a fresh SQLite data directory; an asyncio client pushes
``--rate`` requests a second of 100 orders (5,000 records/s at the default rate) over HTTPS; after
the 202 of every fifth request, a reader polls ``GET /v2/orders/{id}`` of its last order every 10 ms
until it is there: the time between is that request's visibility (p50 and p95). Prints JSON and
rewrites the visibility section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import ssl
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).parent))
from common import fresh, machine, write_section
from push import body_template

from conftest import Server, start_server


async def load(server: Server, key: str, rate: int, seconds: int) -> list[float]:
    """Push at ``rate`` requests/s; the visibility (seconds) of every fifth request."""
    template = body_template()
    context = ssl.create_default_context(cafile=server.ca)
    headers = {"X-Ometria-Auth": key, "Content-Type": "application/json"}
    visible: list[float] = []
    async with httpx.AsyncClient(base_url=server.url, verify=context, timeout=30) as client:

        async def one(n: int) -> None:
            body = template.replace("@N@", f"v{n}").encode()
            answer = await client.post("/v2/push", content=body, headers=headers)
            assert answer.status_code == 202, answer.text
            if n % 5:
                return
            acknowledged = time.perf_counter()
            while (await client.get(f"/v2/orders/o-v{n}-99", headers=headers)).status_code != 200:
                await asyncio.sleep(0.01)
            visible.append(time.perf_counter() - acknowledged)

        begin = time.perf_counter()
        tasks = []
        for n in range(rate * seconds):
            await asyncio.sleep(max(0.0, begin + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return visible


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    unlimited = ["--push", "unlimited", "--data", "unlimited", "--queue", "100000000"]
    work, data_dir, tenant = fresh("visibility", *unlimited)
    server = start_server(data_dir, "--log-level", "WARNING")
    try:
        visible = asyncio.run(load(server, tenant.key, args.rate, args.seconds))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    delays = sorted(v * 1000 for v in visible)
    result = {
        "requests": len(delays),
        "records_per_s": args.rate * 100,
        "p50_ms": statistics.median(delays),
        "p95_ms": delays[int(len(delays) * 0.95) - 1],
        "max_ms": delays[-1],
    }
    print(json.dumps(result, indent=2))
    if not args.no_docs:
        row = (
            f"visibility: from the 202 to the records applied, at {result['records_per_s']:,} records/s",
            f"p50 {result['p50_ms']:,.0f} ms, p95 {result['p95_ms']:,.0f} ms"
            f" (max {result['max_ms']:,.0f} ms; {result['requests']} requests timed)",
            "",
            "",
            "p95 < 1 s",
        )
        preamble = (
            f"Measured by `python bench/visibility.py --rate {args.rate} --seconds {args.seconds}` on"
            f" {time.strftime('%Y-%m-%d')}, {machine()}: {args.rate} pushes a second of 100 orders over"
            " HTTPS on loopback, the client on the same 2 cores; every fifth request's last order polled"
            " with `GET /v2/orders/{id}` every 10 ms from its 202."
        )
        write_section("visibility", preamble, [row])


if __name__ == "__main__":
    main()
