"""Accounts and their API keys.

An account is one Ometria-style account (staging or live) with a 16-hex-character hash, which the
JavaScript tag uses, and one or more API keys for the Data API. A key is 128 random bits shown once;
only its SHA-256 is stored, and every lookup compares digests in constant time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec
from sqlalchemy import Connection, Row, func, insert, select, update

from patron import errors, ratelimits
from patron.store import Store
from patron.store.schema import accounts, api_keys

ENVIRONMENTS: Final = ("staging", "live")
#: A revoked key stops working within this many seconds (the life of a cached lookup).
KEY_CACHE_SECONDS: Final = 3.0
#: Ometria's backlog limit: more queued records than this and a push gets 429.
DEFAULT_QUEUE_LIMIT: Final = 50_000
NAME_MAX: Final = 200
#: A key's last use is written at most this often (the console shows it; to the minute is enough).
LAST_USED_EVERY: Final = 60.0
#: How many of a new key's first characters are kept, to tell keys apart (24 of its 128 bits).
KEY_PREFIX_LENGTH: Final = 6
#: The furthest ahead a key's expiry may be set.
LONGEST_EXPIRY: Final = timedelta(days=3660)

log = logging.getLogger(__name__)


class AccountError(errors.Invalid):
    """A request about accounts or keys that cannot be carried out (a bad name or limit, ...)."""


class UnknownAccount(errors.NotFound, AccountError):
    """A request about an account or a key that does not exist."""


class Account(msgspec.Struct, frozen=True):
    id: int
    hash: str
    name: str
    environment: str
    limits: dict[str, str]  # overrides only; see `effective_limits`
    created_at: datetime
    queue_limit: int = DEFAULT_QUEUE_LIMIT
    #: Refuse what is otherwise read leniently (docs/compatibility.md, "Lenient readings").
    strict: bool = False

    @property
    def effective_limits(self) -> dict[str, str]:
        return ratelimits.effective(self.limits)


class ApiKey(msgspec.Struct, frozen=True):
    id: str
    account_hash: str
    label: str
    created_at: datetime
    revoked_at: datetime | None
    #: When the API last took the key (to the minute: see :data:`LAST_USED_EVERY`).
    last_used_at: datetime | None = None
    #: The key's first :data:`KEY_PREFIX_LENGTH` characters (None for a key made before they were kept).
    prefix: str | None = None
    #: When the key stops working (None: never).
    expires_at: datetime | None = None
    #: The key may only read (GET and HEAD); every other request gets 403.
    read_only: bool = False

    @property
    def scope(self) -> str:
        return "read-only" if self.read_only else "read-write"


class KeyAccess(msgspec.Struct, frozen=True):
    """What an API key opens: its account, until when, and whether it may only read."""

    account: Account
    expires_at: datetime | None
    read_only: bool

    def expired(self, at: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= at


def now() -> datetime:
    return datetime.now(UTC)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _account(row: Row[tuple[object, ...]]) -> Account:
    m = row._mapping
    return Account(
        id=m["id"],
        hash=m["hash"],
        name=m["name"],
        environment=m["environment"],
        limits=dict(m["limits"] or {}),
        created_at=m["created_at"],
        queue_limit=m["queue_limit"],
        strict=bool(m["strict"]),
    )


def _account_columns() -> list[object]:
    return [
        accounts.c.id,
        accounts.c.hash,
        accounts.c.name,
        accounts.c.environment,
        accounts.c.limits,
        accounts.c.created_at,
        accounts.c.queue_limit,
        accounts.c.strict,
    ]


# queries: plain functions of a connection, run by the store --------------------------------------


def create_account(conn: Connection, name: str, environment: str) -> tuple[Account, str]:
    """A new account and its first API key (returned in clear, the only time it exists in clear)."""
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise AccountError(f"the account name must be 1 to {NAME_MAX} characters")
    if environment not in ENVIRONMENTS:
        raise AccountError(f"environment must be one of {', '.join(ENVIRONMENTS)}, not {environment!r}")
    account_hash = secrets.token_hex(8)
    while conn.execute(select(accounts.c.id).where(accounts.c.hash == account_hash)).first():
        account_hash = secrets.token_hex(8)  # pragma: no cover - 1 in 2**64
    created = now()
    inserted = conn.execute(
        insert(accounts).values(
            hash=account_hash,
            name=name,
            environment=environment,
            limits={},
            created_at=created,
            queue_limit=DEFAULT_QUEUE_LIMIT,
        )
    ).inserted_primary_key
    assert inserted is not None
    account_id = int(inserted[0])
    account = Account(account_id, account_hash, name, environment, {}, created)
    _, key = create_key(conn, account_hash, label="first key")
    return account, key


def list_accounts(conn: Connection) -> list[Account]:
    rows = conn.execute(select(*_account_columns()).order_by(accounts.c.id))  # type: ignore[call-overload]
    return [_account(row) for row in rows]


def get_account(conn: Connection, account_hash: str) -> Account:
    row = conn.execute(
        select(*_account_columns()).where(accounts.c.hash == account_hash)  # type: ignore[call-overload]
    ).first()
    if row is None:
        raise UnknownAccount(f"no account has the hash {account_hash!r}")
    return _account(row)


def rename_account(conn: Connection, account_hash: str, name: str) -> Account:
    """Give the account a new name (for people: the console and the CLI show it)."""
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise AccountError(f"the account name must be 1 to {NAME_MAX} characters")
    account = get_account(conn, account_hash)
    conn.execute(update(accounts).where(accounts.c.id == account.id).values(name=name))
    return msgspec.structs.replace(account, name=name)


class AccountSettings(msgspec.Struct, frozen=True):
    """What ``patron accounts show`` says of an account beside its :class:`Account`."""

    match_phone: bool
    link_domains: list[str]
    keys: int  # keys neither revoked nor expired


def account_settings(conn: Connection, account: Account) -> AccountSettings:
    row = conn.execute(
        select(accounts.c.match_phone, accounts.c.link_domains).where(accounts.c.id == account.id)
    ).one()
    k = api_keys.c
    at = now()
    live = conn.execute(
        select(func.count()).where(
            k.account_id == account.id,
            k.revoked_at.is_(None),
            (k.expires_at.is_(None)) | (k.expires_at > at),
        )
    ).scalar_one()
    return AccountSettings(bool(row.match_phone), list(row.link_domains or []), int(live))


def find_account(conn: Connection, name: str, environment: str) -> Account | None:
    """The oldest account with this name in this environment, if any."""
    row = conn.execute(
        select(*_account_columns())  # type: ignore[call-overload]
        .where(accounts.c.name == name, accounts.c.environment == environment)
        .order_by(accounts.c.id)
    ).first()
    return None if row is None else _account(row)


def set_limits(
    conn: Connection, account_hash: str, changes: dict[str, str | None], queue_limit: int | None = None
) -> Account:
    """Override (or, with ``None``, reset to the default) the rate limit of some endpoint classes, and
    optionally the queue limit."""
    account = get_account(conn, account_hash)
    if queue_limit is not None:
        if queue_limit < 1:
            raise AccountError("the queue limit must be at least 1 record")
        conn.execute(update(accounts).where(accounts.c.id == account.id).values(queue_limit=queue_limit))
        account = msgspec.structs.replace(account, queue_limit=queue_limit)
    limits = dict(account.limits)
    for endpoint_class, value in changes.items():
        try:
            if value is None:
                ratelimits.validate(endpoint_class, ratelimits.UNLIMITED)  # rejects an unknown class
                limits.pop(endpoint_class, None)
            else:
                limits[endpoint_class] = ratelimits.validate(endpoint_class, value)
        except ratelimits.InvalidLimit as exc:
            raise AccountError(str(exc)) from exc
    conn.execute(update(accounts).where(accounts.c.id == account.id).values(limits=limits))
    return msgspec.structs.replace(account, limits=limits)


def set_phone_matching(conn: Connection, account_hash: str, enabled: bool) -> Account:
    """Whether the account's profiles are also matched by phone number (Ometria: off unless enabled)."""
    account = get_account(conn, account_hash)
    conn.execute(update(accounts).where(accounts.c.id == account.id).values(match_phone=enabled))
    return account


def set_strict(conn: Connection, account_hash: str, enabled: bool) -> Account:
    """Whether the account's requests are refused what Patron otherwise reads leniently, with a
    warning: a ``Content-Type`` other than JSON (415), a timestamp without an offset, an empty array
    where an object belongs (the record is rejected)."""
    account = get_account(conn, account_hash)
    conn.execute(update(accounts).where(accounts.c.id == account.id).values(strict=enabled))
    return msgspec.structs.replace(account, strict=enabled)


#: A host name as a link domain is given: labels of letters, digits and hyphens.
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$")


def set_link_domains(conn: Connection, account_hash: str, domains: list[str]) -> list[str]:
    """The hosts (with their subdomains) that verified links in the account's email may lead to;
    none: the domain of each message's sender."""
    account = get_account(conn, account_hash)
    cleaned = sorted({d.strip().lower().rstrip(".") for d in domains})
    wrong = [d for d in cleaned if not _DOMAIN.match(d)]
    if wrong:
        raise AccountError(f"not a domain name: {', '.join(wrong)}")
    conn.execute(update(accounts).where(accounts.c.id == account.id).values(link_domains=cleaned))
    return cleaned


def create_key(
    conn: Connection,
    account_hash: str,
    label: str = "",
    *,
    expires_at: datetime | None = None,
    read_only: bool = False,
) -> tuple[ApiKey, str]:
    """A new key of the account (returned in clear, the only time it exists in clear), working until
    ``expires_at`` (None: until revoked), for reads alone if ``read_only``."""
    if len(label) > NAME_MAX:
        raise AccountError(f"a key's label must be at most {NAME_MAX} characters")
    created = now()
    if expires_at is not None and not created < expires_at <= created + LONGEST_EXPIRY:
        raise AccountError(f"a key's expiry must be in the future, at most {LONGEST_EXPIRY.days} days ahead")
    account = get_account(conn, account_hash)
    key = secrets.token_hex(16)
    public_id = "key_" + secrets.token_hex(6)
    prefix = key[:KEY_PREFIX_LENGTH]
    conn.execute(
        insert(api_keys).values(
            public_id=public_id,
            account_id=account.id,
            key_hash=hash_key(key),
            label=label,
            created_at=created,
            prefix=prefix,
            expires_at=expires_at,
            read_only=read_only,
        )
    )
    return ApiKey(public_id, account.hash, label, created, None, None, prefix, expires_at, read_only), key


def _key_columns() -> list[Any]:
    k = api_keys.c
    return [
        k.id,
        k.public_id,
        k.label,
        k.created_at,
        k.revoked_at,
        k.last_used_at,
        k.prefix,
        k.expires_at,
        k.read_only,
    ]


def _key(row: Any, account_hash: str, revoked_at: datetime | None = None) -> ApiKey:
    return ApiKey(
        row.public_id,
        account_hash,
        row.label,
        row.created_at,
        revoked_at or row.revoked_at,
        row.last_used_at,
        row.prefix,
        row.expires_at,
        bool(row.read_only),
    )


def list_keys(conn: Connection, account_hash: str) -> list[ApiKey]:
    account = get_account(conn, account_hash)
    k = api_keys.c
    rows = conn.execute(select(*_key_columns()).where(k.account_id == account.id).order_by(k.id))
    return [_key(r, account.hash) for r in rows]


def revoke_key(conn: Connection, public_id: str, account_hash: str | None = None) -> ApiKey:
    """Revoke the key ``public_id`` (of the account ``account_hash`` only, when it is given)."""
    k = api_keys.c
    row = conn.execute(
        select(*_key_columns(), accounts.c.hash)
        .join(accounts, accounts.c.id == k.account_id)
        .where(k.public_id == public_id)
    ).first()
    if row is None or account_hash not in (None, row.hash):
        raise UnknownAccount(f"no API key has the id {public_id!r}")
    revoked = row.revoked_at or now()
    conn.execute(update(api_keys).where(k.id == row.id).values(revoked_at=revoked))
    return _key(row, row.hash, revoked)


def key_access(conn: Connection, key: str) -> KeyAccess | None:
    """What an unrevoked key opens, or None; whether it has expired is the caller's to check at the
    time of use (:meth:`KeyAccess.expired`), since the answer may be cached."""
    digest = hash_key(key)
    k = api_keys.c
    row = conn.execute(
        select(*_account_columns(), k.key_hash, k.expires_at, k.read_only)  # type: ignore[call-overload]
        .join(api_keys, k.account_id == accounts.c.id)
        .where(k.key_hash == digest, k.revoked_at.is_(None))
    ).first()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return KeyAccess(_account(row), row.expires_at, bool(row.read_only))


def account_for_key(conn: Connection, key: str) -> Account | None:
    """The account a key that is neither revoked nor expired belongs to, or None."""
    access = key_access(conn, key)
    return None if access is None or access.expired(now()) else access.account


def mark_used(conn: Connection, digest: str, at: datetime) -> None:
    """The key whose hash is ``digest`` was used at ``at``: written unless it was within the last
    :data:`LAST_USED_EVERY` seconds (so that API processes together write it about once a minute)."""
    k = api_keys.c
    since = at - timedelta(seconds=LAST_USED_EVERY)
    conn.execute(
        update(api_keys)
        .where(k.key_hash == digest, (k.last_used_at.is_(None)) | (k.last_used_at < since))
        .values(last_used_at=at)
    )


# the key cache used on every request ------------------------------------------------------------


class KeyResolver:
    """Resolves an API key to its account, caching answers for :data:`KEY_CACHE_SECONDS`, and notes
    that a key was used: at most once every :data:`LAST_USED_EVERY` seconds per key, in a task of its
    own, so that the request never waits for the write."""

    def __init__(
        self,
        store: Store,
        ttl: float = KEY_CACHE_SECONDS,
        max_entries: int = 10_000,
        used_every: float = LAST_USED_EVERY,
        clock: Callable[[], datetime] = now,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl
        self._max = max_entries
        self._used_every = used_every
        self._cache: dict[str, tuple[float, KeyAccess | None]] = {}
        #: When each key's last use was last written (monotonic), by key hash.
        self._noted: dict[str, float] = {}
        self._writes: set[asyncio.Task[None]] = set()

    async def resolve(self, key: str) -> KeyAccess | None:
        """What ``key`` opens now (None: nothing, or no more: a revoked or expired key)."""
        digest = hash_key(key)
        hit = self._cache.get(digest)
        clock = time.monotonic()
        if hit is not None and hit[0] > clock:
            access = hit[1]
        else:
            access = await self._store.read(lambda conn: key_access(conn, key))
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[digest] = (clock + self._ttl, access)
        if access is None or access.expired(self._clock()):  # at the time of use, whatever the cache holds
            return None
        self._note_use(digest, clock)
        return access

    def _note_use(self, digest: str, clock: float) -> None:
        noted = self._noted.get(digest)
        if noted is not None and noted + self._used_every > clock:
            return
        if len(self._noted) >= self._max:
            self._noted.clear()
        self._noted[digest] = clock
        at = now()
        task = asyncio.get_running_loop().create_task(self._write_use(digest, at))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_use(self, digest: str, at: datetime) -> None:
        try:
            await self._store.write(lambda conn: mark_used(conn, digest, at))
        except Exception:  # a lost note of use is no reason to fail anything; the next one comes
            log.warning("could not note an API key's last use", exc_info=True)

    async def settled(self) -> None:
        """Wait for the notes of use under way (tests, and a clean shutdown)."""
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)
