"""Prometheus metrics: what every Patron process counts, and the text of a scrape.

The processes of one host (``patron serve``'s API processes, its worker, a ``patron worker`` run by
hand) count in files of one directory (:func:`share`: prometheus_client's multiprocess mode), so a
scrape of any API process sums them all: requests answered by each API process, records applied by
each worker. What lives in the database (the queue, the outbox, the database's size) is read when
scraped, by the process that answers, as one :class:`Database` snapshot.

prometheus_client chooses how a metric keeps its values when the metric is created, so the metrics
of a process are created on first use (:func:`instruments`), after :func:`share` has chosen the files.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

#: The variable prometheus_client reads for the directory of its files (children inherit it).
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
#: The status of an email message in the outbox, each always exposed (0 when none).
MESSAGE_STATUSES = ("queued", "sending", "sent", "failed", "sandbox")


class Instruments:
    """The counters and histograms of a process."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "patron_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "patron_http_request_duration_seconds",
            "Time from the request's arrival to the end of its response, by route template",
            ["route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.throttled = Counter(
            "patron_http_throttled",
            "429 answers, by endpoint class (data, push, email, gdpr, merge; none outside /v2) and cause"
            " (rate_limit: the account's rate; queue_full: the account's queue; busy: a report already"
            " being computed)",
            ["class", "cause"],
            registry=registry,
        )
        self.rejected = Counter(
            "patron_push_rejected_records",
            "Records rejected at validation, by reason (missing_field, wrong_type, invalid_value,"
            " too_large, too_many_lists, or the lenient reading a strict account refused)",
            ["reason"],
            registry=registry,
        )
        self.applied = Counter(
            "patron_worker_records_applied",
            "Queued records the workers have applied, by record type (a record that fails to apply"
            " becomes a push error and counts too)",
            ["type"],
            registry=registry,
        )
        self.rounds = Histogram(
            "patron_worker_round_duration_seconds",
            "Time a worker's round takes, from reading its batches to their commit",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
        )
        self.webhook_attempts = Counter(
            "patron_webhook_attempts",
            "Webhook delivery attempts, by outcome (delivered: a 2xx answer; retrying: failed, tried"
            " again later; given_up: failed, and its event failed for good; refused: the network policy"
            " refused the endpoint's address, no request made)",
            ["outcome"],
            registry=registry,
        )
        self.webhook_latency = Histogram(
            "patron_webhook_attempt_duration_seconds",
            "Time a webhook delivery attempt takes, from resolving the endpoint's host to its answer read",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.webhook_disabled = Counter(
            "patron_webhook_endpoints_disabled",
            "Webhook endpoints disabled by the workers after continuous failure",
            registry=registry,
        )
        self.beacons_accepted = Counter(
            "patron_tracking_beacons_accepted",
            "Tag beacons kept in the import queue",
            registry=registry,
        )
        self.beacons_dropped = Counter(
            "patron_tracking_beacons_dropped",
            "Tag beacons dropped, by reason (address_limit, visitor_limit, undecodable, unknown_account,"
            " store_unavailable)",
            ["reason"],
            registry=registry,
        )


_lock = threading.Lock()
_instruments: Instruments | None = None
_shared: Path | None = None


def instruments() -> Instruments:
    """This process's metrics, created on first use."""
    global _instruments
    if _instruments is None:
        with _lock:
            if _instruments is None:
                _instruments = Instruments()
    return _instruments


def share(directory: Path, *, clean: bool = False) -> None:
    """Count this process's metrics in files in ``directory`` (created if need be), with the other
    processes of the host that use it; the processes this one starts inherit it. ``clean``: first
    remove the files of processes no longer running (``patron serve`` does, as it starts). Call it
    before any metric is used."""
    global _shared
    directory = directory.resolve()
    with _lock:
        if _instruments is not None and _shared != directory:
            raise RuntimeError("the metrics of this process were created before they were shared")
        directory.mkdir(parents=True, exist_ok=True)
        if clean:
            for path in directory.glob("*.db"):
                if not _running(path):
                    path.unlink(missing_ok=True)
        os.environ[MULTIPROCESS_VARIABLE] = str(directory)
        if not getattr(values.ValueClass, "_multiprocess", False):
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        _shared = directory


def shared() -> Path | None:
    """The directory this process counts in (None: in its memory alone)."""
    return _shared


def _running(path: Path) -> bool:
    """Whether the process that wrote the metric file at ``path`` (``counter_<pid>.db``) still runs."""
    pid = path.stem.rpartition("_")[2]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_ended(pid: int) -> None:
    """A process of this host that shares the metric files has ended: its live gauges go (its
    counters stay, so that the sums never go back)."""
    if _shared is not None:
        mark_process_dead(pid, str(_shared))  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Queued:
    """An account with records queued: its hash, how many, and when the oldest was received."""

    account: str
    records: int
    oldest: datetime | None


@dataclass(frozen=True)
class Database:
    """What the database says, read at scrape time (:attr:`read` False: it could not be read)."""

    read: bool = False
    queued: list[Queued] = field(default_factory=list)
    #: Records queued in every account (the accounts in :attr:`queued` are the largest backlogs).
    backlog: int = 0
    messages: dict[str, int] = field(default_factory=dict)
    #: Webhook events not yet delivered nor failed (their endpoints enabled or not).
    webhooks_pending: int = 0
    size_bytes: int = 0


class _DatabaseCollector(Collector):
    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[Metric]:
        db = self.database
        up = GaugeMetricFamily(
            "patron_database_metrics_up",
            "1 if this scrape read the database's values (queue, outbox, size), 0 if the read failed"
            " or ran out of time",
            value=1 if db.read else 0,
        )
        yield up
        if not db.read:
            return
        now = time.time()
        depth = GaugeMetricFamily(
            "patron_queue_records",
            "Records queued and not yet applied, by account hash (accounts with something queued)",
            labels=["account"],
        )
        age = GaugeMetricFamily(
            "patron_queue_oldest_age_seconds",
            "Age of the account's oldest queued row, by account hash (accounts with something queued)",
            labels=["account"],
        )
        for queued in db.queued:
            depth.add_metric([queued.account], queued.records)
            if queued.oldest is not None:
                age.add_metric([queued.account], max(0.0, now - queued.oldest.timestamp()))
        yield depth
        yield age
        yield GaugeMetricFamily(
            "patron_queue_backlog_records", "Records queued in every account", value=db.backlog
        )
        outbox = GaugeMetricFamily(
            "patron_email_messages",
            "Transactional email messages in the outbox, by status",
            labels=["status"],
        )
        for status in MESSAGE_STATUSES:
            outbox.add_metric([status], db.messages.get(status, 0))
        yield outbox
        yield GaugeMetricFamily(
            "patron_webhook_events_pending",
            "Webhook events not yet delivered nor failed: due, waiting for a retry, or kept by a disabled"
            " endpoint",
            value=db.webhooks_pending,
        )
        yield GaugeMetricFamily(
            "patron_database_size_bytes",
            "Size of the database (its pages, or PostgreSQL's files)",
            value=db.size_bytes,
        )


class _Files(Collector):
    """The metric files of every process sharing ``directory``, summed (as prometheus_client's
    ``MultiProcessCollector``), leaving out a file still empty: a process creating its file gives it
    its size just after, and an empty file would fail the whole scrape (prometheus/client_python
    issue 1199)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def collect(self) -> Iterator[Metric]:
        files = [str(path) for path in self.directory.glob("*.db") if _size(path)]
        return iter(MultiProcessCollector.merge(files, accumulate=True))  # type: ignore[no-untyped-call]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # its process gone, and a server starting has removed it
        return 0


class _Own(Collector):
    """This process's own metrics (when they are not shared through files)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        return iter(self.registry.collect())


def exposition(database: Database) -> bytes:
    """A scrape's text: the metrics of every process sharing this one's files (or this process's
    alone), and ``database``. Reads files: run it off the event loop."""
    registry = CollectorRegistry(auto_describe=False)
    if _shared is not None:
        registry.register(_Files(_shared))
    else:
        registry.register(_Own(instruments().registry))
    registry.register(_DatabaseCollector(database))
    return generate_latest(registry)
