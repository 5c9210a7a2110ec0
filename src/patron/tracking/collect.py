"""The collector: a beacon of the website tag, decoded, joins the import queue, so that the worker
applies it in order with the account's pushes (``events.py``). What does not decode is dropped; a
browser or an address sending more than its limit is dropped too; nothing is answered either way."""

from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import datetime

from sqlalchemy import Connection, select

from patron.accounts import now
from patron.ingest.queue import enqueue_operation
from patron.ingest.submit import Submitter
from patron.metrics import instruments
from patron.ratelimits import RateLimiter
from patron.store import Store
from patron.store.schema import accounts
from patron.tracking import wire
from patron.tracking.events import TRACK, Hit
from patron.tracking.wire import Beacon

log = logging.getLogger("patron.tracking")
_HASH = re.compile(r"^[0-9a-f]{16}$")
#: Seconds an account hash found unknown is not looked up again, and how many such hashes are kept.
UNKNOWN_SECONDS = 60
MAX_UNKNOWN = 10_000


def account_id(conn: Connection, account_hash: str) -> int | None:
    found: int | None = conn.execute(select(accounts.c.id).where(accounts.c.hash == account_hash)).scalar()
    return found


def queue(conn: Connection, account: int, beacon: Beacon, at: datetime, limit: int | None) -> None:
    """Keep the event, in the queue with ``limit`` (the collector's is None: never refused for a
    backlog, as the per-visitor and per-address limits bound what one browser can send)."""
    enqueue_operation(conn, account, limit, str(uuid.uuid4()), TRACK, Hit(beacon, at), at)


def well_formed(account_hash: str) -> bool:
    """Whether ``account_hash`` has the form of an account's hash."""
    return _HASH.match(account_hash) is not None


class Accounts:
    """Account ids by hash, as the collector needs them for every beacon; a hash found unknown is not
    looked up again for :data:`UNKNOWN_SECONDS`."""

    def __init__(self) -> None:
        self.known: dict[str, int] = {}
        self.unknown: dict[str, float] = {}

    async def find(self, store: Store, account_hash: str) -> int | None:
        if account_hash in self.known:
            return self.known[account_hash]
        if self.unknown.get(account_hash, 0) > time.monotonic() or not well_formed(account_hash):
            return None
        found: int | None = await store.read(lambda conn: account_id(conn, account_hash))
        if found is None:
            if len(self.unknown) > MAX_UNKNOWN:
                self.unknown.clear()
            self.unknown[account_hash] = time.monotonic() + UNKNOWN_SECONDS
        else:
            self.known[account_hash] = found
        return found


class Collector:
    """Takes beacons for the API process: its limits per address and per visitor (``per_address``,
    ``per_visitor``: rates such as ``200/second``, counted by ``limiter`` in this process), the
    accounts it has looked up, and the queue (``submit``)."""

    def __init__(self, submit: Submitter, limiter: RateLimiter, per_address: str, per_visitor: str) -> None:
        self.submit = submit
        self.limiter = limiter
        self.per_address = per_address
        self.per_visitor = per_visitor
        self.accounts = Accounts()

    async def take(self, address: str, account_hash: str, data: str) -> None:
        """Queue the event in ``data`` (the tag's ``data`` parameter) for the account, unless it does
        not decode, the account is unknown or a limit is reached; a store that is down loses it.
        Counted as accepted, or dropped with its reason."""
        dropped = await self._take(address, account_hash, data)
        measured = instruments()
        if dropped is None:
            measured.beacons_accepted.inc()
        else:
            measured.beacons_dropped.labels(dropped).inc()

    async def _take(self, address: str, account_hash: str, data: str) -> str | None:
        """Why the beacon was dropped (None: it was kept)."""
        if not (await self.limiter.hit(f"address:{address}", "track", self.per_address)).allowed:
            return "address_limit"
        beacon = wire.decode(data)
        if beacon is None:
            return "undecodable"
        if not (await self.limiter.hit(f"visitor:{beacon.cid}", "track", self.per_visitor)).allowed:
            return "visitor_limit"
        account = await self.accounts.find(self.submit.store, account_hash)
        if account is None:
            return "unknown_account"
        at = now()
        try:
            await self.submit.queue(lambda conn, limit: queue(conn, account, beacon, at, limit), limit=None)
        except Exception:  # the store is down: the event is lost, the page is not broken
            log.warning("a tracking event could not be kept", exc_info=True)
            return "store_unavailable"
        return None
