"""The generated certificate is renewed before it expires, by the CA clients already trust: at start,
and in a server that keeps running (its SSL context loads the renewed certificate, no restart). A
certificate given with ``--tls-cert`` is loaded again when its files are replaced."""

from __future__ import annotations

import socket
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import eventually, start_server
from patron import tls


def served_certificate(port: int, ca: Path) -> x509.Certificate:
    """The certificate the server on ``port`` presents, verified against ``ca`` (the handshake fails
    otherwise)."""
    context = ssl.create_default_context(cafile=ca)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def on_disk(tls_dir: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((tls_dir / tls.CERT_NAME).read_bytes())


def expiring_in(tls_dir: Path, days: int) -> x509.Certificate:
    """Put in place a server certificate, signed by the kept CA, that expires in ``days`` days: the
    certificate ``tls_dir`` would hold that much before its end."""
    ca_cert = x509.load_pem_x509_certificate((tls_dir / tls.CA_NAME).read_bytes())
    ca_key = serialization.load_pem_private_key((tls_dir / tls.CA_KEY_NAME).read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=825 - days))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    tls._write(tls_dir / tls.KEY_NAME, tls._key_pem(key), private=True)
    tls._write(tls_dir / tls.CERT_NAME, cert.public_bytes(serialization.Encoding.PEM))
    return cert


def test_the_certificate_is_renewed_by_the_same_ca_when_less_than_30_days_remain(tmp_path: Path) -> None:
    tls_dir = tmp_path / "tls"
    files = tls.local_certificates(tls_dir)
    ca = files.ca.read_bytes() if files.ca else b""
    first = on_disk(tls_dir)
    assert stat.S_IMODE((tls_dir / tls.CA_KEY_NAME).stat().st_mode) == 0o600

    # 31 days before its end nothing changes; 29 days before, a new certificate by the same CA
    end = first.not_valid_after_utc
    tls.local_certificates(tls_dir, now=end - timedelta(days=31))
    assert on_disk(tls_dir).serial_number == first.serial_number
    later = end - timedelta(days=29)
    tls.local_certificates(tls_dir, now=later)
    renewed = on_disk(tls_dir)
    assert renewed.serial_number != first.serial_number
    assert renewed.not_valid_after_utc - later > timedelta(days=800)
    assert (tls_dir / tls.CA_NAME).read_bytes() == ca
    ca_cert = x509.load_pem_x509_certificate(ca)
    renewed.verify_directly_issued_by(ca_cert)


def test_a_ca_without_its_kept_key_is_replaced_when_the_certificate_is_due(tmp_path: Path) -> None:
    """A data directory whose CA key was not kept: the certificate is left alone while it lasts, and
    replaced with a new CA when due (clients must then trust the new ca.pem)."""
    tls_dir = tmp_path / "tls"
    tls.local_certificates(tls_dir)
    (tls_dir / tls.CA_KEY_NAME).unlink()
    old_ca, first = (tls_dir / tls.CA_NAME).read_bytes(), on_disk(tls_dir)
    tls.local_certificates(tls_dir)
    assert (on_disk(tls_dir).serial_number, (tls_dir / tls.CA_NAME).read_bytes()) == (
        first.serial_number,
        old_ca,
    )

    tls.local_certificates(tls_dir, now=first.not_valid_after_utc - timedelta(days=1))
    new_ca = x509.load_pem_x509_certificate((tls_dir / tls.CA_NAME).read_bytes())
    assert (tls_dir / tls.CA_NAME).read_bytes() != old_ca and (tls_dir / tls.CA_KEY_NAME).exists()
    on_disk(tls_dir).verify_directly_issued_by(new_ca)


def test_an_expiring_certificate_is_renewed_at_start_and_clients_keep_their_ca(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    tls_dir = data_dir / "tls"
    tls.local_certificates(tls_dir)
    trusted = tmp_path / "trusted-ca.pem"  # what a client was given before
    trusted.write_bytes((tls_dir / tls.CA_NAME).read_bytes())
    expiring = expiring_in(tls_dir, days=10)

    server = start_server(data_dir)
    try:
        served = served_certificate(server.port, trusted)
    finally:
        server.stop()
    assert served.serial_number != expiring.serial_number
    assert served.not_valid_after_utc - datetime.now(UTC) > timedelta(days=800)
    assert served == on_disk(tls_dir)


def test_a_running_server_renews_its_certificate_and_serves_it_without_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    tls_dir = data_dir / "tls"
    server = start_server(data_dir, environment={"PATRON_TLS_CHECK": "0.2"})
    try:
        trusted = tmp_path / "trusted-ca.pem"
        trusted.write_bytes((tls_dir / tls.CA_NAME).read_bytes())
        first = served_certificate(server.port, trusted)
        # time passes: the certificate on disk is 10 days from its end (as the running server's is)
        expiring = expiring_in(tls_dir, days=10)

        def renewed_and_served() -> x509.Certificate | None:
            served = served_certificate(server.port, trusted)
            known = {first.serial_number, expiring.serial_number}
            return served if served.serial_number not in known else None

        served = eventually(renewed_and_served, "the renewed certificate served")
        assert served == on_disk(tls_dir)
        assert served.not_valid_after_utc - datetime.now(UTC) > timedelta(days=800)
        assert server.process.poll() is None  # the same process
        with server.client() as c:
            assert c.get("/health").status_code == 200
    finally:
        server.stop()


def test_a_given_certificate_is_loaded_again_when_its_files_are_replaced(tmp_path: Path) -> None:
    """``--tls-cert`` and ``--tls-key`` renewed by someone else (certbot, say): served without a restart."""
    issued = tmp_path / "issued"
    files = tls.local_certificates(issued)
    given = tmp_path / "given"
    given.mkdir()
    cert, key = given / "cert.pem", given / "key.pem"
    cert.write_bytes(files.cert.read_bytes())
    key.write_bytes(files.key.read_bytes())
    ca = files.ca
    assert ca is not None
    server = start_server(
        tmp_path / "data",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        environment={"PATRON_TLS_CHECK": "0.2"},
    )
    try:
        first = served_certificate(server.port, ca)
        (issued / tls.CERT_NAME).unlink()
        tls.local_certificates(issued)  # a new certificate, by the same CA
        assert on_disk(issued).serial_number != first.serial_number
        key.write_bytes(files.key.read_bytes())
        cert.write_bytes(files.cert.read_bytes())
        replaced = on_disk(issued)
        eventually(
            lambda: served_certificate(server.port, ca).serial_number == replaced.serial_number,
            "the replaced certificate served",
        )
    finally:
        server.stop()
