"""TLS for ``patron serve``: a local certificate authority and a localhost certificate, kept current.

With no ``--tls-cert``/``--tls-key``, Patron still serves HTTPS: it creates a private CA and a server
certificate for ``localhost``, ``127.0.0.1`` and ``::1`` in ``<data dir>/tls`` the first time, and
reuses them afterwards. Clients trust ``ca.pem`` (``curl --cacert``, ``httpx.Client(verify=...)``).

The CA's key is kept beside it (``ca-key.pem``, readable by its owner alone), so that the server
certificate can be renewed before it expires (when less than :data:`RENEW_BEFORE` remains) by the
same CA: clients that trust ``ca.pem`` keep trusting the server. A new CA is made only when there is
none, when its key was not kept, or when the CA itself is about to expire; clients must then be given
the new ``ca.pem`` (a ``warning`` line says so).

:class:`Served` is the certificate of a running server: its SSL context, and :meth:`Served.check`,
which renews the generated certificate when it is due and loads the files into the context again when
they changed (the generated certificate renewed, or a given one replaced, e.g. by certbot), without a
restart.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import os
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "ca.pem"
CA_KEY_NAME = "ca-key.pem"
CERT_NAME = "localhost.pem"
KEY_NAME = "localhost-key.pem"

#: How long a new CA and a new server certificate last (the latter never past its CA).
CA_LIFETIME = timedelta(days=3650)
CERT_LIFETIME = timedelta(days=825)
#: A certificate with less than this left is renewed (at start, and by :meth:`Served.check`).
RENEW_BEFORE = timedelta(days=30)

log = logging.getLogger("patron.tls")


@dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path
    ca: Path | None  # the generated CA, when Patron made the certificate itself


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace ``path`` with ``data`` at once (a reader sees the old file or the new one, whole); a
    private file is readable by its owner alone."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    os.fchmod(fd, 0o600 if private else 0o644)  # a file that was there keeps its mode through O_CREAT
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    partial.replace(path)


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


@dataclass(frozen=True)
class _Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _new_authority(now: datetime) -> _Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("Patron local CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Authority(cert, key)


def _new_certificate(ca: _Authority, now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + CERT_LIFETIME, ca.cert.not_valid_after_utc))
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
        .sign(ca.key, hashes.SHA256())
    )
    return cert, key


def _due(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_after_utc - now < RENEW_BEFORE


def _kept_authority(directory: Path, now: datetime) -> _Authority | None:
    """The CA in ``directory`` if its key was kept and it is not about to expire."""
    try:
        cert = x509.load_pem_x509_certificate((directory / CA_NAME).read_bytes())
        key = serialization.load_pem_private_key((directory / CA_KEY_NAME).read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    return None if _due(cert, now) else _Authority(cert, key)


def _all_current(directory: Path, now: datetime) -> bool:
    """Whether the CA and the server certificate in ``directory`` are there, the second signed by the
    first, and neither due."""
    try:
        ca = x509.load_pem_x509_certificate((directory / CA_NAME).read_bytes())
        cert = x509.load_pem_x509_certificate((directory / CERT_NAME).read_bytes())
        if not (directory / KEY_NAME).exists():
            return False
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    return not (_due(ca, now) or _due(cert, now))


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold ``directory``'s lock: the processes of one server check, renew and read the files in turn."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)  # the directory itself: no file of its own
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _keep_current(directory: Path, now: datetime) -> bool:
    """Make the CA and the server certificate where they are missing, renew what is due; whether
    anything was written. The caller holds the lock."""
    if _all_current(directory, now):
        return False
    ca = _kept_authority(directory, now)
    if ca is None:
        if (directory / CA_NAME).exists():
            log.warning(
                "a new local CA was made (the old one expires soon, or its key was not kept): "
                "clients must trust the new ca.pem",
                extra={"ca": str((directory / CA_NAME).resolve())},
            )
        ca = _new_authority(now)
        _write(directory / CA_KEY_NAME, _key_pem(ca.key), private=True)
        _write(directory / CA_NAME, ca.cert.public_bytes(serialization.Encoding.PEM))
    cert, key = _new_certificate(ca, now)
    _write(directory / KEY_NAME, _key_pem(key), private=True)
    _write(directory / CERT_NAME, cert.public_bytes(serialization.Encoding.PEM))
    log.info("local certificate issued", extra={"not_after": cert.not_valid_after_utc.isoformat()})
    return True


def local_certificates(directory: Path, now: datetime | None = None) -> TLSFiles:
    """The generated localhost certificate in ``directory``: created on first use, renewed by the same
    CA when less than :data:`RENEW_BEFORE` remains (``now``: the time to judge by)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    with _locked(directory):
        _keep_current(directory, now or datetime.now(UTC))
    return TLSFiles(directory / CERT_NAME, directory / KEY_NAME, directory / CA_NAME)


def _stamp(*paths: Path) -> tuple[tuple[int, int, int], ...]:
    """What changes when a file is replaced or rewritten."""
    return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in (p.stat() for p in paths))


class Served:
    """The certificate a server presents, kept current in its SSL context.

    ``files.ca`` set: Patron's generated certificate, renewed here when due. Otherwise a certificate
    given with ``--tls-cert``/``--tls-key``, loaded again when its files change (whoever renews it)."""

    def __init__(self, files: TLSFiles) -> None:
        self.files = files
        self.context: ssl.SSLContext | None = None
        self._stamp: tuple[tuple[int, int, int], ...] = ()

    @contextmanager
    def _files_steady(self) -> Iterator[None]:
        if self.files.ca is None:
            yield
            return
        with _locked(self.files.ca.parent):
            yield

    def make_context(self, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        """uvicorn's context with the certificate loaded, refusing anything older than TLS 1.2."""
        with self._files_steady():
            context = default_factory()
            self._stamp = _stamp(self.files.cert, self.files.key)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context = context
        return context

    def check(self, now: datetime | None = None) -> bool:
        """Renew the generated certificate if it is due; load the files into the context again if they
        changed. Whether the context now presents another certificate. A pair that cannot be loaded
        (a certificate and key that do not match: caught mid-replacement) is left for the next check;
        the context keeps serving what it had."""
        if self.files.ca is not None:
            local_certificates(self.files.ca.parent, now)
        with self._files_steady():
            stamp = _stamp(self.files.cert, self.files.key)
            if stamp == self._stamp or self.context is None:
                return False
            try:  # tried on a context of its own first: a failed load would leave this one without a key
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.files.cert, self.files.key)
            except (OSError, ssl.SSLError) as exc:
                log.warning(
                    "the certificate could not be loaded; kept the one served", extra={"error": str(exc)}
                )
                return False
            self.context.load_cert_chain(self.files.cert, self.files.key)
            self._stamp = stamp
        log.info("certificate loaded again", extra={"cert": str(self.files.cert)})
        return True
