"""Plain HTTP to the HTTPS port of a real ``patron serve``: a short plain-text 400 that names the
``https://`` address, then the end of the connection; TLS clients served as before; a connection that
sends nothing, or bytes that are neither TLS nor HTTP, dropped without an answer.

Every read has a 20-second timeout, far past the server's deadlines (1 and 2 seconds here): a test
fails if that timeout, rather than the server, ends a connection."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import Server, start_server
from test_slow_clients import READ_TIMEOUT, closed_by_server

LIMITS = {"PATRON_HEADER_TIMEOUT": "1", "PATRON_BODY_TIMEOUT": "2"}
TAG_HASH = "0123456789abcdef"  # a well-formed account hash: the tag is served for any
FORM_POST = (
    b"POST /track/v3/0123456789abcdef/event.html HTTP/1.1\r\nHost: localhost\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\ndata=01234"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module, with deadlines of 1 s (head) and 2 s (body)."""
    server = start_server(tmp_path_factory.mktemp("plain") / "data", environment=LIMITS)
    yield server
    server.stop()


def tcp(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=READ_TIMEOUT)


def tls(server: Server) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=server.ca)
    return context.wrap_socket(tcp(server), server_hostname="localhost")


def request(sock: socket.socket, raw: bytes) -> http.client.HTTPResponse:
    """``raw`` sent on an open connection: its response, read whole."""
    sock.sendall(raw)
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.read()
    return response


def health(sock: socket.socket) -> int:
    return request(sock, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").status


def split_answer(reply: bytes) -> tuple[str, dict[str, str], bytes]:
    """The status line, the headers (lowercase names) and the body of a whole HTTP/1.1 response."""
    head, _, body = reply.partition(b"\r\n\r\n")
    status, *lines = head.decode("ascii").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return status, headers, body


def assert_answered_to_use_https(reply: bytes, server: Server) -> bytes:
    """Assert ``reply`` is the whole plain-text 400 that points to HTTPS; its body."""
    status, headers, body = split_answer(reply)
    assert status == "HTTP/1.1 400 Bad Request"
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    assert f"https://localhost:{server.port}/".encode() in body
    return body


def test_a_plain_http_request_gets_a_400_pointing_to_https_then_the_end(server: Server) -> None:
    with tcp(server) as sock:
        sock.sendall(
            b"GET /v2/account?x=<b>echo</b> HTTP/1.1\r\nHost: evil.example\r\nX-Ometria-Auth: k\r\n\r\n"
        )
        reply = closed_by_server(sock)
    body = assert_answered_to_use_https(reply, server)
    assert len(body) < 200
    for sent in (b"/v2/account", b"echo", b"evil.example", b"X-Ometria-Auth"):  # nothing of it repeated
        assert sent not in reply


def test_httpx_on_http_gets_the_answer(server: Server) -> None:
    with httpx.Client(base_url=f"http://localhost:{server.port}", timeout=READ_TIMEOUT) as client:
        response = client.get("/v2/account")
    assert response.status_code == 400
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert "This port speaks HTTPS" in response.text
    assert f"https://localhost:{server.port}/" in response.text


def test_any_method_and_a_head_in_pieces_get_the_answer(server: Server) -> None:
    for start in (b"POST /v2/push HTTP/1.1\r\n", b"options * HTTP/1.1\r\n", b"PRI * HTTP/2.0\r\n\r\n"):
        with tcp(server) as sock:
            sock.sendall(start)
            assert_answered_to_use_https(closed_by_server(sock), server)
    with tcp(server) as sock:  # the method a byte at a time: the answer waits for the space
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in b"GET":
            sock.sendall(bytes([byte]))
            time.sleep(0.05)
        sock.sendall(b" / HTTP/1.1\r\n\r\n")
        assert_answered_to_use_https(closed_by_server(sock), server)


def test_a_body_still_coming_does_not_lose_the_answer(server: Server) -> None:
    """The client goes on sending what the server will never read: the answer still arrives whole
    (the server reads and drops the rest rather than resetting the connection)."""
    with tcp(server) as sock:
        sock.sendall(b"POST /v2/push HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4000000\r\n\r\n")
        time.sleep(0.1)
        sock.sendall(b"[" + b"{}," * 1_000_000)
        reply = closed_by_server(sock)
    assert_answered_to_use_https(reply, server)


def test_https_is_served_as_before_right_after(server: Server) -> None:
    with tcp(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert closed_by_server(sock).startswith(b"HTTP/1.1 400")
    with tls(server) as sock:  # several requests over one connection, a body among them
        assert [health(sock) for _ in range(3)] == [200] * 3
        assert request(sock, FORM_POST).status == 200
        assert health(sock) == 200
    with server.client() as client:
        assert client.get("/health").json() == {"status": "ok"}
        tag = client.get(f"/tags/{TAG_HASH}.js")
        assert tag.status_code == 200
        assert f"https://localhost:{server.port}" in tag.text  # the request's scheme is still https
        assert "http://" not in tag.text


def test_a_client_hello_in_pieces_is_served(server: Server) -> None:
    """The first byte of the handshake alone, then the rest: TLS gets all of it, in order."""
    context = ssl.create_default_context(cafile=server.ca)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_object = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with tcp(server) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with pytest.raises(ssl.SSLWantReadError):
            tls_object.do_handshake()
        hello = outgoing.read()
        sock.sendall(hello[:1])
        time.sleep(0.1)
        sock.sendall(hello[1:])
        while True:
            chunk = sock.recv(65536)
            assert chunk, "the server ended the connection during the handshake"
            incoming.write(chunk)
            try:
                tls_object.do_handshake()
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                continue
            sock.sendall(outgoing.read())
            break
        tls_object.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        sock.sendall(outgoing.read())
        received, ended = b"", False
        while not ended and (chunk := sock.recv(65536)):  # until the server ends TLS (Connection: close)
            incoming.write(chunk)
            try:
                while data := tls_object.read(65536):
                    received += data
                ended = True  # b"": the server's close_notify
            except ssl.SSLWantReadError:
                pass
    assert received.startswith(b"HTTP/1.1 200")
    assert received.endswith(b'{"status":"ok"}')


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(server: Server) -> None:
    start = time.monotonic()
    with tcp(server) as sock:
        assert closed_by_server(sock) == b""
    assert time.monotonic() - start >= 0.5  # by the deadline, not at once


def test_a_handshake_begun_and_never_finished_is_closed_at_the_deadline(server: Server) -> None:
    context = ssl.create_default_context(cafile=server.ca)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    with pytest.raises(ssl.SSLWantReadError):
        context.wrap_bio(incoming, outgoing, server_hostname="localhost").do_handshake()
    hello = outgoing.read()
    for part in (hello[:1], hello[:40], hello):  # a piece of the ClientHello, or all of it, then silence
        with tcp(server) as sock:
            sock.sendall(part)
            closed_by_server(sock)  # the server's hello, if it had the whole of the client's, then the end
    assert "Traceback" not in "\n".join(server.log_lines())


@pytest.mark.parametrize(
    "sent",
    [
        b"\x00\x01\x02garbage\r\n\r\n",
        b"\x80\x2e\x01\x03\x01",  # an SSL 2 hello: not a TLS record
        b"/v2/account HTTP/1.1\r\n\r\n",
        b"GET\t/ HTTP/1.1\r\n\r\n",
        b"A" * 64 + b" / HTTP/1.1\r\n\r\n",  # no method is that long
        b"GE",  # letters and then silence: dropped at the deadline
    ],
)
def test_bytes_neither_tls_nor_http_are_dropped_without_an_answer(server: Server, sent: bytes) -> None:
    with tcp(server) as sock:
        sock.sendall(sent)
        assert closed_by_server(sock) == b""


def test_every_process_of_workers_n_answers(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--workers", "2", environment=LIMITS)
    try:
        for _ in range(6):  # new connections each time: whichever process takes one answers
            with tcp(server) as sock:
                sock.sendall(b"GET /v2/account HTTP/1.1\r\nHost: localhost\r\n\r\n")
                assert_answered_to_use_https(closed_by_server(sock), server)
            with tcp(server) as sock:
                assert closed_by_server(sock) == b""
            with tls(server) as sock:
                assert [health(sock) for _ in range(2)] == [200, 200]
    finally:
        server.stop()
    assert "Traceback" not in "\n".join(server.log_lines())
