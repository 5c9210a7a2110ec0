"""An account's webhook endpoints: made (with a secret shown once), read, changed, deleted, enabled
and disabled; the log of their delivery attempts; and the replay of a time range of their events."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import msgspec
from sqlalchemy import ColumnElement, Connection, and_, case, delete, func, insert, or_, select, update

from patron.config import Network
from patron.errors import Conflict, FieldInvalid, NotFound
from patron.store import among
from patron.store.schema import webhook_attempts, webhook_endpoints, webhook_events
from patron.webhooks import network, outbox
from patron.webhooks.requests import MAX_ENDPOINTS, EndpointUpdate, NewEndpoint

NOT_FOUND = "Webhook endpoint with specified ID was not found"


class Endpoint(msgspec.Struct, kw_only=True):
    """An endpoint as the API shows it (never its secret, but when it is made)."""

    id: str
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    max_concurrency: int
    failures: int  # failed attempts since the last delivery
    created_at: datetime
    updated_at: datetime
    secret: str | msgspec.UnsetType = msgspec.UNSET  # only in the answer to its creation


class Attempt(msgspec.Struct, kw_only=True):
    """One attempt to deliver an event, in ``GET /v2/webhooks/{id}/deliveries``."""

    event_id: str  # the webhook-id header
    type: str
    event_status: str  # pending | delivered | failed
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    response: str | None


def new_secret() -> str:
    """A secret as Standard Webhooks has them: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _view(row: Any) -> Endpoint:
    return Endpoint(
        id=row.endpoint_id,
        url=row.url,
        event_types=list(row.event_types),
        description=row.description,
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        disabled_at=row.disabled_at,
        max_concurrency=row.max_concurrency,
        failures=row.failures,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def checked_url(url: str, networks: Sequence[Network]) -> str:
    """The URL, normalised, if it may be delivered to (:class:`FieldInvalid` naming ``url`` if not)."""
    try:
        return network.check(url, networks).url
    except network.Refused as exc:
        raise FieldInvalid("root > url", str(exc)) from None


def create(conn: Connection, account_id: int, body: NewEndpoint, url: str, at: datetime) -> Endpoint:
    """A new endpoint (``url`` checked already), with its secret; ``Conflict`` at the account's most."""
    e = webhook_endpoints
    count = conn.execute(select(func.count()).where(e.c.account_id == account_id)).scalar_one()
    if count >= MAX_ENDPOINTS:
        raise Conflict.at("root", f"an account may have at most {MAX_ENDPOINTS} webhook endpoints")
    endpoint_id = f"ep_{secrets.token_hex(12)}"
    secret = new_secret()
    conn.execute(
        insert(e).values(
            account_id=account_id,
            endpoint_id=endpoint_id,
            url=url,
            event_types=list(body.event_types),
            secret=secret,
            description=body.description if body.description is not msgspec.UNSET else None,
            enabled=True,
            max_concurrency=body.max_concurrency,
            failures=0,
            created_at=at,
            updated_at=at,
        )
    )
    outbox.forget(conn)
    made = one(conn, account_id, endpoint_id)
    made.secret = secret
    return made


def _row(conn: Connection, account_id: int, endpoint_id: str) -> Any:
    e = webhook_endpoints
    row = conn.execute(select(e).where(e.c.account_id == account_id, e.c.endpoint_id == endpoint_id)).first()
    if row is None:
        raise NotFound.at("webhook_id", NOT_FOUND)
    return row


def one(conn: Connection, account_id: int, endpoint_id: str) -> Endpoint:
    return _view(_row(conn, account_id, endpoint_id))


def read(conn: Connection, account_id: int) -> list[Endpoint]:
    e = webhook_endpoints
    rows = conn.execute(select(e).where(e.c.account_id == account_id).order_by(e.c.id))
    return [_view(row) for row in rows]


def change(
    conn: Connection, account_id: int, endpoint_id: str, body: EndpointUpdate, url: str | None, at: datetime
) -> Endpoint:
    """Change what ``body`` gives (``url`` checked already); enabling one starts its failures over."""
    row = _row(conn, account_id, endpoint_id)
    values: dict[str, Any] = {"updated_at": at}
    if url is not None:
        values["url"] = url
    if body.event_types is not msgspec.UNSET:
        values["event_types"] = list(body.event_types)
    if body.description is not msgspec.UNSET:
        values["description"] = body.description
    if body.max_concurrency is not msgspec.UNSET:
        values["max_concurrency"] = body.max_concurrency
    if body.enabled is not msgspec.UNSET and body.enabled != row.enabled:
        values.update(enabling(body.enabled, "disabled by an operator", at))
    conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.id == row.id).values(**values))
    outbox.forget(conn)
    return one(conn, account_id, endpoint_id)


def enabling(enabled: bool, reason: str, at: datetime) -> dict[str, Any]:
    """The columns that enable an endpoint (its failures forgotten), or disable it for ``reason``."""
    if enabled:
        return {
            "enabled": True,
            "disabled_reason": None,
            "disabled_at": None,
            "failures": 0,
            "failing_since": None,
        }
    return {"enabled": False, "disabled_reason": reason, "disabled_at": at}


def remove(conn: Connection, account_id: int, endpoint_id: str) -> None:
    """Delete the endpoint with its events and their attempts."""
    row = _row(conn, account_id, endpoint_id)
    conn.execute(delete(webhook_attempts).where(webhook_attempts.c.endpoint == row.id))
    conn.execute(delete(webhook_events).where(webhook_events.c.endpoint == row.id))
    conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.id == row.id))
    outbox.forget(conn)


def attempts(conn: Connection, account_id: int, endpoint_id: str, limit: int, offset: int) -> list[Attempt]:
    """The endpoint's delivery attempts, newest first."""
    row = _row(conn, account_id, endpoint_id)
    a, e = webhook_attempts, webhook_events
    rows = conn.execute(
        select(a, e.c.event_id, e.c.type, e.c.status.label("event_status"))
        .join(e, e.c.id == a.c.event)
        .where(a.c.endpoint == row.id)
        .order_by(a.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [
        Attempt(
            event_id=r.event_id,
            type=r.type,
            event_status=outbox.shown(r.event_status),
            attempted_at=r.attempted_at,
            status_code=r.status_code,
            latency_ms=r.latency_ms,
            error=r.error,
            response=r.response,
        )
        for r in rows
    ]


#: How many events one step of a replay sends again (one bounded write).
REPLAY_STEP: Final = 5_000


class Replaying(msgspec.Struct):
    """A replay under way: the endpoint's events written in [since, until) after ``after_time`` and
    ``after_id`` (in that order) are yet to be sent again, each with a retry window from ``at`` (when
    the replay was asked for). Times are ISO 8601, as the queue keeps them."""

    endpoint: int
    since: str
    until: str
    at: str
    after_time: str | None = None
    after_id: int = 0


def _in_range(endpoint: int, since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    e = webhook_events.c
    return [e.endpoint == endpoint, e.created_at >= since, e.created_at < until]


def replay_start(
    conn: Connection, account_id: int, endpoint_id: str, since: datetime, until: datetime, at: datetime
) -> tuple[int, Replaying]:
    """A replay of the endpoint's events written in [since, until), to be sent again with their own
    webhook-ids, :data:`REPLAY_STEP` at a time (:func:`replay_step`); and how many there are (counted
    on ``ix_webhook_events_endpoint_created`` alone)."""
    row = _row(conn, account_id, endpoint_id)
    query = select(func.count()).select_from(webhook_events).where(*_in_range(row.id, since, until))
    count = int(conn.execute(query).scalar_one())
    return count, Replaying(row.id, since.isoformat(), until.isoformat(), at.isoformat())


def replay_step(conn: Connection, account_id: int, job: Replaying) -> Replaying | None:
    """Send again the next :data:`REPLAY_STEP` events of a replay, each retried for a new window, each
    profile's in turn (the first of them pending, ``outbox.promote``); the replay's next step, None
    when it is done (or its endpoint is gone)."""
    e = webhook_events
    after = datetime.fromisoformat(job.after_time) if job.after_time else None
    where = _in_range(job.endpoint, datetime.fromisoformat(job.since), datetime.fromisoformat(job.until))
    if after is not None:
        where.append(or_(e.c.created_at > after, and_(e.c.created_at == after, e.c.id > job.after_id)))
    rows = conn.execute(
        select(e.c.id, e.c.profile, e.c.created_at)
        .where(e.c.account_id == account_id, *where)
        .order_by(e.c.created_at, e.c.id)
        .limit(REPLAY_STEP)
    ).all()
    if not rows:
        return None
    at = datetime.fromisoformat(job.at)
    conn.execute(
        update(e)
        .where(among(conn, e.c.id, [row.id for row in rows]))
        .values(
            status=case((e.c.profile.is_(None), outbox.PENDING), else_=outbox.WAITING),
            next_attempt_at=at,
            retry_until=at + outbox.RETRY_WINDOW,
            leased_until=None,
            delivered_at=None,
        )
    )
    profiles = sorted({row.profile for row in rows if row.profile is not None})
    outbox.promote(conn, lambda t: t.c.endpoint == job.endpoint, lambda t: among(conn, t.c.profile, profiles))
    if len(rows) < REPLAY_STEP:
        return None
    last = rows[-1]
    return msgspec.structs.replace(job, after_time=last.created_at.isoformat(), after_id=last.id)
