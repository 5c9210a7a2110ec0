"""Smoke tests of ``patron serve`` as a real subprocess on 127.0.0.1: TLS, listening sockets, logs, metrics.

The server is started here rather than with conftest's ``start_server``: that helper passes ``verify=<str>``
to httpx (a DeprecationWarning, hence an error under ``filterwarnings = error``), never closes its log
file, and cannot start a server without the generated CA (``--tls-cert`` or ``--behind-proxy``).
Readiness is a bare TCP connect, so that every HTTP request in a test is one the test made itself.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import (
    PATRON,
    Tenant,
    create_tenant_cli,
    free_port,
    migrated,
    set_limits,
    start_server,
    stop_process,
    wait_applied,
)
from patron.tls import local_certificates

HOST = "127.0.0.1"


@dataclass
class Served:
    """A running ``patron serve``: its process, where it listens, whom to trust, and its output."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    ca: Path | None  # None: plain HTTP
    stderr_path: Path
    stdout_path: Path

    @property
    def url(self) -> str:
        return f"{'https' if self.ca else 'http'}://{HOST}:{self.port}"

    def client(self) -> httpx.Client:
        verify = ssl.create_default_context(cafile=self.ca) if self.ca else False
        return httpx.Client(base_url=self.url, verify=verify, timeout=10)

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def whole_log(self) -> str:
        return self.stderr() + self.stdout_path.read_text()

    def stop(self) -> None:
        stop_process(self.process)


def _wait_until_listening(server: Served, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"patron serve exited with {server.process.returncode}:\n{server.stderr()}")
        try:
            with socket.create_connection((HOST, server.port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"patron serve did not listen within {seconds} s:\n{server.stderr()}")


@contextmanager
def serving(data_dir: Path, *flags: str, ca: Path | None = None, tls: bool = True) -> Iterator[Served]:
    """``patron serve`` on a free port of 127.0.0.1, stopped on exit; ``ca`` defaults to the generated one."""
    port = free_port()
    migrated(data_dir)
    env = {k: v for k, v in os.environ.items() if k not in {"PATRON_DATABASE_URL", "PATRON_REDIS_URL"}}
    logs = data_dir.parent / f"serve-{port}"
    with logs.with_suffix(".err").open("wb") as err, logs.with_suffix(".out").open("wb") as out:
        process = subprocess.Popen(
            [*PATRON, "serve", "--host", HOST, "--port", str(port), *flags],
            env={**env, "PATRON_DATA_DIR": str(data_dir)},
            stdout=out,
            stderr=err,
        )
    trusted = (ca or data_dir / "tls" / "ca.pem") if tls else None
    server = Served(process, port, data_dir, trusted, logs.with_suffix(".err"), logs.with_suffix(".out"))
    try:
        _wait_until_listening(server)
        yield server
    finally:
        server.stop()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path / "served") as server:
        yield server


@pytest.fixture
def tenant_of(served: Served) -> Tenant:
    """An account made with the CLI on the served data directory."""
    return create_tenant_cli(served.data_dir)


# helpers -----------------------------------------------------------------------------------------


def tls_client(ca: Path, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client context trusting ``ca`` that speaks only ``version`` (TLS 1.1 included, if asked)."""
    context = ssl.create_default_context(cafile=ca)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is deprecated: that is the point
        context.minimum_version = context.maximum_version = version
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # lets OpenSSL offer TLS 1.1 at all
    return context


def handshake(port: int, context: ssl.SSLContext) -> tuple[str | None, bytes | None]:
    """The negotiated protocol and the DER certificate the server presented."""
    with (
        socket.create_connection((HOST, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.version(), tls.getpeercert(binary_form=True)


def served_certificate(server: Served) -> bytes | None:
    assert server.ca is not None
    return handshake(server.port, tls_client(server.ca, ssl.TLSVersion.TLSv1_3))[1]


def pem_to_der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


@contextmanager
def tls11_server(tls_dir: Path) -> Iterator[int]:
    """A local TLS server that does accept TLS 1.1 (one handshake): the control for the TLS 1.1 client."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_dir / "localhost.pem", tls_dir / "localhost-key.pem")
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1_1

    def accept_one() -> None:
        try:
            conn, _ = listener.accept()
            with conn, context.wrap_socket(conn, server_side=True):
                pass
        except OSError:
            pass  # the client side reports the failure

    with socket.create_server((HOST, 0)) as listener:
        listener.settimeout(10)
        thread = threading.Thread(target=accept_one)
        thread.start()
        try:
            yield listener.getsockname()[1]
        finally:
            thread.join(timeout=15)


def raw_reply(port: int, request: bytes) -> bytes:
    """Whatever comes back on a plain TCP connection after ``request``, until EOF or a quiet second."""
    received = b""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(request)
        sock.settimeout(1)
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return received


def listening_ports(pid: int) -> set[tuple[str, int]]:
    """Every TCP/UDP address the process (and any child) listens on."""
    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return {
        (c.laddr.ip, c.laddr.port)
        for p in processes
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN or c.type == socket.SOCK_DGRAM
    }


def request_log(server: Served) -> list[dict[str, Any]]:
    """The ``patron.http`` request lines of the server's stderr."""
    entries = [json.loads(line) for line in server.stderr().splitlines() if line.startswith("{")]
    return [e for e in entries if e["logger"] == "patron.http" and e["message"] == "request"]


def request_counts(client: httpx.Client) -> dict[tuple[str, str, str], float]:
    """``patron_http_requests_total`` by (method, route, status), from ``/metrics``."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name == "patron_http_requests_total"
    }


# tests -------------------------------------------------------------------------------------------


def test_health_ready_and_account_over_https(served: Served, tenant_of: Tenant) -> None:
    with served.client() as client:
        health, ready = client.get("/health"), client.get("/ready")
        mine = client.get("/v2/account", headers=tenant_of.headers)
        anonymous = client.get("/v2/account")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert mine.status_code == 200
    assert (mine.json()["account_hash"], mine.json()["name"]) == (tenant_of.hash, tenant_of.name)
    assert anonymous.status_code == 403


def test_plain_http_on_the_tls_port_is_told_to_use_https(served: Served) -> None:
    reply = raw_reply(served.port, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"This port speaks HTTPS: use https://" in reply
    assert b"200" not in reply


def test_the_tls_port_is_the_only_one_listening(served: Served) -> None:
    assert listening_ports(served.process.pid) == {(HOST, served.port)}


def test_tls_12_and_13_are_served_and_tls_11_is_refused(served: Served) -> None:
    assert served.ca is not None
    for version, name in [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")]:
        assert handshake(served.port, tls_client(served.ca, version))[0] == name
    legacy = tls_client(served.ca, ssl.TLSVersion.TLSv1_1)
    with tls11_server(served.data_dir / "tls") as control:  # this client can speak TLS 1.1...
        assert handshake(control, legacy)[0] == "TLSv1.1"
    with pytest.raises(ssl.SSLError):  # ...and Patron refuses it
        handshake(served.port, legacy)


def test_the_ca_and_certificate_are_generated_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    tls_dir = data_dir / "tls"
    with serving(data_dir) as first:
        generated = {p.name: p.read_bytes() for p in tls_dir.iterdir()}
        first_served = served_certificate(first)
    with serving(data_dir) as second:
        assert {p.name: p.read_bytes() for p in tls_dir.iterdir()} == generated
        assert served_certificate(second) == first_served == pem_to_der(tls_dir / "localhost.pem")
        with second.client() as client:  # still trusted through the same CA
            assert client.get("/health").status_code == 200
    assert set(generated) == {"ca.pem", "ca-key.pem", "localhost.pem", "localhost-key.pem"}
    for key in ("localhost-key.pem", "ca-key.pem"):  # the CA's key is kept, to renew the certificate
        assert (tls_dir / key).stat().st_mode & 0o077 == 0


def test_a_given_certificate_is_served(tmp_path: Path) -> None:
    own = local_certificates(tmp_path / "own-tls")  # a CA and certificate unknown to the server
    assert own.ca is not None
    flags = ("--tls-cert", str(own.cert), "--tls-key", str(own.key))
    with serving(tmp_path / "data", *flags, ca=own.ca) as server:
        assert served_certificate(server) == pem_to_der(own.cert)
        with server.client() as client:
            assert client.get("/health").status_code == 200
    assert not (tmp_path / "data" / "tls").exists()  # nothing generated


def test_behind_proxy_serves_plain_http(tmp_path: Path) -> None:
    with serving(tmp_path / "data", "--behind-proxy", tls=False) as server, server.client() as client:
        assert server.url.startswith("http://")
        response = client.get("/health")
        assert (response.status_code, response.json()) == (200, {"status": "ok"})
        assert listening_ports(server.process.pid) == {(HOST, server.port)}
    assert not (tmp_path / "data" / "tls").exists()


def test_each_request_logs_one_json_line_without_the_key(served: Served, tenant_of: Tenant) -> None:
    bad_key = "f" * 32
    calls = [
        ("/health", {}, "/health", None),
        ("/v2/account", tenant_of.headers, "/v2/account", tenant_of.hash),
        ("/v2/account", {"X-Ometria-Auth": bad_key}, "/v2/account", None),
        ("/no/such/page", {}, "unmatched", None),
    ]
    with served.client() as client:
        responses = [client.get(path, headers=headers) for path, headers, _, _ in calls]
    served.stop()  # every line written and flushed
    logged = request_log(served)
    by_id = {entry["request_id"]: entry for entry in logged}
    assert len(logged) == len(by_id) == len(calls)
    for (_, _, route, account), response in zip(calls, responses, strict=True):
        entry = by_id[response.headers["x-request-id"]]
        assert (entry["route"], entry["status"], entry["account"]) == (
            route,
            response.status_code,
            account,
        )
        assert isinstance(entry["duration_ms"], float)
        assert entry["duration_ms"] >= 0
    assert responses[2].json()["request_id"] == responses[2].headers["x-request-id"]
    whole = served.whole_log()
    assert tenant_of.key not in whole
    assert bad_key not in whole


def test_metrics_count_requests_by_route_and_status(served: Served, tenant_of: Tenant) -> None:
    with served.client() as client:
        for _ in range(3):
            assert client.get("/v2/account", headers=tenant_of.headers).status_code == 200
        for _ in range(2):
            assert client.get("/v2/account").status_code == 403
        assert client.get("/health").status_code == 200
        counts = request_counts(client)
    assert counts == {
        ("GET", "/v2/account", "200"): 3,
        ("GET", "/v2/account", "403"): 2,
        ("GET", "/health", "200"): 1,
    }


def test_workers_n_serves_from_several_processes_with_one_limit_and_one_worker(tmp_path: Path) -> None:
    """``patron serve --workers 2``: two API processes behind one port, sharing the account's push
    limit (counted in the database), and one worker applying what either acknowledges."""
    data_dir = tmp_path / "data"
    tenant = create_tenant_cli(data_dir)
    set_limits(data_dir, tenant.hash, "--push", "6/hour", "--data", "unlimited")
    server = start_server(data_dir, "--workers", "2")
    try:
        processes = psutil.Process(server.process.pid).children(recursive=True)
        assert len([p for p in processes if "worker" in " ".join(p.cmdline())]) == 1
        assert len(processes) >= 3  # two API processes (and uvicorn's helper), one worker
        replies = []
        for i in range(9):  # a new connection each time, so that both processes take some
            with server.client() as client:
                replies.append(
                    client.post("/v2/push", json=[{"@type": "order", "id": f"o{i}"}], headers=tenant.headers)
                )
        assert [r.status_code for r in replies] == [202] * 6 + [429] * 3
        with server.client() as client:
            for reply in replies[:6]:
                assert wait_applied(client, tenant, reply.json()["request_id"])["applied"] == 1
    finally:
        server.stop()
    _, alive = psutil.wait_procs(processes, timeout=30)
    assert not alive  # the API processes and the worker all went with the server
