"""Settings from command-line flags and ``PATRON_*`` environment variables."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = "./patron-data"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8443
#: The largest request body accepted, in bytes. A full push (100 records of at most 60,000 bytes each)
#: is 6,000,000 bytes plus the array's punctuation; the cap leaves room for whitespace around it.
MAX_BODY_BYTES = 8 * 1024 * 1024


#: Seconds an API request's reads may take before they are cancelled.
READ_BUDGET = 10.0


#: Seconds between two looks of a running server at its certificate (a day).
TLS_CHECK = 86400.0


#: How long a verified link in an email works, from the moment its message was queued.
LINK_DAYS = 365


@dataclass(frozen=True)
class Site:
    """Where people reach this server (``PATRON_PUBLIC_URL``), and how long verified links work."""

    base_url: str
    link_days: int = LINK_DAYS


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def _path(name: str) -> Path | None:
    value = _env(name)
    return None if value is None else Path(value)


def _seconds(name: str, default: float) -> float:
    """Variable ``name``: a number of seconds above zero (``default`` when unset)."""
    value = _env(name)
    try:
        seconds = default if value is None else float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{name} must be a number of seconds above zero, not {value!r}")
    return seconds


def _count(name: str, default: int) -> int:
    """Variable ``name``: a whole number, 0 or more (``default`` when unset)."""
    value = _env(name)
    try:
        count = default if value is None else int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise ValueError(f"{name} must be a whole number, 0 or more, not {value!r}")
    return count


#: Days kept by default of applied queue rows, push errors, the tag's raw events and webhook events.
RETAIN_DAYS = 30
#: The longest retention a setting may ask for (a hundred years: for ever, in practice).
MAX_RETAIN_DAYS = 36_500


def _days(name: str, default: int) -> int:
    """Variable ``name``: a whole number of days, from 1 to :data:`MAX_RETAIN_DAYS`."""
    value = _env(name)
    try:
        days = default if value is None else int(value)
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_RETAIN_DAYS:
        raise ValueError(
            f"{name} must be a whole number of days from 1 to {MAX_RETAIN_DAYS:,}, not {value!r}"
        )
    return days


@dataclass(frozen=True)
class Retention:
    """How many days the worker keeps what only serves inspection (``patron.retention``)."""

    #: Applied rows of the import queue, with their copies of the records.
    applied_days: int = field(default_factory=lambda: _days("PATRON_RETAIN_APPLIED_DAYS", RETAIN_DAYS))
    #: Push errors: rejected records and lenient readings (``GET /v2/push/_errors``).
    errors_days: int = field(default_factory=lambda: _days("PATRON_RETAIN_ERRORS_DAYS", RETAIN_DAYS))
    #: The tag's raw events (``tracking_events``); their sessions and what they did to profiles stay.
    events_days: int = field(default_factory=lambda: _days("PATRON_RETAIN_EVENTS_DAYS", RETAIN_DAYS))
    #: Webhook events delivered or failed, with their attempts (the delivery log); the replay's reach.
    webhooks_days: int = field(default_factory=lambda: _days("PATRON_RETAIN_WEBHOOKS_DAYS", RETAIN_DAYS))


#: A network an operator allows webhook endpoints to reach, though it is not global (``10.0.0.0/8``).
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(name: str) -> tuple[Network, ...]:
    """Variable ``name``: networks in CIDR notation, comma-separated (none when unset)."""
    value = _env(name) or ""
    networks = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(
                f"{name} must be networks in CIDR notation, comma-separated"
                f" (10.0.0.0/8,fd00::/8), not {part!r}"
            ) from None
    return tuple(networks)


def _paths(name: str) -> tuple[Path, ...]:
    """Variable ``name``: files, comma-separated (none when unset)."""
    return tuple(Path(p.strip()) for p in (_env(name) or "").split(",") if p.strip())


@dataclass(frozen=True)
class Webhooks:
    """How the worker delivers webhooks (``patron.webhooks``)."""

    #: Networks endpoints may resolve into though they are not global (private, loopback...).
    allow_networks: tuple[Network, ...] = field(
        default_factory=lambda: _networks("PATRON_WEBHOOK_ALLOW_NETWORKS")
    )
    #: Certificate authorities trusted besides the system's (a private receiver's, tests').
    ca_files: tuple[Path, ...] = field(default_factory=lambda: _paths("PATRON_WEBHOOK_CA"))
    #: Seconds before a failed delivery's second attempt (doubling each time, with jitter).
    backoff: float = field(default_factory=lambda: _seconds("PATRON_WEBHOOK_BACKOFF", 5.0))
    #: Seconds an attempt is leased for: a worker that dies during one leaves it to be made again then.
    lease: float = field(default_factory=lambda: _seconds("PATRON_WEBHOOK_LEASE", 60.0))
    #: Failed attempts in a row (no delivery between) after which an endpoint is disabled.
    disable_after: int = field(default_factory=lambda: _count("PATRON_WEBHOOK_DISABLE_AFTER", 100))


@dataclass(frozen=True)
class Settings:
    """Everything a Patron process needs to know about where its data lives and how it serves."""

    data_dir: Path = field(default_factory=lambda: Path(_env("PATRON_DATA_DIR") or DEFAULT_DATA_DIR))
    database_url: str | None = field(default_factory=lambda: _env("PATRON_DATABASE_URL"))
    redis_url: str | None = field(default_factory=lambda: _env("PATRON_REDIS_URL"))
    #: Where the worker delivers transactional email (none: messages stay queued, readable by API).
    smtp_url: str | None = field(default_factory=lambda: _env("PATRON_SMTP_URL"))
    #: Seconds before a failed delivery's second attempt (doubling each time).
    smtp_backoff: float = field(default_factory=lambda: float(_env("PATRON_SMTP_BACKOFF") or 2.0))
    #: Seconds an SMTP attempt may take before it counts as interrupted (its message is then failed).
    smtp_lease: float = field(default_factory=lambda: float(_env("PATRON_SMTP_LEASE") or 300.0))
    #: Seconds without activity after which a tracked session ends (and may be abandoned).
    session_idle: float = field(default_factory=lambda: float(_env("PATRON_SESSION_IDLE") or 1800.0))
    #: Tag events accepted from one browser (cookie id) and from one address.
    track_per_visitor: str = field(default_factory=lambda: _env("PATRON_TRACK_PER_VISITOR") or "20/second")
    track_per_address: str = field(default_factory=lambda: _env("PATRON_TRACK_PER_ADDRESS") or "200/second")
    #: Seconds a request's head may take to arrive (from the connection's start or the last response),
    #: and a request's whole body (from its head); the TLS handshake has the head's time too.
    header_timeout: float = field(default_factory=lambda: _seconds("PATRON_HEADER_TIMEOUT", 10.0))
    body_timeout: float = field(default_factory=lambda: _seconds("PATRON_BODY_TIMEOUT", 60.0))
    #: Connections open at once from one client address, in each API process (0: no limit; none
    #: ``--behind-proxy``, where every connection comes from the proxy).
    connections_per_address: int = field(
        default_factory=lambda: _count("PATRON_CONNECTIONS_PER_ADDRESS", 100)
    )
    #: Seconds an API request's read may take, queued and running, before it is cancelled (a 503).
    read_budget: float = field(default_factory=lambda: _seconds("PATRON_READ_BUDGET", READ_BUDGET))
    #: What the worker prunes, and after how many days.
    retention: Retention = field(default_factory=Retention)
    #: How the worker delivers webhooks.
    webhooks: Webhooks = field(default_factory=Webhooks)
    #: Seconds between two looks of a running server at its certificate: the generated one renewed when
    #: due, either loaded again when its files changed.
    tls_check: float = field(default_factory=lambda: _seconds("PATRON_TLS_CHECK", TLS_CHECK))
    #: Where the processes of this host keep their Prometheus counters, shared through files
    #: (``PATRON_METRICS_DIR``; default: ``metrics/`` in the data directory).
    metrics_dir: Path | None = field(default_factory=lambda: _path("PATRON_METRICS_DIR"))
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    tls_cert: Path | None = None
    tls_key: Path | None = None
    behind_proxy: bool = False
    max_body_bytes: int = MAX_BODY_BYTES
    #: Serve ``POST /v2/_bench/noop`` (auth, rate limit and body read, nothing else): the HTTP ceiling
    #: that ``bench/push.py`` measures pushes against.
    bench_noop: bool = False
    #: Start a ``patron worker`` with the server (``--no-worker``: workers run on their own).
    run_worker: bool = True
    #: API processes of one ``patron serve`` (``--workers N``).
    api_processes: int = 1

    #: The address people reach this server at, for links in email (default: this host and port).
    public_url: str | None = field(default_factory=lambda: _env("PATRON_PUBLIC_URL"))

    #: How many days a verified link in an email works.
    link_days: int = field(default_factory=lambda: int(_env("PATRON_LINK_DAYS") or LINK_DAYS))

    @property
    def site(self) -> Site:
        """Where links in email lead, and how long they work."""
        return Site(self.base_url, self.link_days)

    @property
    def base_url(self) -> str:
        """The public address, else this server's own (``localhost`` for a loopback host)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "localhost" if self.host == DEFAULT_HOST else self.host
        return f"{'http' if self.behind_proxy else 'https'}://{host}:{self.port}"

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to the embedded SQLite file inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'patron.db').resolve()}"

    @property
    def resolved_metrics_dir(self) -> Path:
        """The directory of this host's metric files: ``PATRON_METRICS_DIR``, else ``<data dir>/metrics``."""
        return self.metrics_dir if self.metrics_dir is not None else self.data_dir / "metrics"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"
