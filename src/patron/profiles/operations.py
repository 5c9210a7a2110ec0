"""The operations the import queue carries besides records: profile merges (``POST
/v2/merge-profile``, reference section 5.11) and an operator's unsubscribes (``patron unsubscribe``).
The worker runs them in arrival order with the records, each in a round of its own
(:func:`register`)."""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy import Connection, delete, insert, select, update

from patron.model.documents import Document
from patron.model.rounds import Op, QueueKind, Registry, Round
from patron.profiles import build, consent, lists
from patron.profiles.identity import normalise
from patron.store.schema import (
    consents,
    contacts,
    custom_events,
    email_clicks,
    identities,
    merge_jobs,
    orders,
    profiles,
    tracking_sessions,
    visitors,
)
from patron.webhooks import outbox

MERGE = "merge"
UNSUBSCRIBE = "unsubscribe"
PREFERENCES = "preferences"
EMAIL_CLICK = "email_click"
#: Ometria: at most 50 resolved customers per merge.
MAX_RESOLVED = 50
_encode = msgspec.json.Encoder().encode


def resolve(round: Round, kind: str, value: str) -> list[str]:
    """Live profiles a merge request's identifier names, oldest first (section 5.11)."""
    c, p = contacts, profiles
    found: list[str] = []
    if kind == "profile_hash":
        live = round.links.live(value)
        found = [live] if live else []
    elif kind == "customer_id":
        owner = round.links.owner("customer_id", value)
        found = [owner] if owner else []
    elif kind == "email_address":
        email = normalise("email", value)
        if email is not None:
            owner = round.links.owner("email", email)
            shown = round.conn.execute(
                select(p.c.profile_id)
                .where(p.c.account_id == round.account_id, p.c.email == email, p.c.merged_into.is_(None))
                .order_by(p.c.id)
            )
            found = [owner] if owner else []
            found += [x for x in shown.scalars() if x not in found]
    elif kind == "phone_number":
        owner = round.links.owner("phone_number", value)
        holders = round.conn.execute(
            select(c.c.profile).where(c.c.account_id == round.account_id, c.c.phone_number == value)
        )
        found = [owner] if owner else []
        found += [x for x in dict.fromkeys(holders.scalars()) if x and x not in found]
    return found


def merge(round: Round, op: Op) -> None:
    try:
        survivor, merged = _merge_parties(round, op.record)
    except LookupError as exc:
        message = str(exc.args[0])
        round.fail(op, message)
        _job(round, op, "failed", None, [], message)
        return
    for profile in merged:
        _merge_one(round, profile, survivor, op.at)
    _job(round, op, "completed", survivor, merged, None)


def _merge_parties(round: Round, body: Document) -> tuple[str, list[str]]:
    """The survivor and the profiles to merge into it; LookupError when the survivor is unknown."""
    if "survivor" in body:
        kind, value = body["survivor"]["type"], str(body["survivor"]["value"])
        found = resolve(round, kind, value)
        if not found:
            raise LookupError(f"the survivor ({kind} {value!r}) matches no profile")
        survivor, merged = found[0], found[1:]
        for customer in body["customers_to_merge"]:
            merged += resolve(round, customer["type"], str(customer["value"]))
    else:
        merged = resolve(round, "email_address", body["email"])
        chosen = body.get("profile_id")
        named = round.links.live(chosen) if chosen else (merged[0] if merged else None)
        if named is None:
            what = f"profile {chosen!r}" if chosen else f"email {body['email']!r}"
            raise LookupError(f"the survivor ({what}) matches no profile")
        survivor = named
    merged = [m for m in dict.fromkeys(merged) if m != survivor]
    if len(merged) > MAX_RESOLVED:
        raise LookupError(f"{len(merged)} profiles resolved; a merge takes at most {MAX_RESOLVED}")
    return survivor, merged


def _merge_one(round: Round, merged: str, survivor: str, at: datetime) -> None:
    """Everything of ``merged`` becomes ``survivor``'s; the merged id resolves to the survivor."""
    account = round.account_id
    outbox.hold(round.conn, account)  # no deliverer reads the merged profile's events meanwhile
    i = identities  # moved as new rows, so that the survivor's own come first (its customer id)
    moved = round.conn.execute(
        delete(i).where(i.c.account_id == account, i.c.profile == merged).returning(i.c.kind, i.c.value)
    ).all()
    if moved:
        rows = [{"kind": kind, "value": value} for kind, value in moved]
        round.conn.execute(insert(i).values(account_id=account, profile=survivor, created_at=at), rows)
    for table in (contacts, orders, custom_events, consents, email_clicks, visitors, tracking_sessions):
        round.conn.execute(
            update(table)
            .where(table.c.account_id == account, table.c.profile == merged)
            .values(profile=survivor)
        )
    round.links.moved(merged, survivor)
    lists.move(round.conn, account, merged, survivor, at)
    build.withdraw(round.conn, account, [merged], at)  # its lists' totals count the survivor only
    p = profiles
    for merged_or_into_it in (p.c.profile_id == merged, p.c.merged_into == merged):  # each by its index
        round.conn.execute(
            update(p)
            .where(p.c.account_id == account, merged_or_into_it)
            .values(merged_into=survivor, updated_at=at)
        )
    round.touched.discard(merged)
    round.merged.add(merged)
    round.touch(survivor)
    outbox.moved(round.conn, account, merged, survivor)
    data = {"profile_id": survivor, "merged_profile_id": merged}
    outbox.emit(round.conn, account, "profile.merged", data, at, profile=survivor)


def _job(
    round: Round, op: Op, status: str, survivor: str | None, merged: list[str], error: str | None
) -> None:
    round.conn.execute(
        insert(merge_jobs).values(
            account_id=round.account_id,
            job_id=op.request_id,
            status=status,
            survivor=survivor,
            merged=_encode(merged).decode(),
            error=error,
            completed_at=op.at,
        )
    )


def unsubscribe(round: Round, op: Op) -> None:
    """An unsubscribe made outside the API (``patron unsubscribe``: type ``app``)."""
    body = op.record
    found = resolve(round, "email_address", body["email"])
    if not found:
        round.fail(op, f"no profile has the email {body['email']!r}")
        return
    for profile in found[:1]:
        consent.record(
            round.conn,
            round.account_id,
            profile,
            "email",
            consent.UNSUBSCRIBED,
            body["type"],
            op.at,
            op.at,
            address=body["email"],
            reason=body.get("reason"),
        )
        round.touch(profile)


def preferences(round: Round, op: Op) -> None:
    """Changes made in a preference centre (type ``preferences_centre``), for the profile the link
    named, or the one it has since been merged into."""
    body = op.record
    profile = round.links.live(body["profile_id"])
    if profile is None:
        round.fail(op, f"profile {body['profile_id']!r} is gone (anonymised)")
        return
    addresses = addresses_of(round.conn, round.account_id, profile)
    for channel in ("email", "sms"):
        wanted = body.get(channel)
        if wanted is None:
            continue
        status = consent.SUBSCRIBED if wanted else consent.UNSUBSCRIBED
        latest = consent.latest(round.conn, round.account_id, profile, channel)
        if latest is None or latest.status != status:
            consent.record(
                round.conn,
                round.account_id,
                profile,
                channel,
                status,
                "preferences_centre",
                op.at,
                op.at,
                address=addresses[channel],
            )
            round.touch(profile)


def email_click(round: Round, op: Op) -> None:
    """A verified link clicked: recorded on the profile of the message's recipient (the one it was
    sent to by id, else the one holding the address), or on none."""
    body = op.record
    named = round.links.live(body["profile"]) if body.get("profile") else None
    found = [named] if named else resolve(round, "email_address", body["recipient"])
    profile = found[0] if found else None
    round.conn.execute(
        insert(email_clicks).values(
            account_id=round.account_id,
            message_id=body["message_id"],
            profile=profile,
            url=body["url"],
            clicked_at=op.at,
        )
    )
    if profile is not None:
        round.touch(profile)
    data = {"message_id": body["message_id"], "profile_id": profile, "url": body["url"]}
    outbox.emit(round.conn, round.account_id, "email.clicked", data, op.at, profile=profile)


def addresses_of(conn: Connection, account_id: int, profile: str) -> dict[str, str | None]:
    """The email address and the phone number a profile's marketing goes to (its most recent
    contact's)."""
    c = contacts
    email = conn.execute(
        select(profiles.c.email).where(profiles.c.account_id == account_id, profiles.c.profile_id == profile)
    ).scalar()
    phone = conn.execute(
        select(c.c.phone_number)
        .where(c.c.account_id == account_id, c.c.profile == profile, c.c.phone_number.is_not(None))
        .order_by(c.c.updated_at.desc(), c.c.id.desc())
        .limit(1)
    ).scalar()
    return {"email": email, "sms": phone}


def register(kinds: Registry) -> None:
    """The operations: each in a round of its own."""
    for name, apply in (
        (MERGE, merge),
        (UNSUBSCRIBE, unsubscribe),
        (PREFERENCES, preferences),
        (EMAIL_CLICK, email_click),
    ):
        kinds.add(QueueKind(name, apply, alone=True))
