"""Consent: marketing opt-in per contact and per profile, by email and SMS (reference section 7.2-7.4).

Every change of a profile's status is a row of ``consents``, in order; the latest row per channel is
the profile's status. A push changes a contact's status; only a real change (not a repeat) records a
subscribe or unsubscribe. Sources Ometria controls (the operator, the preference centre, email links)
outrank the API: once one of them set the status, a pushed ``marketing_optin`` is ignored unless the
record says ``"@force_optin": true``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal, NamedTuple

from sqlalchemy import Connection, insert, select

from patron.store.schema import consents
from patron.webhooks import outbox

SUBSCRIBED: Final = "subscribed"
UNSUBSCRIBED: Final = "unsubscribed"
NOT_SPECIFIED: Final = "not_specified"
PENDING: Final = "pending"  # an SMS double opt-in was asked for and not yet confirmed
#: Sources that outrank the API (Ometria: "Ometria-controlled sources").
CONTROLLED: Final = frozenset({"app", "preferences_centre", "list_unsubscribe", "link_unsubscribe"})
#: The unsubscribe types of ``GET /v2/unsubscribes`` (reference section 5.8).
UnsubscribeType = Literal[
    "preferences_centre",
    "app",
    "list_unsubscribe",
    "link_unsubscribe",
    "stopword_unsubscribe_TF",
    "stopword_unsubscribe_DO",
]
SMS_OPTIN: Final = "optin:sms"  # asks for a double opt-in (no SMS is sent: the request is pending)
SMS_DOUBLE_OPTIN: Final = "double_optin:sms"  # already double-opted-in
_EMAIL_STATUS: Final[dict[object, str]] = {
    "EXPLICITLY_OPTEDIN": SUBSCRIBED,
    "EXPLICITLY_OPTEDOUT": UNSUBSCRIBED,
    "NOT_SPECIFIED": NOT_SPECIFIED,
}
_TIMESTAMP: Final = {SUBSCRIBED: "timestamp_subscribed", UNSUBSCRIBED: "timestamp_unsubscribed"}


class Latest(NamedTuple):
    status: str
    source: str


def email_status(value: Any) -> str | None:
    """A contact's ``marketing_optin`` as a status (``true``/``false`` are the older form)."""
    if value is True:
        return SUBSCRIBED
    if value is False:
        return UNSUBSCRIBED
    return _EMAIL_STATUS.get(value)


def latest(conn: Connection, account_id: int, profile: str, channel: str) -> Latest | None:
    t = consents
    row = conn.execute(
        select(t.c.status, t.c.source)
        .where(t.c.account_id == account_id, t.c.profile == profile, t.c.channel == channel)
        .order_by(t.c.id.desc())
        .limit(1)
    ).first()
    return Latest(row.status, row.source) if row else None


def record(
    conn: Connection,
    account_id: int,
    profile: str,
    channel: str,
    status: str,
    source: str,
    occurred_at: datetime,
    at: datetime,
    **details: str | None,
) -> None:
    """Add a change of status (``details``: address, collection, contact_id, reason)."""
    conn.execute(
        insert(consents).values(
            account_id=account_id,
            profile=profile,
            channel=channel,
            status=status,
            source=source,
            occurred_at=occurred_at,
            created_at=at,
            **details,
        )
    )
    event_type = _EVENTS.get(status)
    if event_type is not None and outbox.wants(conn, account_id, event_type):
        if status == SUBSCRIBED:  # resubscribed: only after an unsubscribe
            rows = conn.execute(
                select(consents.c.status)
                .where(
                    consents.c.account_id == account_id,
                    consents.c.profile == profile,
                    consents.c.channel == channel,
                )
                .order_by(consents.c.id.desc())
                .limit(2)
            ).scalars()
            if list(rows)[1:] != [UNSUBSCRIBED]:
                return
        data = {
            "profile_id": profile,
            "channel": channel,
            "source": source,
            "occurred_at": occurred_at.isoformat(),
        }
        outbox.emit(conn, account_id, event_type, data, at, profile=profile)


#: The webhook event each status change is told as (``subscribed``: after an unsubscribe only).
_EVENTS: Final = {UNSUBSCRIBED: "contact.unsubscribed", SUBSCRIBED: "contact.resubscribed"}


class Decision(NamedTuple):
    """What a pushed contact does to consent: the change to record (its status, and the field that
    gives its date; without one it happened when applied) and the fields of the stored contact to set
    instead of the pushed ones (``None`` removes one)."""

    status: str | None
    timestamp_field: str | None
    patch: dict[str, Any]


def email_decision(
    record: dict[str, Any], before: dict[str, Any] | None, profile_latest: Latest | None
) -> Decision:
    """How a pushed contact's ``marketing_optin`` applies (Ometria's rules, section 7.2)."""
    if record.get("marketing_optin") is None:  # absent, or null: the status stays; dates may change
        return Decision(None, None, {})
    new = email_status(record["marketing_optin"])
    old = email_status((before or {}).get("marketing_optin"))
    forced = record.get("@force_optin") is True
    if profile_latest is not None and profile_latest.source in CONTROLLED and not forced:
        if new != profile_latest.status:  # outranked: the stored status stays
            return Decision(None, None, {"marketing_optin": (before or {}).get("marketing_optin")})
        return Decision(None, None, {})
    changed = new != old or (forced and profile_latest is not None and profile_latest.status != new)
    if not changed or (new == NOT_SPECIFIED and old is None and profile_latest is None):
        return Decision(None, None, {})
    return Decision(new, _TIMESTAMP.get(new or ""), {})


def sms_status(collection: str, record: dict[str, Any]) -> tuple[str, str | None] | None:
    """The SMS status a contact pushed to ``optin:sms`` or ``double_optin:sms`` asks for, with the
    ``dt_updated_marketing`` it gives; SMS consent sent through any other collection is ignored."""
    if collection not in (SMS_OPTIN, SMS_DOUBLE_OPTIN):
        return None
    sms = (record.get("channels") or {}).get("sms") or {}
    allow = sms.get("allow_marketing")
    if not isinstance(allow, bool):
        return None
    status = UNSUBSCRIBED if not allow else PENDING if collection == SMS_OPTIN else SUBSCRIBED
    return status, sms.get("dt_updated_marketing")
