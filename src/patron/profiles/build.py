"""Profile documents (reference section 5.5), computed from the records linked to each profile.

A profile's document is a function of its contacts, its orders' stats, its identities, its lists, its
consent history, its tracked sessions and the profile data the website tag sent in them, nothing else:
the worker recomputes the profiles each round touches, and ``patron profiles rebuild`` recomputes them
all with the same function, so both agree by construction (a test checks that a rebuild after any
history changes nothing).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, NamedTuple

import msgspec
from sqlalchemy import Connection, bindparam, case, func, insert, or_, select, update

from patron.profiles.consent import PENDING, SUBSCRIBED, UNSUBSCRIBED
from patron.records.fields import COUNTRIES, DAY_PATTERN
from patron.store import among, chunks
from patron.store.schema import (
    PROFILE_COUNTS,
    PROFILE_DATES,
    consents,
    contacts,
    email_clicks,
    identities,
    list_members,
    lists,
    orders,
    profiles,
    tracking_events,
    tracking_sessions,
)

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode
#: Fields each taken from the most recent contact that has it.
PERSONAL_FIELDS = ("gender", "date_of_birth", "country_id")
#: Fields taken together from one contact, the most recent with a first or last name.
NAME_FIELDS = ("prefix", "firstname", "middlename", "lastname", "suffix")
#: The profile's own fields the website tag may give (``identify(email, {...})``,
#: ``setProfileData({...})``: ``d[profile]``), each shown only where none of the profile's contacts
#: has it. Never an identifier: an email, customer id or phone number from the tag links nothing.
TAG_FIELDS = (*NAME_FIELDS, *PERSONAL_FIELDS)
#: The tag's events that carry profile data.
TAG_PROFILE_EVENTS = ("identify", "profile")
#: The longest name the tag may give.
TAG_TEXT = 255
_GENDERS = {"m": "m", "f": "f", "o": "o", "male": "m", "female": "f", "other": "o"}
_DAY = re.compile(DAY_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class Contact(NamedTuple):
    order: tuple[datetime, int]  # recency: last update, then internal id
    doc: dict[str, Any]


class OrderStats(NamedTuple):
    attempted: int = 0
    orders: int = 0
    revenue: float = 0.0
    items: int = 0
    first: str | None = None
    last: str | None = None


class Facts(NamedTuple):
    """Everything a profile document is computed from."""

    profile_id: str
    created_at: datetime
    contacts: list[Contact]
    stats: OrderStats
    identities: list[tuple[str, str]]  # (kind, value), oldest first
    lists: list[tuple[str, str | None]]  # (id, title)
    consent: dict[str, tuple[str, datetime]]  # channel -> latest (status, when)
    clicks: tuple[int, datetime | None] = (0, None)  # verified email links clicked, and the last
    visits: tuple[int, datetime | None, datetime | None] = (0, None, None)  # sessions, first, last
    tag: Mapping[str, str] = {}  # field -> the latest value the website tag gave (tag_profile)


def tag_profile(d: Mapping[str, Any]) -> dict[str, str]:
    """The profile fields (:data:`TAG_FIELDS`) an ``identify`` or ``profile`` event's ``d`` gives in
    ``d[profile]``, trimmed and checked as anything from the public internet is: names text of at
    most :data:`TAG_TEXT` characters without control characters; ``gender`` ``m``, ``f``, ``o`` (or
    ``male``, ``female``, ``other``, any case); ``date_of_birth`` a real ``YYYY-MM-DD`` date;
    ``country_id`` an ISO 3166-1 alpha-2 code (upper case). Anything else, blank or ``null`` is left
    out."""
    given = d.get("profile")
    if not isinstance(given, dict):
        return {}
    found: dict[str, str] = {}
    for name in TAG_FIELDS:
        value = given.get(name)
        if not isinstance(value, str):
            continue
        value = value.strip()
        if name == "gender":
            checked = _GENDERS.get(value.lower())
        elif name == "date_of_birth":
            checked = value if _DAY.match(value) and _real_day(value) else None
        elif name == "country_id":
            checked = value.upper() if value.isascii() and value.upper() in COUNTRIES else None
        else:
            usable = value and len(value) <= TAG_TEXT and value not in ("null", "undefined")
            checked = value if usable and not _CONTROL.search(value) else None
        if checked is not None:
            found[name] = checked
    return found


def _real_day(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def second(value: str | datetime | None) -> str | None:
    """An ISO 8601 UTC timestamp (or a UTC datetime) to the second, ``2015-11-03T11:48:10+00:00``."""
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.isoformat()
    if len(value) >= 25 and value[10] == "T" and value.endswith("+00:00"):  # UTC already: cut
        return value[:19] + "+00:00"
    return datetime.fromisoformat(value).strftime("%Y-%m-%dT%H:%M:%S+00:00")


class Identity(msgspec.Struct, rename={"kind": "type"}):
    id: str
    kind: str  # customer_id | email | phone_number


class ListMembership(msgspec.Struct, rename={"kind": "type"}):
    id: str
    title: str | None
    kind: str = "STATIC"


class SmsConsent(msgspec.Struct):
    allow_marketing: bool | None
    status: str | None  # subscribed | unsubscribed | pending (double opt-in asked for) | null
    pending_double_optin: bool


class Channels(msgspec.Struct):
    sms: SmsConsent


class Dates(msgspec.Struct):
    acquired: str | None
    first_purchase: str | None
    last_purchase: str | None
    first_seen: str | None
    last_seen: str | None
    last_email_click: str | None  # an extension


class Stats(msgspec.Struct):
    orders: int
    orders_attempted: int
    revenue: float
    aov: float
    total_items: int
    visits: int
    email_clicks: int  # an extension


class Profile(msgspec.Struct, tag_field="@type", tag="profile"):
    """A profile as ``GET /v2/profiles/{id}`` shows it (reference section 5.5; ``channels`` is an
    extension)."""

    id: str
    customer_id: str | None
    email: str | None
    name: str | None
    prefix: str | None
    firstname: str | None
    middlename: str | None
    lastname: str | None
    suffix: str | None
    gender: str | None
    date_of_birth: str | None
    country_id: str | None
    country: str | None
    marketing_optin: bool | None
    channels: Channels
    seen: bool
    identities: list[Identity]
    lists: list[ListMembership]
    dates: Dates
    stats: Stats
    tags: list[str]
    properties: dict[str, Any]


#: The document's fields kept beside it in typed columns of ``profiles`` (path -> column), which
#: segments compare without reading JSON and find by date through an index.
TYPED: dict[str, str] = {
    **{f"stats.{name}": name for name in (*PROFILE_COUNTS, "revenue", "aov")},
    "country_id": "country_id",
    "marketing_optin": "marketing_optin",
    "channels.sms.status": "sms_status",
    **{f"dates.{name}": name for name in PROFILE_DATES},
}


def typed(doc: Profile) -> dict[str, Any]:
    """The values of a document's :data:`TYPED` columns."""
    values = {}
    for path, column in TYPED.items():
        value: Any = doc
        for key in path.split("."):
            value = getattr(value, key)
        values[column] = value
    return values


def document(facts: Facts) -> Profile:
    """The profile, computed from its facts."""
    recent = sorted(facts.contacts, key=lambda c: c.order, reverse=True)  # most recent first
    named = next((c.doc for c in recent if c.doc.get("firstname") or c.doc.get("lastname")), {})
    own: dict[str, Any] = {f: named.get(f) for f in NAME_FIELDS}
    for f in PERSONAL_FIELDS:
        own[f] = next((c.doc[f] for c in recent if c.doc.get(f) is not None), None)
    if facts.tag:  # the tag's values fill the fields no contact has, whatever their age
        pushed = {f for c in recent for f in TAG_FIELDS if c.doc.get(f) not in (None, "")}
        own.update({f: value for f, value in facts.tag.items() if f not in pushed})
    kinds: dict[str, list[str]] = defaultdict(list)
    for kind, value in facts.identities:
        kinds[kind].append(value)
    emails = [c.doc["email"] for c in recent if c.doc.get("email")]  # the most recent contact's first
    held = kinds.get("email", [])
    email = next((e for e in emails if e.lower() in held), emails[0] if emails else None)
    properties: dict[str, Any] = {}
    for c in reversed(recent):  # oldest first, so the most recent value of each key wins
        properties.update(c.doc.get("properties") or {})
    acquired = [c.doc["timestamp_acquired"] for c in recent if c.doc.get("timestamp_acquired")]
    email_status = facts.consent.get("email")
    sms = facts.consent.get("sms")
    s = facts.stats
    first, last = own["firstname"], own["lastname"]
    return Profile(
        id=facts.profile_id,
        customer_id=next(iter(kinds.get("customer_id", ())), None),
        email=email.lower() if email else next(iter(held), None),
        name=" ".join(v for v in (first, last) if v) or None,
        prefix=own["prefix"],
        firstname=first,
        middlename=own["middlename"],
        lastname=last,
        suffix=own["suffix"],
        gender=own["gender"],
        date_of_birth=own["date_of_birth"],
        country_id=own["country_id"],
        country=own["country_id"],
        marketing_optin={SUBSCRIBED: True, UNSUBSCRIBED: False}.get(email_status[0])
        if email_status
        else None,
        channels=Channels(
            SmsConsent(
                allow_marketing=sms[0] == SUBSCRIBED if sms else None,
                status=sms[0] if sms else None,
                pending_double_optin=sms is not None and sms[0] == PENDING,
            )
        ),
        seen=False,
        identities=[Identity(value, kind) for kind, value in sorted(facts.identities)],
        lists=[ListMembership(list_id, title) for list_id, title in sorted(facts.lists)],
        dates=Dates(
            acquired=second(min(acquired)) if acquired else second(facts.created_at),
            first_purchase=second(s.first),
            last_purchase=second(s.last),
            first_seen=second(facts.visits[1]),
            last_seen=second(facts.visits[2]),
            last_email_click=second(facts.clicks[1]),
        ),
        stats=Stats(
            orders=s.orders,
            orders_attempted=s.attempted,
            revenue=round(s.revenue, 2),
            aov=round(s.revenue / s.orders, 2) if s.orders else 0.0,
            total_items=s.items,
            visits=facts.visits[0],
            email_clicks=facts.clicks[0],
        ),
        tags=[],
        properties=properties,
    )


def _facts(conn: Connection, account_id: int, rows: list[Any]) -> list[Facts]:
    ids = [r.profile_id for r in rows]
    found_contacts: dict[str, list[Contact]] = defaultdict(list)
    c = contacts
    for row in conn.execute(
        select(c.c.profile, c.c.id, c.c.updated_at, c.c.data).where(
            c.c.account_id == account_id, among(conn, c.c.profile, ids)
        )
    ):
        found_contacts[row.profile].append(Contact((row.updated_at, row.id), _decode(row.data)))
    o = orders
    counted = o.c.counted.is_(True)
    stats = {
        row.profile: OrderStats(
            int(row.attempted),
            int(row.orders or 0),
            float(row.revenue or 0),
            int(row.items or 0),
            row.first,
            row.last,
        )
        for row in conn.execute(
            select(
                o.c.profile,
                func.count().label("attempted"),
                func.sum(case((counted, 1), else_=0)).label("orders"),
                func.sum(case((counted, o.c.revenue), else_=0.0)).label("revenue"),
                func.sum(case((counted, o.c["items"]), else_=0)).label("items"),
                func.min(case((counted, o.c.placed_at), else_=None)).label("first"),
                func.max(case((counted, o.c.placed_at), else_=None)).label("last"),
            )
            .where(o.c.account_id == account_id, among(conn, o.c.profile, ids))
            .group_by(o.c.profile)
        )
    }
    found_ids: dict[str, list[tuple[str, str]]] = defaultdict(list)
    i = identities
    for ident in conn.execute(
        select(i.c.profile, i.c.kind, i.c.value)
        .where(i.c.account_id == account_id, among(conn, i.c.profile, ids))
        .order_by(i.c.id)
    ):
        found_ids[ident.profile].append((ident.kind, ident.value))
    found_lists: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    m = list_members
    for member in conn.execute(
        select(m.c.profile, lists.c.list_id, lists.c.title)
        .join(lists, (lists.c.account_id == m.c.account_id) & (lists.c.list_id == m.c.list_id))
        .where(m.c.account_id == account_id, among(conn, m.c.profile, ids))
    ):
        found_lists[member.profile].append((member.list_id, member.title))
    latest: dict[str, dict[str, tuple[str, datetime]]] = defaultdict(dict)
    k = consents
    for change in conn.execute(
        select(k.c.profile, k.c.channel, k.c.status, k.c.occurred_at)
        .where(k.c.account_id == account_id, among(conn, k.c.profile, ids))
        .order_by(k.c.id)
    ):
        latest[change.profile][change.channel] = (change.status, change.occurred_at)
    e = email_clicks
    clicks = {
        row.profile: (int(row.n), row.last)
        for row in conn.execute(
            select(e.c.profile, func.count().label("n"), func.max(e.c.clicked_at).label("last"))
            .where(e.c.account_id == account_id, among(conn, e.c.profile, ids))
            .group_by(e.c.profile)
        )
    }
    t = tracking_sessions
    visits = {
        row.profile: (int(row.n), row.first, row.last)
        for row in conn.execute(
            select(
                t.c.profile,
                func.count().label("n"),
                func.min(t.c.started_at).label("first"),
                func.max(t.c.last_at).label("last"),
            )
            .where(t.c.account_id == account_id, among(conn, t.c.profile, ids))
            .group_by(t.c.profile)
        )
    }
    tagged = _tag_data(conn, account_id, ids)
    return [
        Facts(
            r.profile_id,
            r.created_at,
            found_contacts[r.profile_id],
            stats.get(r.profile_id, OrderStats()),
            found_ids[r.profile_id],
            found_lists[r.profile_id],
            latest[r.profile_id],
            clicks.get(r.profile_id, (0, None)),
            visits.get(r.profile_id, (0, None, None)),
            tagged.get(r.profile_id, {}),
        )
        for r in rows
    ]


def _tag_data(conn: Connection, account_id: int, ids: list[str]) -> dict[str, dict[str, str]]:
    """Each profile's latest value of each field the tag gave (:func:`tag_profile`), from the
    ``identify`` and ``profile`` events of the sessions linked to it. The sessions are read first
    and their visitors' events then, each by its index (a join leaves SQLite, which has no
    statistics, scanning every event of the account)."""
    t, v = tracking_sessions, tracking_events
    owners = {
        (row.cid, row.session_id): row.profile
        for row in conn.execute(
            select(t.c.profile, t.c.cid, t.c.session_id).where(
                t.c.account_id == account_id, among(conn, t.c.profile, ids)
            )
        )
    }
    tagged: dict[str, dict[str, str]] = defaultdict(dict)
    if not owners:
        return tagged
    # only the events that give data: d with a non-empty "profile" object, as the worker encodes d
    for event in conn.execute(
        select(v.c.cid, v.c.session_id, v.c.data)
        .where(
            v.c.account_id == account_id,
            among(conn, v.c.cid, sorted({cid for cid, _ in owners})),
            or_(*(v.c.kind == kind for kind in TAG_PROFILE_EVENTS)),
            v.c.data.contains('"profile":{"'),
        )
        .order_by(v.c.id)
    ):
        owner = owners.get((event.cid, event.session_id))
        if owner is not None:  # the latest value of a field wins
            tagged[owner].update(tag_profile(_decode(event.data)))
    return tagged


class _Row(NamedTuple):
    id: int | None  # None: a profile to insert
    profile_id: str
    created_at: datetime
    data: str | None


class _Ref(msgspec.Struct):
    id: str


class _Sums(msgspec.Struct):
    orders: int = 0
    revenue: float = 0.0


class _Counted(msgspec.Struct):
    """What a stored profile document adds to the totals of the lists it is in."""

    lists: list[_Ref] = []
    stats: _Sums = msgspec.field(default_factory=_Sums)


counted = msgspec.json.Decoder(_Counted).decode


class ListTotals:
    """Changes to lists' ``size``, ``total_orders`` and ``total_revenue``, which add up the
    documents of their live members: each document that is rewritten (or goes) takes back what its
    old version added and adds what its new one does. Written by :meth:`save`."""

    def __init__(self) -> None:
        self.deltas: dict[str, list[float]] = {}  # list id -> [size, orders, revenue]

    def add(self, doc: Profile | _Counted, sign: int) -> None:
        """Count a document in (``sign`` 1) or out (-1) of its lists' totals."""
        for ref in doc.lists:
            delta = self.deltas.setdefault(ref.id, [0, 0, 0.0])
            delta[0] += sign
            delta[1] += sign * doc.stats.orders
            delta[2] += sign * doc.stats.revenue

    def take_back(self, data: str | None) -> None:
        """Count a stored document (its JSON text) out of its lists' totals."""
        if data:
            self.add(counted(data), -1)

    def save(self, conn: Connection, account_id: int, at: datetime) -> None:
        rows = [
            {"_list": list_id, "_size": d[0], "_orders": d[1], "_revenue": d[2]}
            for list_id, d in sorted(self.deltas.items())
            if any(d)
        ]
        if rows:
            t = lists
            conn.execute(
                update(t)
                .where(t.c.account_id == account_id, t.c.list_id == bindparam("_list"))
                .values(
                    size=t.c.size + bindparam("_size"),
                    total_orders=t.c.total_orders + bindparam("_orders"),
                    total_revenue=t.c.total_revenue + bindparam("_revenue"),
                    stats_at=at,
                ),
                rows,
            )
        self.deltas.clear()


def withdraw(conn: Connection, account_id: int, profile_ids: Iterable[str], at: datetime) -> None:
    """Take live profiles that stop being live (merged away) out of their lists' totals."""
    p = profiles
    totals = ListTotals()
    for chunk in chunks(sorted(profile_ids)):
        for data in conn.execute(
            select(p.c.data).where(
                p.c.account_id == account_id, among(conn, p.c.profile_id, chunk), p.c.merged_into.is_(None)
            )
        ).scalars():
            totals.take_back(data)
    totals.save(conn, account_id, at)


def refresh(
    conn: Connection,
    account_id: int,
    profile_ids: Iterable[str],
    at: datetime,
    new: Mapping[str, datetime] | None = None,
    changed_ids: set[str] | None = None,
) -> int:
    """Recompute the live profiles among ``profile_ids``, and insert the ``new`` ones (profile id ->
    when it began) with their first document; returns how many documents changed, and adds their
    ids to ``changed_ids`` if given. The totals of the lists they are in follow (:class:`ListTotals`)."""
    p = profiles
    new = new or {}
    changed = 0
    totals = ListTotals()
    # the new ones in the order they were made (their internal ids keep that order), then the others
    for chunk in [*chunks(list(new)), *chunks(sorted(set(profile_ids) - new.keys()))]:
        rows = [_Row(None, pid, new[pid], None) for pid in chunk if pid in new]
        rows += [
            _Row(*row)
            for row in conn.execute(
                select(p.c.id, p.c.profile_id, p.c.created_at, p.c.data).where(
                    p.c.account_id == account_id,
                    among(conn, p.c.profile_id, chunk),
                    p.c.merged_into.is_(None),
                )
            )
        ]
        inserts, updates = [], []
        for row, facts in zip(rows, _facts(conn, account_id, rows), strict=True):
            doc = document(facts)
            text = _encode(doc).decode()
            if row.id is None:
                values = {"profile_id": row.profile_id, "created_at": row.created_at}
                inserts.append({**values, "data": text, "email": doc.email, "updated_at": at, **typed(doc)})
            elif text != row.data:
                updates.append(
                    {
                        "_id": row.id,
                        "_pid": row.profile_id,
                        "data": text,
                        "email": doc.email,
                        "updated_at": at,
                        **typed(doc),
                    }
                )
                totals.take_back(row.data)
            else:
                continue
            totals.add(doc, 1)
        if inserts:
            conn.execute(insert(p).values(account_id=account_id), inserts)
        if updates:
            conn.execute(update(p).where(p.c.id == bindparam("_id")), updates)
        changed += len(inserts) + len(updates)
        if changed_ids is not None:
            changed_ids.update(str(row["profile_id"]) for row in inserts)
            changed_ids.update(str(row["_pid"]) for row in updates)
    totals.save(conn, account_id, at)
    return changed


def survivor(conn: Connection, account_id: int, profile_id: str, *, anonymised: bool = True) -> str | None:
    """The live profile ``profile_id`` names: itself, or the one it was merged into; None if unknown
    (or, with ``anonymised=False``, anonymised: nothing may link to it again)."""
    p = profiles
    row = conn.execute(
        select(p.c.merged_into, p.c.anonymised_at).where(
            p.c.account_id == account_id, p.c.profile_id == profile_id
        )
    ).first()
    if row is None or (row.anonymised_at is not None and not anonymised):
        return None
    if row.merged_into is None or anonymised:
        return row.merged_into or profile_id
    return survivor(conn, account_id, row.merged_into, anonymised=False)  # merges are flattened: one step


def live_profiles(conn: Connection, account_id: int) -> list[str]:
    p = profiles
    query = select(p.c.profile_id).where(p.c.account_id == account_id, p.c.merged_into.is_(None))
    return list(conn.execute(query.order_by(p.c.id)).scalars())
