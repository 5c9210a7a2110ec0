"""Slow, idle and hostile clients of a real ``patron serve``, over raw TLS sockets: a connection that
sends nothing, a head or a body that does not come in time, a client that hangs up mid-body, and more
connections from one address than the cap.

Every read has a 20-second timeout, far past the server's deadlines (1 and 2 seconds here): a test
fails if that timeout, rather than the server, ends a connection."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import Server, eventually, free_port, run_cli, start_server

READ_TIMEOUT = 20
LIMITS = {"PATRON_HEADER_TIMEOUT": "1", "PATRON_BODY_TIMEOUT": "2"}
COLLECTOR = "/track/v3/{account_hash}/event.html"
FORM_POST = (
    b"POST /track/v3/0123456789abcdef/event.html HTTP/1.1\r\nHost: localhost\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module, with deadlines of 1 s (head) and 2 s (body)."""
    server = start_server(tmp_path_factory.mktemp("slow") / "data", environment=LIMITS)
    yield server
    server.stop()


def tcp(server: Server, source: str = "127.0.0.1") -> socket.socket:
    """A TCP connection to ``server`` from the address ``source``."""
    address = ("127.0.0.1", server.port)
    return socket.create_connection(address, timeout=READ_TIMEOUT, source_address=(source, 0))


def tls(server: Server, source: str = "127.0.0.1") -> ssl.SSLSocket:
    """A connection to ``server`` from ``source``, its TLS handshake done."""
    context = ssl.create_default_context(cafile=server.ca)
    return context.wrap_socket(tcp(server, source), server_hostname="localhost")


def closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sends until it ends the connection (end of stream or reset)."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            pytest.fail(f"the server kept the connection open for {READ_TIMEOUT} s")
        except (ConnectionError, ssl.SSLError):
            return received
        if not chunk:
            return received
        received += chunk


def health(sock: socket.socket) -> int:
    """``GET /health`` on an open connection, kept alive: its status."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.read()
    return response.status


def collector_requests(server: Server) -> list[dict[str, Any]]:
    """The log lines of the requests to the collector's form route."""
    lines = [json.loads(line) for line in server.log_lines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == "request" and line["route"] == COLLECTOR]


def request_counts(server: Server) -> dict[tuple[str, str, str], float]:
    """``patron_http_requests_total`` by (method, route, status), from ``/metrics``."""
    with server.client() as client:
        text = client.get("/metrics").text
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "patron_http_requests_total"
    }


def test_a_connection_that_sends_nothing_after_tls_is_closed(limited: Server) -> None:
    with tls(limited) as sock:
        assert closed_by_server(sock) == b""


def test_a_tls_handshake_that_never_starts_is_closed(limited: Server) -> None:
    with tcp(limited) as sock:
        assert closed_by_server(sock) == b""


def test_a_partial_head_then_silence_is_closed(limited: Server) -> None:
    with tls(limited) as sock:
        sock.sendall(b"POST /track/v3/0123456789abcdef/event.html HTTP/1.1\r\nHost: local")
        assert closed_by_server(sock) == b""


def test_a_head_sent_a_byte_at_a_time_is_closed_though_bytes_keep_coming(limited: Server) -> None:
    """The head has a deadline, not an allowed silence: a byte every 0.2 s does not keep it open."""
    with tls(limited) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        sock.settimeout(0.2)
        for _ in range(int(READ_TIMEOUT / 0.2)):
            try:
                if sock.recv(65536) == b"":
                    return
            except TimeoutError:
                sock.sendall(b"a")
            except (ConnectionError, ssl.SSLError):
                return
        pytest.fail(f"the server kept reading a head for {READ_TIMEOUT} s")


def test_a_partial_head_after_a_first_request_is_closed(limited: Server) -> None:
    with tls(limited) as sock:
        assert health(sock) == 200
        sock.sendall(b"GET /heal")
        assert closed_by_server(sock) == b""


def test_a_body_slower_than_its_content_length_is_closed_and_logged_as_a_timeout(limited: Server) -> None:
    before = len(collector_requests(limited))
    counted = request_counts(limited).get(("POST", COLLECTOR, "408"), 0)
    with tls(limited) as sock:
        sock.sendall(FORM_POST + b"data=0123")
        assert closed_by_server(sock) == b""
    logged = eventually(lambda: collector_requests(limited)[before:], "the request's log line")
    assert [(line["route"], line["status"]) for line in logged] == [(COLLECTOR, 408)]
    assert request_counts(limited)[("POST", COLLECTOR, "408")] == counted + 1
    assert "Traceback" not in "\n".join(limited.log_lines())


def test_a_client_that_hangs_up_mid_body_is_a_499_without_a_stack_trace(limited: Server) -> None:
    before = len(collector_requests(limited))
    counted = request_counts(limited).get(("POST", COLLECTOR, "499"), 0)
    with tls(limited) as sock:
        sock.sendall(FORM_POST + b"data=01234")
    logged = eventually(lambda: collector_requests(limited)[before:], "the request's log line")
    assert [(line["route"], line["status"]) for line in logged] == [(COLLECTOR, 499)]
    assert request_counts(limited)[("POST", COLLECTOR, "499")] == counted + 1
    log = "\n".join(limited.log_lines())
    assert "Traceback" not in log
    assert '"level":"error"' not in log


def test_requests_in_time_are_served(limited: Server) -> None:
    with limited.client() as client:
        assert client.get("/health").status_code == 200
        reply = client.post(
            "/track/v3/0123456789abcdef/event.html",
            content=b"data=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert reply.status_code == 200
    with tls(limited) as sock:  # a body in two parts, well within its deadline
        sock.sendall(FORM_POST.replace(b"1000", b"10") + b"data=")
        time.sleep(0.05)
        sock.sendall(b"01234")
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 200
        response.read()
        assert health(sock) == 200  # and the connection serves the next request


def test_connections_from_one_address_are_capped(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", environment={"PATRON_CONNECTIONS_PER_ADDRESS": "5"})
    opened: list[ssl.SSLSocket] = []

    def open_one() -> bool:
        """A new connection that serves a request (False: it was refused, for the server may not yet
        have seen the end of a connection closed just before)."""
        sock = tls(server)
        try:
            if health(sock) == 200:
                opened.append(sock)
                return True
        except (ConnectionError, ssl.SSLError, http.client.HTTPException):
            pass
        sock.close()
        return False

    try:
        for _ in range(5):
            eventually(open_one, "a connection under the cap")
        with tls(server) as extra:
            assert closed_by_server(extra) == b""
        with tls(server, source="127.0.0.2") as elsewhere:  # another address has its own count
            assert health(elsewhere) == 200
        assert [health(sock) for sock in opened] == [200] * 5
        for sock in opened[:2]:
            sock.close()
        del opened[:2]
        for _ in range(2):
            eventually(open_one, "a connection once others have closed")
        assert len(opened) == 5
    finally:
        for sock in opened:
            sock.close()
        server.stop()
    log = "\n".join(server.log_lines())
    assert "connection refused: over the limit per address" in log
    assert "Traceback" not in log


def test_the_limits_apply_in_every_process_of_workers_n(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--workers", "2", environment=LIMITS)
    try:
        for _ in range(4):  # new connections each time: whichever process takes one closes it
            with tls(server) as sock:
                assert closed_by_server(sock) == b""
            with tcp(server) as sock:
                assert closed_by_server(sock) == b""
        with server.client() as client:
            assert client.get("/health").status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PATRON_HEADER_TIMEOUT", "0"),
        ("PATRON_BODY_TIMEOUT", "soon"),
        ("PATRON_CONNECTIONS_PER_ADDRESS", "-1"),
        ("PATRON_READ_BUDGET", "-5"),
    ],
)
def test_an_invalid_limit_stops_the_server_from_starting(tmp_path: Path, variable: str, value: str) -> None:
    result = run_cli(
        tmp_path / "data", "serve", "--port", str(free_port()), check=False, environment={variable: value}
    )
    assert result.returncode == 2  # a usage error, in one line: no traceback
    assert f"{variable} must be" in result.stderr
    assert "Traceback" not in result.stderr
