"""TLS for ``patron serve``: a local certificate authority and a localhost certificate, made once.

With no ``--tls-cert``/``--tls-key``, Patron still serves HTTPS: it creates a private CA and a server
certificate for ``localhost``, ``127.0.0.1`` and ``::1`` in ``<data dir>/tls`` the first time, and
reuses them afterwards. Clients trust ``ca.pem`` (``curl --cacert``, ``httpx.Client(verify=...)``).
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "ca.pem"
CERT_NAME = "localhost.pem"
KEY_NAME = "localhost-key.pem"


@dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path
    ca: Path | None  # the generated CA, when Patron made the certificate itself


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file that was there keeps its mode through O_CREAT: not this one
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Patron local"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _create(directory: Path) -> None:
    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Patron local CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The CA's private key is not kept: nothing else will ever be signed with it.
    _write_private(directory / KEY_NAME, _key_pem(key))
    (directory / CERT_NAME).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / CA_NAME).write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))


def local_certificates(directory: Path) -> TLSFiles:
    """The generated localhost certificate in ``directory``, created on first use."""
    files = TLSFiles(directory / CERT_NAME, directory / KEY_NAME, directory / CA_NAME)
    assert files.ca is not None
    if not (files.cert.exists() and files.key.exists() and files.ca.exists()):
        _create(directory)
    return files


def minimum_tls12(_config: object, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's ``ssl_context_factory``: its usual context, refusing anything older than TLS 1.2."""
    context = default_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
