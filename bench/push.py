"""Push throughput and latency, beside the same server's no-op ceiling, measured in one run.

    python bench/push.py [--seconds 10] [--connections 32]

Starts ``patron serve --bench-noop`` on a free loopback port with a fresh data directory, then:

1. ``wrk`` POSTs 100-record bodies to ``/v2/_bench/noop`` (auth, rate limit and body read only): the
   HTTP ceiling.
2. ``wrk`` POSTs the same bodies to ``/v2/push`` (validate every record, commit to the queue, 202).
3. The queue left behind is drained by the worker with no load: records/s applied.
4. An asyncio client pushes at a steady 50 requests/s: push latency p50/p99.
5. ``wrk`` POSTs the same bodies to a server started with ``--no-worker`` on a fresh data directory,
   with one API process and then two: the API with the 2 cores to itself (as when the worker runs
   elsewhere, or catches up after a burst).
6. ``wrk`` POSTs the same bodies to Stoplight Prism (``prism mock``, from ``bench/.node``, which
   ``make bench`` installs) serving Patron's own OpenAPI document: what a spec-driven mock does with
   the same requests (validates them against the schema, stores nothing).

Results go to standard output and replace the push section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).parent))
from common import fresh, machine, queued, write_section

from conftest import Server, free_port, start_server

ROOT = Path(__file__).parent.parent
RECORDS_PER_REQUEST = 100


def order(prefix: str, i: int) -> dict[str, Any]:
    """A realistic order: customer, addresses, two line items with variant options."""
    return {
        "@type": "order",
        "id": f"o-@N@-{i}".replace("@N@", prefix),
        "timestamp": "2026-11-20T10:15:00+00:00",
        "grand_total": 84.5,
        "subtotal": 79.0,
        "shipping": 5.5,
        "tax": 14.08,
        "currency": "GBP",
        "status": "complete",
        "is_valid": True,
        "channel": "online",
        "store": "example.com/uk",
        "customer": {
            "id": f"c-{i}",
            "email": f"shopper{i}@example.com",
            "firstname": "Ada",
            "lastname": "Byron",
        },
        "shipping_address": {"city": "London", "postcode": "N1 9GU", "country_code": "GB"},
        "lineitems": [
            {
                "product_id": "sku-100",
                "sku": "sku-100-m",
                "quantity": 1,
                "unit_price": 49.0,
                "subtotal": 49.0,
                "variant_options": [{"id": "m", "type": "size", "label": "M"}],
            },
            {"product_id": "sku-200", "quantity": 2, "unit_price": 15.0, "subtotal": 30.0},
        ],
        "properties": {"gift_wrap": False, "source": "web"},
    }


def body_template() -> str:
    return json.dumps([order("@N@", i) for i in range(RECORDS_PER_REQUEST)])


def wrk(server: Server, key: str, body: Path, path: str, seconds: int, connections: int) -> dict[str, float]:
    """``wrk`` against ``server``, with the CPU its API processes and its worker spent a request."""
    before = cpu_seconds(server.process.pid)
    measured = wrk_at(f"https://127.0.0.1:{server.port}", key, body, path, seconds, connections)
    after = cpu_seconds(server.process.pid)
    requests = measured["requests_per_s"] * seconds
    for role in ("api", "worker"):
        measured[f"{role}_cpu_ms"] = (after[role] - before[role]) * 1000 / requests
    return measured


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds (user and system) so far of ``pid`` and its descendants: ``worker`` for the
    ``patron worker`` process, ``api`` for the others (``patron serve`` and its API processes)."""
    spent = {"api": 0.0, "worker": 0.0}
    for current, role in processes(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # it ended meanwhile
            continue
        spent[role] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return spent


def processes(pid: int) -> list[tuple[int, str]]:
    """``pid`` and its descendants, each with its role: ``worker`` or ``api``."""
    found = []
    pending = [pid]
    while pending:
        current = pending.pop()
        proc = Path(f"/proc/{current}")
        try:
            role = "worker" if b"\0worker\0" in (proc / "cmdline").read_bytes() else "api"
            for task in (proc / "task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:  # it ended meanwhile
            continue
        found.append((current, role))
    return found


def lower_worker(server: Server, priority: str) -> None:
    """``--worker-priority``: run the server's worker at a lower CPU priority than its API processes
    (``low``: nice 19; ``idle``: Linux's ``SCHED_IDLE``, only when nothing else wants the CPU)."""
    for pid, role in processes(server.process.pid):
        if role == "worker" and priority == "low":
            os.setpriority(os.PRIO_PROCESS, pid, 19)
        elif role == "worker" and priority == "idle":
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))


def wrk_at(url: str, key: str, body: Path, path: str, seconds: int, connections: int) -> dict[str, float]:
    env = {**os.environ, "PATRON_PATH": path, "PATRON_KEY": key, "PATRON_BODY": str(body)}
    script = str(ROOT / "bench" / "push.lua")
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script, url]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=seconds + 60)
    out = done.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if bad:
        raise SystemExit(f"{path}: {bad.group(1)} responses were not 2xx:\n{out}")
    return {"requests_per_s": rate, "records_per_s": rate * RECORDS_PER_REQUEST}


PRISM = ROOT / "bench" / ".node" / "node_modules" / ".bin" / "prism"


def prism(server: Server, key: str, body: Path, work: Path, seconds: int, connections: int) -> dict[str, Any]:
    """The same pushes, sent to Prism mocking Patron's OpenAPI document (plain HTTP: Prism has no TLS)."""
    if not PRISM.exists():
        raise SystemExit(f"{PRISM} is missing: run `make bench` (it installs @stoplight/prism-cli)")
    with server.client() as client:
        (work / "openapi.json").write_text(client.get("/v2/swagger.json").text)
    port = free_port()
    command = [str(PRISM), "mock", str(work / "openapi.json"), "-h", "127.0.0.1", "-p", str(port)]
    mock = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                probe = httpx.post(
                    f"http://127.0.0.1:{port}/v2/push",
                    content=body.read_text().replace("@N@", "probe"),
                    headers={"X-Ometria-Auth": key, "Content-Type": "application/json"},
                )
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("prism did not come up") from None
                time.sleep(0.2)
        if probe.status_code != 202:
            raise SystemExit(f"prism answered the push with {probe.status_code}: {probe.text[:300]}")
        version = subprocess.run([str(PRISM), "--version"], capture_output=True, text=True).stdout.strip()
        measured = wrk_at(f"http://127.0.0.1:{port}", key, body, "/v2/push", seconds, connections)
        return {**measured, "version": version}
    finally:
        mock.terminate()
        mock.wait(timeout=30)


def api_alone(body: Path, processes: int, seconds: int, connections: int) -> dict[str, float]:
    """The same pushes to a server with no worker (``--no-worker``, a fresh data directory) and
    ``processes`` API processes: the API's own rate, with the 2 cores left to it and ``wrk``."""
    work, data_dir, tenant = fresh("push-alone", "--push", "unlimited", "--queue", "100000000")
    options = ["--no-worker", "--workers", str(processes), "--log-level", "WARNING"]
    server = start_server(data_dir, *options)
    try:
        return wrk(server, tenant.key, body, "/v2/push", seconds, connections)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def drain(server: Server, data_dir: Path, timeout: float = 600) -> dict[str, float]:
    start_backlog = queued(data_dir)
    started = time.monotonic()
    while (left := queued(data_dir)) > 0:
        if time.monotonic() - started > timeout:
            raise SystemExit(f"the queue did not drain in {timeout} s ({left} left)")
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    rate = start_backlog / elapsed if elapsed else 0.0
    return {"records": start_backlog, "seconds": elapsed, "records_per_s": rate}


async def steady(server: Server, key: str, rate: int, seconds: int) -> dict[str, float]:
    body = body_template().replace("@N@", "lat").encode()
    context = ssl.create_default_context(cafile=server.ca)
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=server.url, verify=context, timeout=30) as client:

        async def one() -> None:
            started = time.perf_counter()
            r = await client.post(
                "/v2/push", content=body, headers={"X-Ometria-Auth": key, "Content-Type": "application/json"}
            )
            latencies.append(time.perf_counter() - started)
            assert r.status_code == 202, r.text

        await one()  # warm the connection
        latencies.clear()
        tasks = []
        begin = time.perf_counter()
        for i in range(rate * seconds):
            await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--api-processes", type=int, default=1, help="patron serve --workers N")
    parser.add_argument(
        "--worker-priority",
        choices=["normal", "low", "idle"],
        default="normal",
        help="the worker's CPU priority beside the API processes (an experiment: docs/performance.md)",
    )
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/performance.md")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    work, data_dir, tenant = fresh("push", "--push", "unlimited", "--queue", "100000000")
    body = work / "body.json"
    body.write_text(body_template())
    options = ["--workers", str(args.api_processes)]
    server = start_server(data_dir, "--bench-noop", "--log-level", "WARNING", *options)
    lower_worker(server, args.worker_priority)
    try:
        ceiling = wrk(server, tenant.key, body, "/v2/_bench/noop", args.seconds, args.connections)
        pushed = wrk(server, tenant.key, body, "/v2/push", args.seconds, args.connections)
        applied = drain(server, data_dir)
        latency = asyncio.run(steady(server, tenant.key, rate=50, seconds=args.seconds))
        alone = {n: api_alone(body, n, args.seconds, args.connections) for n in (1, 2)}
        mock = prism(server, tenant.key, body, work, args.seconds, args.connections)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    results = {
        "ceiling": ceiling,
        "push": pushed,
        "apply": applied,
        "latency_at_50_rps": latency,
        "api_alone": alone,
        "prism": mock,
    }
    print(json.dumps(results, indent=2))
    if not args.no_docs:
        write_docs(results, args)


def write_docs(r: dict[str, Any], args: argparse.Namespace) -> None:
    push, ceiling, apply, latency = r["push"], r["ceiling"], r["apply"], r["latency_at_50_rps"]
    mock, alone = r["prism"], r["api_alone"]
    rows = [
        (
            "push, requests/s acknowledged, beside a spec-driven mock",
            f"{push['requests_per_s']:,.0f} req/s (HTTPS)",
            f"Stoplight Prism {mock['version']} mocking Patron's OpenAPI document, the same requests:"
            f" {mock['requests_per_s']:,.0f} req/s (plain HTTP)",
            f"{push['requests_per_s'] / mock['requests_per_s']:.1f}",
            "≥ 3",
        ),
        (
            "push, records/s acknowledged (validated, committed, 202)",
            f"{push['records_per_s']:,.0f} ({push['requests_per_s']:,.0f} req/s; CPU a request:"
            f" {push['api_cpu_ms']:.2f} ms API, {push['worker_cpu_ms']:.2f} ms worker)",
            f"no-op POST of the same bodies: {ceiling['records_per_s']:,.0f}"
            f" ({ceiling['requests_per_s']:,.0f} req/s; {ceiling['api_cpu_ms']:.2f} ms of API CPU a request)",
            f"{push['records_per_s'] / ceiling['records_per_s']:.2f}",
            "≥ 30,000 and ≥ 0.5 of the ceiling",
        ),
        *(
            (
                f"push, the API alone (`--no-worker`, {n} API process{'es' if n > 1 else ''}),"
                " records/s acknowledged",
                f"{a['records_per_s']:,.0f} ({a['requests_per_s']:,.0f} req/s;"
                f" {a['api_cpu_ms']:.2f} ms of API CPU a request)",
                f"the no-op ceiling: {ceiling['records_per_s']:,.0f};"
                f" Prism: {mock['requests_per_s']:,.0f} req/s",
                f"{a['records_per_s'] / ceiling['records_per_s']:.2f};"
                f" {a['requests_per_s'] / mock['requests_per_s']:.1f}",
                "",
            )
            for n, a in alone.items()
        ),
        (
            "records/s applied by the worker (the queue left by the push run, drained with no load)",
            f"{apply['records_per_s']:,.0f} ({apply['records']:,.0f} records in {apply['seconds']:.1f} s)",
            "",
            "",
            "≥ 10,000",
        ),
        (
            "push latency at a steady 50 requests/s (5,000 records/s)",
            f"p50 {latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms",
            "",
            "",
            "p99 < 50 ms",
        ),
    ]
    command = f"python bench/push.py --seconds {args.seconds} --connections {args.connections}"
    command += f" --api-processes {args.api_processes}" if args.api_processes != 1 else ""
    command += f" --worker-priority {args.worker_priority}" if args.worker_priority != "normal" else ""
    preamble = f"""Measured by `{command}` on
{time.strftime("%Y-%m-%d")}, {machine()}; `wrk` with 2 threads and {args.connections} connections over
HTTPS on loopback, sharing the 2 cores with the server. Each request carries 100 orders (two line
items each, about 75 KB)."""
    write_section("push", preamble, rows)


if __name__ == "__main__":
    main()
