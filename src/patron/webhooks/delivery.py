"""Delivering the webhooks' outbox, from the worker process (a thread of ``patron worker``).

Due events are claimed in a short write (``FOR UPDATE SKIP LOCKED`` where the database has it, so the
workers of a PostgreSQL store share the work): each claimed row is leased (``leased_until``) and its
attempt counted, and that is committed **before** the request; the outcome (and the attempt's line in
the log, ``webhook_attempts``) is committed after it, in the deliverer's next turn: one write that
records the outcomes of every attempt ended since the last (:func:`record`) and claims due events
for the threads they freed. A worker that dies during a request leaves the
lease to expire (``PATRON_WEBHOOK_LEASE``), and the event is sent again with the same ``webhook-id``:
delivery is at least once, and a receiver drops the duplicates by that id.

Each of the deliverer's writes (:func:`turn`) first fans out the outbox's new events
(``outbox.fan_out``: a row for each endpoint subscribed), up to :data:`FAN_OUT` of them; it does so
before anything else, so that the outbox's rows are the first it locks (two deliverers fan out in
turn, and one waiting for the other holds nothing the other needs). What is claimed:

- an event of an enabled endpoint, pending, due (``next_attempt_at``) and not leased;
- only the first undelivered event of each profile and endpoint is pending: a later event about the
  same profile is ``waiting`` until the earlier one is delivered or failed (``outbox.promote``), so a
  receiver sees a profile's events in order;
- no more events of an endpoint at once than its ``max_concurrency``.

A claim reads a few due events of each enabled endpoint through an index: what waits behind an
earlier event, for a retry, or for a disabled endpoint is not read, so a claim costs the same however
many events an outage left behind (``bench/webhooks.py --backlog``).

A 2xx answer delivers the event. Anything else (another status, a redirect, which is never followed,
a refused address, a timeout) is retried with exponential backoff and jitter from
``PATRON_WEBHOOK_BACKOFF`` (capped at :data:`MOST_DELAY`), until its ``retry_until`` (three days after
it was written or replayed): then it is failed. An endpoint whose attempts have all failed for
three days, or ``PATRON_WEBHOOK_DISABLE_AFTER`` times in a row, is disabled; its events are kept.

Each request connects to an address its host resolved to, checked then (``network.resolve``), with
the host name kept for SNI, the certificate's check and the Host header; it has
:data:`CONNECT_TIMEOUT` to connect and :data:`TOTAL_TIMEOUT` in all, and no more than
:data:`MAX_RESPONSE` bytes of the answer are read (and kept in the log).
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import httpx
from sqlalchemy import Connection, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import aliased
from standardwebhooks import Webhook

from patron import __version__
from patron.accounts import now
from patron.config import Webhooks
from patron.metrics import instruments
from patron.store import Store, among, each_of
from patron.store.schema import webhook_attempts, webhook_endpoints, webhook_events, webhook_outbox
from patron.webhooks import network, outbox
from patron.webhooks.endpoints import enabling
from patron.webhooks.outbox import DELIVERED, FAILED, PENDING, RETRY_WINDOW

log = logging.getLogger("patron.webhooks")
CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 10.0
#: The most of an answer's body read, and kept in the delivery log.
MAX_RESPONSE = 4096
#: The longest wait between two attempts of an event.
MOST_DELAY = timedelta(hours=6)
#: Requests under way at once, in one worker process.
THREADS = 16
#: The most events of the outbox one of the deliverer's writes fans out to their endpoints.
FAN_OUT = 2000
USER_AGENT = f"Patron-Webhooks/{__version__}"


@dataclass(frozen=True)
class Claimed:
    """An event claimed for one attempt, with what its delivery needs."""

    id: int
    account_id: int
    endpoint: int
    profile: str | None
    event_id: str
    payload: str
    attempts: int  # this one included
    retry_until: datetime
    leased_until: datetime  # this attempt's lease (a replay meanwhile ends it: the outcome is not kept)
    url: str
    secret: str


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    latency_ms: int
    error: str | None
    response: str | None
    #: The network policy refused the endpoint's address: no request was made.
    refused: bool = False

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _due(
    conn: Connection, at: datetime, most: int, full: Sequence[int] = (), *, lock: bool = False
) -> list[Any]:
    """Up to ``most`` due events (id, endpoint) of each enabled endpoint not ``full``, in the order of
    their ids: each endpoint's pending events read through ``ix_webhook_events_endpoint_due`` until
    ``most`` are due and not leased (``lock``: on PostgreSQL, locked, skipping those another claim
    holds). What waits (behind an earlier event of its profile, for a retry, or of a disabled
    endpoint) is not read."""
    e, p = webhook_events, webhook_endpoints
    first = aliased(e)
    theirs = (
        select(first.c.id, first.c.endpoint)
        .where(
            first.c.endpoint == p.c.id,
            first.c.status == PENDING,
            first.c.next_attempt_at <= at,
            or_(first.c.leased_until.is_(None), first.c.leased_until < at),
        )
        .order_by(first.c.next_attempt_at)
        .limit(most)
    )
    query = each_of(conn, p, theirs, e, lock=lock)  # (on SQLite, an endpoint with none: a row of NULLs)
    query = query.where(p.c.enabled, p.c.id.not_in(full)) if full else query.where(p.c.enabled)
    return sorted((row for row in conn.execute(query) if row.id is not None), key=lambda row: row.id)


def _under_way(conn: Connection, at: datetime, endpoints: list[int] | None = None) -> dict[int, int]:
    """The attempts under way (leased) of each endpoint (of those given), read through
    ``ix_webhook_events_endpoint_leased``."""
    e = webhook_events
    query = select(e.c.endpoint, func.count().label("n")).where(e.c.leased_until >= at)
    if endpoints is not None:
        query = query.where(among(conn, e.c.endpoint, endpoints))
    return {row.endpoint: row.n for row in conn.execute(query.group_by(e.c.endpoint))}


def anything_due(conn: Connection, at: datetime) -> bool:
    """Whether the outbox holds an event or one fanned out is due."""
    if conn.execute(select(webhook_outbox.c.id).limit(1)).first() is not None:
        return True
    return bool(_due(conn, at, 1))


def claim(conn: Connection, at: datetime, lease: timedelta, most: int) -> list[Claimed]:
    """Lease up to ``most`` due events (each endpoint within its concurrency), their attempts counted."""
    e, p = webhook_events, webhook_endpoints
    enabled = select(p.c.id, p.c.max_concurrency).where(p.c.enabled)
    limits = {row.id: row.max_concurrency for row in conn.execute(enabled)}
    full = [endpoint for endpoint, n in _under_way(conn, at).items() if n >= limits.get(endpoint, 0)]
    # the endpoints at their concurrency: none of their events is read
    candidates = _due(conn, at, most, full, lock=True)
    if not candidates:
        return []
    ids = sorted({row.endpoint for row in candidates})
    # the endpoints' rows are held while their attempts under way are counted (workers claim in turn)
    # (an endpoint another worker holds, recording its outcomes or claiming, waits for a later claim:
    # waiting for it here, holding others, could deadlock)
    held = (
        select(p.c.id, p.c.max_concurrency)
        .where(among(conn, p.c.id, ids))
        .order_by(p.c.id)
        .with_for_update(skip_locked=True)
    )
    limits = {row.id: row.max_concurrency for row in conn.execute(held)}
    under_way = _under_way(conn, at, ids)
    chosen: list[int] = []
    for row in candidates:
        if len(chosen) >= most:
            break
        if under_way.get(row.endpoint, 0) < limits.get(row.endpoint, 0):
            under_way[row.endpoint] = under_way.get(row.endpoint, 0) + 1
            chosen.append(row.id)
    if not chosen:
        return []
    conn.execute(
        update(e)
        .where(among(conn, e.c.id, chosen))
        .values(attempts=e.c.attempts + 1, leased_until=at + lease)
    )
    rows = conn.execute(
        select(
            e.c.id,
            e.c.account_id,
            e.c.endpoint,
            e.c.profile,
            e.c.event_id,
            e.c.payload,
            e.c.attempts,
            e.c.retry_until,
            e.c.leased_until,
            p.c.url,
            p.c.secret,
        )
        .join(p, p.c.id == e.c.endpoint)
        .where(among(conn, e.c.id, chosen))
        .order_by(e.c.id)
    )
    return [Claimed(**row._mapping) for row in rows]


def delay(attempts: int, backoff: float) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: doubling from ``backoff``, at most
    :data:`MOST_DELAY`, less a random part of up to half (so retries of many events spread out)."""
    seconds = min(backoff * 2 ** min(attempts - 1, 40), MOST_DELAY.total_seconds())
    jitter = random.uniform(0.5, 1.0)  # noqa: S311 (spreads retries out; nothing secret)
    return timedelta(seconds=seconds * jitter)


class Recorded(NamedTuple):
    """What an attempt came to: ``delivered``, ``retrying``, ``given_up`` or ``refused`` (the
    ``outcome`` label of ``patron_webhook_attempts``), and whether it disabled its endpoint."""

    outcome: str
    disabled: bool = False


def record(
    conn: Connection, finished: Sequence[tuple[Claimed, Outcome]], at: datetime, settings: Webhooks
) -> list[Recorded]:
    """The outcomes of attempts that ended together, in order: their lines of the log (one
    statement), the events delivered (one statement), retried later or failed, and each endpoint's
    run of failures counted (and the endpoint disabled at its end) after its last delivery."""
    if not finished:
        return []
    e, p = webhook_events, webhook_endpoints
    # their endpoints' rows, held in the order of their ids (workers recording at once never deadlock)
    ends = sorted({claimed.endpoint for claimed, _ in finished})
    conn.execute(select(p.c.id).where(among(conn, p.c.id, ends)).order_by(p.c.id).with_for_update())
    conn.execute(
        insert(webhook_attempts),
        [
            {
                "account_id": claimed.account_id,
                "endpoint": claimed.endpoint,
                "event": claimed.id,
                "attempted_at": at,
                "status_code": outcome.status_code,
                "latency_ms": outcome.latency_ms,
                "error": outcome.error,
                "response": outcome.response,
            }
            for claimed, outcome in finished
        ],
    )
    delivered = [claimed for claimed, outcome in finished if outcome.delivered]
    if delivered:
        # each event as its attempt claimed it (a replay meanwhile wants it sent again)
        conn.execute(
            update(e)
            .where(
                e.c.id == bindparam("claimed_id"),
                e.c.status == PENDING,
                e.c.leased_until == bindparam("claimed_lease"),
            )
            .values(status=DELIVERED, delivered_at=at, leased_until=None),
            [{"claimed_id": c.id, "claimed_lease": c.leased_until} for c in delivered],
        )
        failing = or_(p.c.failures != 0, p.c.failing_since.is_not(None))
        reached = sorted({c.endpoint for c in delivered})
        conn.execute(
            update(p).where(among(conn, p.c.id, reached), failing).values(failures=0, failing_since=None)
        )
    last = {claimed.endpoint: n for n, (claimed, outcome) in enumerate(finished) if outcome.delivered}
    recorded = [
        Recorded("delivered")
        if outcome.delivered
        else _failed(conn, claimed, outcome, at, settings, counted=n > last.get(claimed.endpoint, -1))
        for n, (claimed, outcome) in enumerate(finished)
    ]
    # the next event of each profile whose event was delivered or failed is pending now
    profiles = sorted({claimed.profile for claimed, _ in finished if claimed.profile is not None})
    if profiles:
        outbox.promote(
            conn, lambda t: among(conn, t.c.endpoint, ends), lambda t: among(conn, t.c.profile, profiles)
        )
    return recorded


def _failed(
    conn: Connection, claimed: Claimed, outcome: Outcome, at: datetime, settings: Webhooks, *, counted: bool
) -> Recorded:
    """A failed attempt: its event retried later or failed; ``counted``: and its endpoint's run of
    failures counted (not when a later attempt of the same batch delivered)."""
    e, p = webhook_events, webhook_endpoints
    mine = (e.c.id == claimed.id) & (e.c.status == PENDING) & (e.c.leased_until == claimed.leased_until)
    following = at + delay(claimed.attempts, settings.backoff)
    if following > claimed.retry_until:
        conn.execute(update(e).where(mine).values(status=FAILED, leased_until=None))
        recorded = Recorded("refused" if outcome.refused else "given_up")
    else:
        conn.execute(update(e).where(mine).values(next_attempt_at=following, leased_until=None))
        recorded = Recorded("refused" if outcome.refused else "retrying")
    if not counted:
        return recorded
    endpoint = conn.execute(
        select(p.c.failures, p.c.failing_since, p.c.enabled).where(p.c.id == claimed.endpoint)
    ).first()
    if endpoint is None:  # deleted meanwhile
        return recorded
    failures = endpoint.failures + 1
    since = endpoint.failing_since or at
    values: dict[str, Any] = {"failures": failures, "failing_since": since}
    if endpoint.enabled and (failures >= settings.disable_after > 0 or at - since >= RETRY_WINDOW):
        reason = f"every attempt failed since {since.isoformat()} ({failures} in a row)"
        values.update(enabling(False, reason, at))
        log.warning("endpoint disabled", extra={"endpoint": claimed.endpoint, "failures": failures})
        recorded = recorded._replace(disabled=True)
    conn.execute(update(p).where(p.c.id == claimed.endpoint).values(**values))
    return recorded


def turn(
    conn: Connection,
    finished: Sequence[tuple[Claimed, Outcome]],
    at: datetime,
    lease: timedelta,
    free: int,
    settings: Webhooks,
) -> tuple[list[Recorded], list[Claimed]]:
    """One write of the deliverer: the outbox fanned out, the ``finished`` attempts' outcomes
    recorded (:func:`record`), and up to ``free`` due events claimed (:func:`claim`)."""
    outbox.fan_out(conn, FAN_OUT)
    recorded = record(conn, finished, at, settings)
    return recorded, claim(conn, at, lease, free) if free > 0 else []


class Deliverer:
    """Delivers due events until ``stop`` is set (a thread of ``patron worker``)."""

    def __init__(
        self,
        store: Store,
        settings: Webhooks,
        stop: threading.Event,
        *,
        poll: float = 0.5,
        threads: int = THREADS,
    ) -> None:
        self.store, self.settings, self.stop, self.poll, self.threads = store, settings, stop, poll, threads
        self.lease = timedelta(seconds=settings.lease)
        self.context = ssl.create_default_context()
        for ca in settings.ca_files:
            self.context.load_verify_locations(ca)
        self._clients: OrderedDict[tuple[str, str, int], httpx.Client] = OrderedDict()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, name="patron-webhooks", daemon=True)
        # httpx logs each request with its URL at INFO: the outcomes are logged here, by event id
        logging.getLogger("httpx").setLevel(logging.WARNING)

    def run(self) -> None:
        with ThreadPoolExecutor(self.threads, thread_name_prefix="patron-webhook") as pool:
            under_way: dict[Future[Outcome], Claimed] = {}
            finished: list[tuple[Claimed, Outcome]] = []
            while not self.stop.is_set():
                free = self.threads - len(under_way)
                try:
                    claimed = self._turn(finished, free)
                except Exception as exc:  # the outcomes are lost: their events are sent again
                    log.error("recording or claiming webhooks failed; retrying", extra=_failure(exc))
                    claimed = []
                finished = []
                for c in claimed:
                    under_way[pool.submit(self.send, c)] = c
                if under_way:
                    done, _ = wait(under_way, timeout=self.poll, return_when=FIRST_COMPLETED)
                    finished = self._finished(done, under_way)
                elif not claimed:
                    self.stop.wait(self.poll)
            done, _ = wait(under_way)
            finished += self._finished(done, under_way)
            try:
                self._turn(finished, 0)
            except Exception as exc:
                log.error("recording webhooks failed", extra=_failure(exc))
        with self._lock:
            for client in self._clients.values():
                client.close()

    @staticmethod
    def _finished(
        done: set[Future[Outcome]], under_way: dict[Future[Outcome], Claimed]
    ) -> list[tuple[Claimed, Outcome]]:
        """The attempts ``done``, taken out of ``under_way``, with their outcomes (in claim order)."""
        finished = []
        for future in done:
            claimed = under_way.pop(future)
            failure = future.exception()
            if failure is not None:  # nothing recorded: sent again once its lease ends
                log.error("a webhook attempt failed", extra=_failure(failure))
            else:
                finished.append((claimed, future.result()))
        return sorted(finished, key=lambda pair: pair[0].id)

    def _turn(self, finished: list[tuple[Claimed, Outcome]], free: int) -> list[Claimed]:
        """Record the ``finished`` attempts' outcomes and claim up to ``free`` due events, in one
        write: the attempts that end together share a transaction, and an event whose predecessor
        (about the same profile) was just delivered is claimed at once."""
        if not finished:
            if free <= 0:
                return []
            at = now()
            if not self.store.read_blocking(lambda conn: anything_due(conn, at)):
                return []

        recorded, claimed = self.store.write_blocking(
            lambda conn: turn(conn, finished, now(), self.lease, free, self.settings)
        )
        measured = instruments()
        for (c, outcome), kept in zip(finished, recorded, strict=True):
            measured.webhook_attempts.labels(kept.outcome).inc()
            measured.webhook_latency.observe(outcome.latency_ms / 1000)
            if kept.disabled:
                measured.webhook_disabled.inc()
            log.info(
                "delivered" if outcome.delivered else "attempt failed",
                extra={"event_id": c.event_id, "attempt": c.attempts, "status": outcome.status_code},
            )
        return claimed

    def send(self, claimed: Claimed) -> Outcome:
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            target = network.parse(claimed.url)
            addresses = network.resolve(target, self.settings.allow_networks)
        except network.Refused as exc:
            return Outcome(None, took(), f"refused: the URL {exc}", None, refused=True)
        signature = Webhook(claimed.secret).sign(claimed.event_id, datetime_now := now(), claimed.payload)
        headers = {
            "host": target.authority,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": claimed.event_id,
            "webhook-timestamp": str(int(datetime_now.timestamp())),
            "webhook-signature": signature,
        }
        deadline = started + TOTAL_TIMEOUT
        for n, address in enumerate(addresses):  # the next address only when one refuses to connect
            try:
                return self._post(target, address, claimed.payload, headers, deadline, took)
            except httpx.ConnectError as exc:
                if n == len(addresses) - 1 or time.monotonic() > deadline:
                    return Outcome(None, took(), f"{type(exc).__name__}: {exc}"[:1000], None)
            except httpx.HTTPError as exc:
                return Outcome(None, took(), f"{type(exc).__name__}: {exc}"[:1000], None)
        raise AssertionError("resolve gives at least one address")  # pragma: no cover

    def _post(
        self,
        target: network.Target,
        address: network.IPAddress,
        payload: str,
        headers: dict[str, str],
        deadline: float,
        took: Callable[[], int],
    ) -> Outcome:
        """One request to ``address`` (checked), named as ``target``: its answer's first bytes."""
        client = self._client(target, str(address))
        with client.stream(
            "POST",
            target.at(address),
            content=payload.encode(),
            headers=headers,
            extensions={"sni_hostname": target.host, "timeout": _timeouts(deadline)},
        ) as response:
            body = bytearray()
            for chunk in response.iter_raw():
                body += chunk
                if len(body) >= MAX_RESPONSE or time.monotonic() > deadline:
                    break
            text = bytes(body[:MAX_RESPONSE]).decode("utf-8", "replace") or None
            error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
            if 300 <= response.status_code < 400:
                error = f"HTTP {response.status_code}: redirects are not followed"
            return Outcome(response.status_code, took(), error, text)

    def _client(self, target: network.Target, address: str) -> httpx.Client:
        """A client for one host at one address (its connections are kept between requests: never
        shared between host names, whose certificates differ)."""
        key = (target.host, address, target.port)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = httpx.Client(
                    verify=self.context,
                    follow_redirects=False,
                    trust_env=False,
                    timeout=httpx.Timeout(TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT),
                    limits=httpx.Limits(max_connections=20, max_keepalive_connections=20),
                )
                while len(self._clients) > 64:
                    _, oldest = self._clients.popitem(last=False)
                    oldest.close()
            self._clients.move_to_end(key)
            return client


def _timeouts(deadline: float) -> dict[str, float]:
    """httpcore's timeouts of one request: 5 s to connect, and whatever remains of the 10 s for each
    other step."""
    left = max(0.1, deadline - time.monotonic())
    return {"connect": min(CONNECT_TIMEOUT, left), "read": left, "write": left, "pool": left}


def _failure(exc: BaseException) -> dict[str, Any]:
    return {
        "error": type(exc).__name__,
        "at": [f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_tb(exc.__traceback__)],
    }
