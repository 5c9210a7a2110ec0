"""GDPR anonymisation (reference section 5.9): every trace of a person, everywhere, made anonymous.

``POST /v2/data-deletion-requests`` records the request (its identities only hashed) and queues an
``anonymise`` operation, which the worker runs in order with the account's pushes: what was pushed
before the request is anonymised; what arrives after it starts a new contact and a new profile.

The person is found by the request's identities (their profiles, and the profiles merged into those).
Then each table is dealt with by its entry in :data:`HANDLERS`, which names every table of the schema
(a test fails when a table is added without one). The anonymous identity is Ometria's:
``<md5 of the email>@anonymous.ometria``. Orders stay, for revenue, under the anonymised profile.

Their identifiers (emails, phone numbers, customer ids, contact ids, and the names their own records
give) are removed from every string of their records, free text included (a coupon code, a line
item's properties, a delivery error): each occurrence becomes ``(anonymised)``. An id that holds one
(``signup-ann@example.com``) becomes ``anonymised-`` and an HMAC-SHA256 of it under the account's key,
the same wherever the id appears, so that what refers to it (an order's attribution) still does; a
second id that would map to a hash already taken gets the next one. In rows that are not theirs
(another person's rejected record, a tracking event, a merge's error) a quoted identifier is removed
too, but not a name, which alone identifies no one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import ColumnElement, Connection, Table, delete, func, insert, or_, select, update

from patron.errors import FieldInvalid
from patron.ingest.queue import enqueue_operation, pack, unpack
from patron.model import defects
from patron.model.rounds import Op, QueueKind, Registry, Round
from patron.profiles.operations import resolve
from patron.profiles.segments import members as segment_members_of
from patron.records.fields import EMAIL_PATTERN, MAX_ID_LENGTH, MAX_TEXT_LENGTH, NO_NUL_PATTERN, Email
from patron.signing import account_key
from patron.store import among, chunks, id_window
from patron.store.schema import (
    accounts,
    consents,
    contacts,
    custom_events,
    deletion_requests,
    email_clicks,
    identities,
    import_batches,
    list_changes,
    list_members,
    merge_jobs,
    messages,
    order_sources,
    orders,
    profiles,
    push_errors,
    tracking_events,
    tracking_sessions,
    visitors,
    webhook_attempts,
    webhook_events,
    webhook_outbox,
)
from patron.webhooks import outbox

log = logging.getLogger("patron.gdpr")
ANONYMISE = "anonymise"
#: The queue kinds of an anonymisation's steps: its sweeps, and its completion.
SWEEP = "anonymise_sweep"
DONE = "anonymise_done"
ANONYMOUS_DOMAIN = "anonymous.ometria"
#: DeletionIdentity types of a request, and the merge-profile identifier type each resolves as.
RESOLVE_AS = {
    "email": "email_address",
    "customer_id": "customer_id",
    "phone_number": "phone_number",
    "profile_id": "profile_hash",
}
_EMAIL = re.compile(EMAIL_PATTERN)
_encode = msgspec.json.Encoder().encode


# the request ----------------------------------------------------------------------------------------


class DeletionIdentity(msgspec.Struct, forbid_unknown_fields=True):
    type: Literal["email", "customer_id", "phone_number", "profile_id"]
    value: Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH, pattern=NO_NUL_PATTERN)]


#: An identity as the OpenAPI document gives it: an email's value is an email.
_Checked = Annotated[
    DeletionIdentity,
    Meta(
        extra_json_schema={
            "if": {"properties": {"type": {"const": "email"}}},
            "then": {"properties": {"value": {"pattern": EMAIL_PATTERN}}},
        }
    ),
]


class DeletionRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The body of ``POST /v2/data-deletion-requests``: the person's ``email``, or ``identities``
    (or both), and an optional ``comment``."""

    email: Email | UnsetType = UNSET
    identities: Annotated[list[_Checked], Meta(min_length=1, max_length=20)] | UnsetType = UNSET
    comment: Annotated[str, Meta(max_length=MAX_TEXT_LENGTH, pattern=NO_NUL_PATTERN)] | None = None

    def __post_init__(self) -> None:
        if self.email is UNSET and self.identities is UNSET:
            raise FieldInvalid("email", "is required (or identities)")
        if isinstance(self.identities, list):
            for index, identity in enumerate(self.identities):
                if identity.type == "email" and not _EMAIL.match(identity.value):
                    raise FieldInvalid(f"identities > {index} > value", "is not an email")

    def all_identities(self) -> list[DeletionIdentity]:
        given = [] if self.email is UNSET else [DeletionIdentity("email", self.email)]
        return given + ([] if self.identities is UNSET else list(self.identities))


#: The body as the OpenAPI document gives it: at least one identity.
DeletionBody = Annotated[
    DeletionRequest,
    Meta(extra_json_schema={"anyOf": [{"required": ["email"]}, {"required": ["identities"]}]}),
]


def hashed_email(email: str) -> str:
    """Ometria's anonymous identity: ``<md5 of the email, in lower case>@anonymous.ometria``."""
    return f"{hashlib.md5(email.strip().lower().encode()).hexdigest()}@{ANONYMOUS_DOMAIN}"  # noqa: S324


def hashed(identity: DeletionIdentity) -> dict[str, str]:
    if identity.type == "email":
        return {"hashed_email": hashed_email(identity.value)}
    return {"type": identity.type, "hashed_value": hashlib.md5(identity.value.encode()).hexdigest()}  # noqa: S324


class DeletionView(msgspec.Struct):
    """A request as the API shows it (section 5.9)."""

    id: str
    action: str
    comment: str | None
    identities: list[dict[str, str]]
    source: dict[str, Any]
    status: str  # queued | completed
    summary: str | None
    timestamp_created: str
    timestamp_completed: str | None


def stamp(moment: datetime | None) -> str | None:
    """``2017-02-02 10:18:12.833949+00``, the form of section 5.9."""
    return None if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S.%f+00")


class Anonymisation(msgspec.Struct):
    """The queued operation: the identities as given (scrubbed from the queue once it has run)."""

    identities: list[DeletionIdentity]


def request(
    conn: Connection,
    account_id: int,
    queue_limit: int | None,
    request_id: str,
    body: DeletionRequest,
    at: datetime,
) -> DeletionView:
    """Keep the request (its identities hashed) and queue its operation, in one transaction (refused
    with ``BacklogFull`` over ``queue_limit``, None: never)."""
    operation = Anonymisation(body.all_identities())
    enqueue_operation(conn, account_id, queue_limit, request_id, ANONYMISE, operation, at)
    view = [hashed(identity) for identity in body.all_identities()]
    conn.execute(
        insert(deletion_requests).values(
            account_id=account_id,
            request_id=request_id,
            identities=_encode(view).decode(),
            comment=body.comment,
            status="queued",
            created_at=at,
        )
    )
    return _view(request_id, view, body.comment, "queued", None, at, None)


def _view(
    request_id: str,
    view: list[dict[str, str]],
    comment: str | None,
    status: str,
    summary: str | None,
    created: datetime,
    completed: datetime | None,
) -> DeletionView:
    source = {"api_request_id": request_id, "origin": "api", "user": None}
    return DeletionView(
        request_id,
        "anonymise",
        comment,
        view,
        source,
        status,
        summary,
        stamp(created) or "",
        stamp(completed),
    )


def read_requests(
    conn: Connection, account_id: int, request_id: str | None = None, limit: int = 10, offset: int = 0
) -> list[DeletionView]:
    t = deletion_requests
    query = select(t).where(t.c.account_id == account_id)
    if request_id is not None:
        query = query.where(t.c.request_id == request_id)
    rows = conn.execute(query.order_by(t.c.id).limit(limit).offset(offset))
    return [
        _view(
            r.request_id,
            msgspec.json.decode(r.identities),
            r.comment,
            r.status,
            r.summary,
            r.created_at,
            r.completed_at,
        )
        for r in rows
    ]


# the anonymisation ---------------------------------------------------------------------------------


#: What an identifier becomes in free text.
ANONYMISED = "(anonymised)"


@dataclass
class Person:
    """What is known of the person being anonymised: their profiles, the values that identify them
    wherever they appear (emails, customer ids, phone numbers, contact ids), and their names (which
    are looked for in their own records only)."""

    profiles: list[str]
    anonymous_email: str
    traces: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    browsers: list[str] = field(default_factory=list)  # the website tag's cookie ids of their visits
    names: set[str] = field(default_factory=set)
    key: str = ""  # the account's key (hex), for the ids' hashes
    renamed: dict[str, str] = field(default_factory=dict)  # an id that held an identifier: its hash
    messages: list[str] = field(default_factory=list)  # the ids of the messages sent to them
    _own: re.Pattern[str] | None = field(default=None, init=False, repr=False)
    _quoted: re.Pattern[str] | None = field(default=None, init=False, repr=False)

    def owns(self, record: Any) -> bool:
        """Whether a JSON value (a record) holds one of the person's values, as a whole value."""
        folded = {t.casefold() for t in self.traces}
        return any(leaf.casefold() in folded for leaf in _leaves(record))

    def named_in(self, text: str | None) -> bool:
        """Whether free text (an error message) quotes one of the person's values."""
        lowered = (text or "").casefold()
        return any(t.casefold() in lowered for t in self.traces if len(t) >= MIN_QUOTED)

    def mentions(self, text: str) -> bool:
        """Whether a string of their own records holds one of their identifiers or names."""
        return bool(self.own_pattern().search(text))

    def scrub(self, text: str) -> str:
        """A string of their own records with each of their identifiers and names replaced."""
        return self.own_pattern().sub(ANONYMISED, text)

    def redact(self, text: str) -> str:
        """A string of anyone's row with the ids renamed replaced by their hashes, and then each
        identifier (not a name) quoted replaced."""
        for original in sorted(self.renamed, key=len, reverse=True):
            if len(original) >= MIN_QUOTED:
                text = text.replace(original, self.renamed[original])
        if self._quoted is None:
            self._quoted = _alternation([t for t in self.traces if len(t) >= MIN_QUOTED])
        return self._quoted.sub(ANONYMISED, text)

    def needles(self) -> list[str]:
        """What to look for in anyone's rows: identifiers long enough not to match by accident, and
        the ids renamed."""
        found = self.traces | set(self.renamed)
        return sorted(t for t in found if len(t) >= MIN_QUOTED)

    def own_pattern(self) -> re.Pattern[str]:
        if self._own is None:
            self._own = _alternation([*self.traces, *self.names])
        return self._own

    def hashed(self, value: str, attempt: int) -> str:
        """``value``'s keyed hash (``attempt`` 0, then 1, 2... while one is taken)."""
        message = f"anonymised id {attempt}:{value}".encode()
        return f"anonymised-{hmac.new(bytes.fromhex(self.key), message, hashlib.sha256).hexdigest()[:32]}"

    def traced(self) -> Traces:
        """What the sweeps carry of them from one step to the next (not the account's key)."""
        return Traces(
            self.profiles,
            self.anonymous_email,
            sorted(self.traces),
            self.counts,
            self.browsers,
            sorted(self.names),
            self.renamed,
            self.messages,
        )


class Traces(msgspec.Struct, array_like=True):
    """A :class:`Person` as a step of the sweeps carries it in the queue (a stub replaces it there
    once the step has run)."""

    profiles: list[str]
    anonymous_email: str
    traces: list[str]
    counts: dict[str, int]
    browsers: list[str]
    names: list[str]
    renamed: dict[str, str]
    messages: list[str]

    def person(self, key: str) -> Person:
        return Person(
            self.profiles,
            self.anonymous_email,
            set(self.traces),
            self.counts,
            self.browsers,
            set(self.names),
            key,
            self.renamed,
            self.messages,
        )


#: The shortest value looked for inside free text (shorter ones would match by accident).
MIN_QUOTED = 6
#: The shortest identifier or name looked for inside a word of their own records; a shorter one (a
#: name "Jo") only as a word of its own.
MIN_INSIDE = 3


def _alternation(values: list[str]) -> re.Pattern[str]:
    """One case-insensitive pattern matching any of ``values`` (longest first); never matches if
    there are none."""
    parts = [
        re.escape(v) if len(v) >= MIN_INSIDE else rf"(?<!\w){re.escape(v)}(?!\w)"
        for v in sorted({v for v in values if v}, key=len, reverse=True)
    ]
    return re.compile("|".join(parts) or r"(?!)", re.IGNORECASE)


def _leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [str(value)] if isinstance(value, str | int) and not isinstance(value, bool) else []


Handler = Callable[[Connection, int, Person, Op], None]
#: The account's rows among the ids of a table one step of a sweep reads (``store.id_window``).
Window = ColumnElement[bool]
#: A sweep of anyone's rows among a window of ids of its table.
Sweeper = Callable[[Connection, int, Person, Window], None]
#: The fields that identify a person on their own: a record elsewhere (a rejected one, a copy in the
#: import queue) that holds one of their values is theirs. Names alone are not: two people share them.
_IDENTIFYING = ("email", "customer_id", "phone_number")
#: Where their own records give their names.
_NAMES = ("firstname", "middlename", "lastname")
_NAMED = ("customer", "shipping_address", "billing_address")


def _add(traces: set[str], *values: Any) -> None:
    for value in values:
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            traces.add(str(value).strip())


def _person(round: Round, op: Op) -> Person:
    conn, account = round.conn, round.account_id
    asked = [DeletionIdentity(**each) for each in op.record["identities"]]
    found: list[str] = []
    for identity in asked:
        found += resolve(round, RESOLVE_AS[identity.type], identity.value)
    p = profiles
    merged = conn.execute(
        select(p.c.profile_id).where(p.c.account_id == account, among(conn, p.c.merged_into, found))
    ).scalars()
    people = list(dict.fromkeys([*found, *merged]))
    emails = [i.value for i in asked if i.type == "email"]
    held = conn.execute(
        select(identities.c.kind, identities.c.value).where(
            identities.c.account_id == account, among(conn, identities.c.profile, people)
        )
    ).all()
    emails += [value for kind, value in held if kind == "email"]
    person = Person(people, hashed_email(emails[0] if emails else "|".join(sorted(people)) or op.request_id))
    _add(person.traces, *(i.value for i in asked), *(value for _, value in held))
    for row in conn.execute(
        select(contacts.c.contact_id, contacts.c.data).where(_of(conn, contacts, account, people))
    ):
        doc = msgspec.json.decode(row.data)
        _add(person.traces, row.contact_id, *(doc.get(name) for name in _IDENTIFYING))
        _add(person.names, *(doc.get(name) for name in _NAMES))
    for row in conn.execute(select(orders.c.data).where(_of(conn, orders, account, people))):
        doc = msgspec.json.decode(row.data)
        customer = doc.get("customer") or {}
        _add(person.traces, customer.get("id"), customer.get("email"))
        for part in _NAMED:
            named = doc.get(part)
            if isinstance(named, dict):
                _add(person.names, *(named.get(name) for name in _NAMES))
    for row in conn.execute(select(custom_events.c.data).where(_of(conn, custom_events, account, people))):
        doc = msgspec.json.decode(row.data)
        _add(person.traces, doc.get("identity_email"), doc.get("identity_account_id"))
    person.traces -= {person.anonymous_email}
    person.traces = {t for t in person.traces if len(t) >= 3}  # an id "7" would match everything
    for where in _theirs(conn, account, person):
        named = select(messages.c.recipient_name).where(where, messages.c.recipient_name.is_not(None))
        _add(person.names, *conn.execute(named).scalars())
    browsers = conn.execute(select(visitors.c.cid).where(_of(conn, visitors, account, people))).scalars()
    person.browsers = list(browsers)
    person.key = account_key(conn, account)
    return person


#: The columns that hold an id an anonymised one may be given in place of a renamed one: each is unique
#: in its account, and a hash is given only where none of them holds it yet.
_RENAMED_IDS = (orders.c.order_id, custom_events.c.event_id, order_sources.c.order_id)


def _rename(conn: Connection, account_id: int, person: Person, value: str) -> str:
    """The keyed hash that takes the place of an id holding an identifier, the same for the same id
    wherever it appears in this anonymisation."""
    if value not in person.renamed:
        attempt = 0
        while any(
            conn.execute(
                select(column.table.c.id).where(
                    column.table.c.account_id == account_id,
                    column == person.hashed(value, attempt),
                )
            ).first()
            for column in _RENAMED_IDS
        ):
            attempt += 1  # an earlier anonymisation gave this hash to another record of the same id
        person.renamed[value] = person.hashed(value, attempt)
    return person.renamed[value]


def _renamed_if_named(conn: Connection, account_id: int, person: Person, value: str) -> str:
    return _rename(conn, account_id, person, value) if person.mentions(value) else value


def _scrubbed(
    conn: Connection, account_id: int, person: Person, value: Any, key: str = "", free: bool = False
) -> Any:
    """A JSON value of their own records with every string scrubbed: an id (``id``, ``..._id``) that
    holds an identifier renamed, any other string's identifiers replaced; the keys too within
    ``properties`` (``free``), whose keys are the pusher's own."""
    if isinstance(value, dict):
        inner = free or key == "properties"
        return {
            person.scrub(k) if inner else k: _scrubbed(conn, account_id, person, v, k, inner)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrubbed(conn, account_id, person, item, key, free) for item in value]
    if isinstance(value, str):
        if not free and (key == "id" or key.endswith("_id")):
            return _renamed_if_named(conn, account_id, person, value)
        return person.scrub(value)
    return value


def _fit(column: Any, value: str) -> str:
    """``value`` cut to the length of ``column`` (an identifier replaced may make it longer)."""
    length = getattr(column.type, "length", None)
    return value[:length] if length else value


def _redact_rows(
    conn: Connection, t: Table, account_id: int, person: Person, columns: tuple[str, ...], window: Window
) -> None:
    """In anyone's rows of ``t`` within ``window``, the person's identifiers quoted in ``columns``
    replaced, and the ids renamed in this anonymisation given their hashes. The database picks the
    rows that may quote them; each is then rewritten here."""
    needles = person.needles()
    if not needles:
        return
    cs = [t.c[name] for name in columns]
    quoting = or_(*(func.lower(c).contains(n.lower(), autoescape=True) for c in cs for n in needles))
    rows = conn.execute(select(t.c.id, *cs).where(window, quoting)).all()
    for row in rows:
        values = {}
        for name in columns:
            value = getattr(row, name)
            if isinstance(value, str) and (redacted := person.redact(value)) != value:
                values[name] = _fit(t.c[name], redacted)
        if values:
            conn.execute(update(t).where(t.c.id == row.id).values(**values))


def _of(conn: Connection, table: Any, account_id: int, people: list[str]) -> Any:
    return (table.c.account_id == account_id) & among(conn, table.c.profile, people)


def _contacts(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    """Each contact keeps its collection and its place in the profile; everything else goes."""
    t = contacts
    rows = conn.execute(
        select(t.c.id, t.c.collection, t.c.contact_id).where(_of(conn, t, account_id, person.profiles))
    ).all()
    rewritten: list[tuple[int, list[defects.Defect]]] = []
    for row in rows:
        contact_id = _contact_id(conn, account_id, person, row.collection, row.contact_id)
        doc = {
            "@type": "contact",
            "@collection": row.collection,
            "id": contact_id,
            "email": person.anonymous_email,
        }
        conn.execute(
            update(t)
            .where(t.c.id == row.id)
            .values(
                contact_id=contact_id,
                email=person.anonymous_email,
                customer_id=None,
                phone_number=None,
                data=_encode(doc).decode(),
            )
        )
        rewritten.append((row.id, []))
    # an anonymised contact is no longer the shop's data to check: it keeps no defects
    defects.keep(conn, "contact", account_id, rewritten, replace=True)
    person.counts["contact record"] = len(rows)


def _contact_id(conn: Connection, account_id: int, person: Person, collection: str, contact_id: str) -> str:
    """A contact's id (an identifier itself) as a keyed hash, one not taken in its collection."""
    t = contacts
    attempt = 0
    while conn.execute(
        select(t.c.id).where(
            t.c.account_id == account_id,
            t.c.collection == collection,
            t.c.contact_id == person.hashed(contact_id, attempt),
        )
    ).first():
        attempt += 1
    return person.hashed(contact_id, attempt)


def _orders(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    """Orders stay, for revenue, under an anonymous customer: no customer block, addresses or IP, and
    no identifier of theirs in any other string (a coupon code, a line item's properties); an order
    id that holds one is renamed."""
    t = orders
    rows = conn.execute(
        select(t.c.id, t.c.order_id, t.c.data).where(_of(conn, t, account_id, person.profiles))
    ).all()
    rewritten: list[tuple[int, dict[str, Any]]] = []
    for row in rows:
        doc = msgspec.json.decode(row.data)
        for name in ("shipping_address", "billing_address", "ip_address", "properties", "customer"):
            doc.pop(name, None)
        doc = _scrubbed(conn, account_id, person, doc)
        doc["customer"] = {"email": person.anonymous_email}
        order_id = _renamed_if_named(conn, account_id, person, row.order_id)
        conn.execute(
            update(t)
            .where(t.c.id == row.id)
            .values(
                order_id=order_id,
                customer_id=None,
                customer_email=person.anonymous_email,
                data=_encode(doc).decode(),
            )
        )
        rewritten.append((row.id, doc))
    defects.refresh(conn, "order", account_id, rewritten)
    person.counts["order"] = len(rows)


def _custom_events(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    t = custom_events
    rows = conn.execute(
        select(t.c.id, t.c.event_id, t.c.event_type, t.c.data).where(
            _of(conn, t, account_id, person.profiles)
        )
    ).all()
    for row in rows:
        doc = msgspec.json.decode(row.data)
        doc = {k: v for k, v in doc.items() if k in ("@type", "id", "event_type", "timestamp")}
        doc = _scrubbed(conn, account_id, person, doc)
        doc["identity_email"] = person.anonymous_email
        conn.execute(
            update(t)
            .where(t.c.id == row.id)
            .values(
                event_id=_renamed_if_named(conn, account_id, person, row.event_id),
                event_type=_fit(t.c.event_type, person.scrub(row.event_type)),
                identity_email=person.anonymous_email,
                identity_account_id=None,
                profile_id=None,
                data=_encode(doc).decode(),
            )
        )
    person.counts["event"] = len(rows)


def _profiles(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    """Marked anonymised (nothing links to them again); the live ones are recomputed from their
    anonymised records when the round ends, the merged-away ones keep only their id."""
    p = profiles
    conn.execute(
        update(p)
        .where(p.c.account_id == account_id, among(conn, p.c.profile_id, person.profiles))
        .values(anonymised_at=op.at, email=person.anonymous_email)
    )
    conn.execute(
        update(p)
        .where(
            p.c.account_id == account_id,
            among(conn, p.c.profile_id, person.profiles),
            p.c.merged_into.is_not(None),
        )
        .values(data=_encode({"@type": "profile", "id": None}).decode())
    )


def _identities(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    conn.execute(delete(identities).where(_of(conn, identities, account_id, person.profiles)))


def _consents(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    """The history stays (it is the proof of consent), about the anonymous identity; another
    profile's reasons lose any identifier of theirs they quote."""
    t = consents
    for channel, address in (("email", person.anonymous_email), ("sms", None)):
        conn.execute(
            update(t)
            .where(_of(conn, t, account_id, person.profiles), t.c.channel == channel)
            .values(address=address, contact_id=None, reason=None)
        )


def _list_members(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    conn.execute(delete(list_members).where(_of(conn, list_members, account_id, person.profiles)))


def _list_changes(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    conn.execute(delete(list_changes).where(_of(conn, list_changes, account_id, person.profiles)))


def _segment_members(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    """The person leaves every segment, without a trace (their sizes follow)."""
    segment_members_of.forget(conn, account_id, person.profiles)


def _segment_changes(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    """Done by ``_segment_members``, which deletes the person's entries and exits with their
    memberships."""


def _merge_jobs(conn: Connection, account_id: int, person: Person, window: Window) -> None:
    t = merge_jobs
    for row in conn.execute(select(t.c.id, t.c.error).where(window, t.c.error.is_not(None))).all():
        if person.named_in(row.error):
            conn.execute(update(t).where(t.c.id == row.id).values(error="(anonymised)"))


def _push_errors(conn: Connection, account_id: int, person: Person, window: Window) -> None:
    """Rejected records that mention the person are deleted (a value of theirs, or one quoted in the
    record's id, its text or its error)."""
    t = push_errors
    rows = conn.execute(select(t.c.id, t.c.record_id, t.c.record, t.c.error_message).where(window))
    doomed = [
        r.id
        for r in rows
        if person.owns(r.record_id)
        or person.named_in(r.record_id)
        or (r.record is not None and _quotes(person, r.record))
        or person.named_in(r.error_message)
    ]
    for chunk in chunks(doomed):
        conn.execute(delete(t).where(among(conn, t.c.id, chunk)))


def _quotes(person: Person, record: str) -> bool:
    """Whether a rejected record, kept as sent (which may not be JSON), holds or quotes a value of
    theirs."""
    if person.named_in(record):
        return True
    try:
        decoded = msgspec.json.decode(record)
    except msgspec.DecodeError:
        return False
    return person.owns(decoded) or any(person.named_in(leaf) for leaf in _leaves(decoded))


def _forget_operation(conn: Connection, op: Op) -> None:
    """The queue's copy of this operation (the person's identities, or what a step carries of them)
    becomes a stub."""
    t = import_batches
    stub = [{"@type": op.record_type, "@anonymised": True}]
    conn.execute(update(t).where(t.c.request_id == op.request_id).values(records=pack(stub)))


def _import_batches(conn: Connection, account_id: int, person: Person, window: Window) -> None:
    """The queue's copies of the records, applied or not, queued before the request (what came after
    it is not the person's as anonymised: a later request sees to its own): a record that mentions
    the person is replaced by a stub saying it was anonymised."""
    t = import_batches
    rows = conn.execute(select(t.c.id, t.c.request_id, t.c.records).where(window))
    browsers = set(person.browsers)

    def theirs(record: dict[str, Any]) -> bool:  # a tag event of their browser counts as theirs
        beacon = record.get("beacon")
        return (
            person.owns(record)
            or person.named_in(_encode(record).decode())
            or (isinstance(beacon, dict) and beacon.get("cid") in browsers)
        )

    for row in rows.all():
        records = unpack(row.records)
        if any(theirs(r) for r in records):
            kept = [{"@type": r.get("@type"), "@anonymised": True} if theirs(r) else r for r in records]
            conn.execute(update(t).where(t.c.id == row.id).values(records=pack(kept)))


def _email_clicks(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    """Their clicks on email links go (a link's address may name them): those on their profiles
    here, those on the other messages sent to them by :func:`_clicks_on_theirs`."""
    t = email_clicks
    conn.execute(delete(t).where(_of(conn, t, account_id, person.profiles)))


def _clicks_on_theirs(conn: Connection, account_id: int, person: Person, window: Window) -> None:
    """The clicks on messages sent to them (found by :func:`_messages` and :func:`_messages_to`)
    go; anyone else's link address that quotes them loses it."""
    t = email_clicks
    theirs = set(person.messages)
    if theirs:
        clicked = conn.execute(select(t.c.id, t.c.message_id).where(window))
        gone = [row.id for row in clicked if row.message_id in theirs]
        for chunk in chunks(gone):
            conn.execute(delete(t).where(among(conn, t.c.id, chunk)))
    _redact_rows(conn, t, account_id, person, ("url",), window)


def _tracking_events(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    """What their browsers did goes, and any identify or profile event that names them."""
    _by_browser(conn, tracking_events, account_id, person)


def _tracking_naming(conn: Connection, account_id: int, person: Person, window: Window) -> None:
    """Identify and profile events (of any browser) that name them go; other events lose what they
    quote."""
    t = tracking_events
    naming = conn.execute(select(t.c.id, t.c.data).where(window, t.c.kind.in_(("identify", "profile"))))
    gone = [row.id for row in naming if person.owns(msgspec.json.decode(row.data))]
    for chunk in chunks(gone):
        conn.execute(delete(t).where(among(conn, t.c.id, chunk)))
    _redact_rows(conn, t, account_id, person, ("url", "page_type", "data"), window)


def _tracking_sessions(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    t = tracking_sessions
    conn.execute(delete(t).where(_of(conn, t, account_id, person.profiles)))
    _by_browser(conn, t, account_id, person)


def _order_sources(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    """Their orders stay (for revenue); where they came from on the site goes. What another browser
    confirmed keeps pointing at the order (renamed as the order was) without naming them."""
    t = order_sources
    _by_browser(conn, t, account_id, person)
    for chunk in chunks(list(person.renamed)):
        for row in conn.execute(
            select(t.c.id, t.c.order_id).where(t.c.account_id == account_id, among(conn, t.c.order_id, chunk))
        ).all():
            conn.execute(update(t).where(t.c.id == row.id).values(order_id=person.renamed[row.order_id]))


def _sources_quoting(conn: Connection, account_id: int, person: Person, window: Window) -> None:
    """An order id that quotes them is renamed (as their orders' were); first and last touches lose
    what they quote."""
    t = order_sources
    needles = person.needles()
    if needles:
        quoting = or_(*(func.lower(t.c.order_id).contains(n.lower(), autoescape=True) for n in needles))
        for row in conn.execute(select(t.c.id, t.c.order_id).where(window, quoting)).all():
            if person.named_in(row.order_id):
                order_id = _rename(conn, account_id, person, row.order_id)
                conn.execute(update(t).where(t.c.id == row.id).values(order_id=order_id))
    _redact_rows(conn, t, account_id, person, ("first_touch", "last_touch"), window)


def _by_browser(conn: Connection, t: Table, account_id: int, person: Person) -> None:
    """Delete the rows of ``t`` that came from the person's browsers (by the tag's cookie id)."""
    for chunk in chunks(person.browsers):
        conn.execute(delete(t).where(t.c.account_id == account_id, among(conn, t.c.cid, chunk)))


def _visitors(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    conn.execute(delete(visitors).where(_of(conn, visitors, account_id, person.profiles)))


def _theirs(conn: Connection, account_id: int, person: Person) -> list[ColumnElement[bool]]:
    """The messages sent to them, found by key: to their profiles, and to their addresses as given."""
    m = messages
    addresses = sorted({v for t in person.traces if "@" in t for v in (t, t.lower())})
    return [
        _of(conn, m, account_id, person.profiles),
        (m.c.account_id == account_id) & among(conn, m.c.recipient, addresses),
    ]


def _messages(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    """Their transactional emails keep only what happened to them (a delivery error, its SMTP code);
    one not yet sent never will be. Here those found by key; :func:`_messages_to` finds any other."""
    for where in _theirs(conn, account_id, person):
        _rewrite_messages(conn, person, where)


def _messages_to(conn: Connection, account_id: int, person: Person, window: Window) -> None:
    """A message sent to an address of theirs written otherwise (``Ann@...``) is rewritten as theirs;
    other messages lose any identifier of theirs they quote."""
    m = messages
    others = m.c.recipient != person.anonymous_email  # those found by key are done
    _rewrite_messages(conn, person, window & others)
    _redact_rows(conn, messages, account_id, person, _MESSAGE_TEXT, window)


def _rewrite_messages(conn: Connection, person: Person, where: ColumnElement[bool]) -> None:
    t = messages
    rows = conn.execute(
        select(
            t.c.id,
            t.c.message_id,
            t.c.recipient,
            t.c.profile,
            t.c.status,
            t.c.error,
            t.c.stream,
            t.c.sender,
            t.c.reply_to,
        ).where(where)
    )
    for row in rows.all():
        if row.profile in person.profiles or person.owns(row.recipient):
            person.messages.append(row.message_id)
            values: dict[str, Any] = {
                "recipient": person.anonymous_email,
                "recipient_name": None,
                "subject": ANONYMISED,
                "html": None,
                "text": None,
                "attachments": "[]",
                "error": _error(person, row.error),
            }
            for name in ("stream", "sender", "reply_to"):
                value = getattr(row, name)
                if value is not None and person.mentions(value):
                    values[name] = _fit(t.c[name], person.scrub(value))
            if row.status in ("queued", "sending"):
                values.update(status="failed", error="the recipient was anonymised before delivery")
            conn.execute(update(t).where(t.c.id == row.id).values(**values))


#: What another browser's session may quote: where it came from, its basket and checkout.
_SESSION_TEXT = ("site", "source", "basket", "checkout_stage", "transactions")
#: What a message to someone else may quote: its subject, bodies, delivery error, stream and name.
_MESSAGE_TEXT = ("subject", "html", "text", "error", "stream", "recipient_name")


#: An SMTP answer: its code, and its enhanced status code if it has one (``550 5.1.1 ...``).
_SMTP_ANSWER = re.compile(r"^([2-5][0-9][0-9])(?:[ -]([2-5]\.[0-9]{1,3}\.[0-9]{1,3}))?(?![0-9])")


def _error(person: Person, error: str | None) -> str | None:
    """A delivery error to them: an SMTP server's answer (which may quote the address and the name,
    and more that cannot be told apart) keeps only its codes; any other has their identifiers
    replaced."""
    if error is None:
        return None
    answer = _SMTP_ANSWER.match(error)
    if answer:
        return " ".join(code for code in (*answer.groups(), ANONYMISED) if code)
    return person.scrub(error)


def _outbox_theirs(conn: Connection, account_id: int, person: Person, window: Window) -> None:
    """Their events still in the outbox are taken out of its rows (they are never sent: the deliverer
    drops the events of anonymised profiles); what anyone else's quote of them is redacted."""
    outbox.drop(conn, window, person.profiles)
    _redact_rows(conn, webhook_outbox, account_id, person, ("payload",), window)


def _webhook_attempts(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    """Their events' delivery attempts go with the events (:func:`_webhook_events`)."""
    t, e = webhook_attempts, webhook_events
    theirs = select(e.c.id).where(_of(conn, e, account_id, person.profiles))
    conn.execute(delete(t).where(t.c.account_id == account_id, t.c.event.in_(theirs)))


def _webhook_events(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    """Their events, delivered or not, are deleted (an undelivered one never goes); then each of their
    profiles gets a last event, ``profile.anonymised``, carrying its id alone."""
    t = webhook_events
    conn.execute(delete(t).where(_of(conn, t, account_id, person.profiles)))
    outbox.anonymised(conn, account_id, person.profiles, op.at)


def _quoting(table: Table, *columns: str) -> Sweeper:
    """A sweep of anyone's rows of ``table`` whose ``columns`` may quote them (a consent's reason,
    another request's comment, another event's payload...): what they quote becomes ``(anonymised)``."""

    def sweep(conn: Connection, account_id: int, person: Person, window: Window) -> None:
        _redact_rows(conn, table, account_id, person, columns, window)

    return sweep


def _nothing(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    """The table holds nothing about people (accounts, keys, counters, products, lists' own rows,
    email templates)."""


def _swept(conn: Connection, account_id: int, person: Person, op: Op) -> None:
    """Nothing of the table is theirs by key: what quotes them is found by its sweep (:data:`SWEEPS`)."""


#: Every table of the schema and what anonymisation does to it, in the order it runs.
HANDLERS: dict[str, Handler] = {
    "contacts": _contacts,
    "orders": _orders,
    "custom_events": _custom_events,
    "profiles": _profiles,
    "identities": _identities,
    "consents": _consents,
    "list_members": _list_members,
    "list_changes": _list_changes,
    "segment_members": _segment_members,
    "segment_changes": _segment_changes,
    "merge_jobs": _swept,
    "push_errors": _swept,
    "import_batches": _swept,
    "email_clicks": _email_clicks,
    "messages": _messages,
    "tracking_events": _tracking_events,
    "tracking_sessions": _tracking_sessions,
    "order_sources": _order_sources,
    "visitors": _visitors,
    "deletion_requests": _swept,
    "webhook_outbox": _swept,
    "webhook_attempts": _webhook_attempts,
    "webhook_events": _webhook_events,
    "accounts": _nothing,
    "api_keys": _nothing,
    "heartbeat": _nothing,
    "rate_windows": _nothing,
    "import_hours": _nothing,  # counts of requests per hour
    "products": _nothing,
    "lists": _nothing,
    "segments": _nothing,  # rules and sizes, about no one
    "templates": _nothing,
    # a record's defects are replaced with the record: by _contacts (none kept) and _orders
    "contact_flags": _nothing,
    "order_flags": _nothing,
    "product_flags": _nothing,
    # the console's operators are Patron's users, not the shop's customers
    "queue_counts": _nothing,  # counts of records, per account
    "operators": _nothing,
    "operator_accounts": _nothing,
    "operator_sessions": _nothing,
    "webhook_endpoints": _nothing,  # where an account's events go
}


#: The sweeps of anyone's rows that may quote the person, in the order they run: each table, how many
#: of its ids one step reads at most, and what is done to the account's rows among them. A sweep of
#: messages finds those sent to them (not by profile) before their clicks are swept.
SWEEPS: list[tuple[Table, int, Sweeper]] = [
    (consents, 20_000, _quoting(consents, "reason")),
    (merge_jobs, 20_000, _merge_jobs),
    (push_errors, 5_000, _push_errors),
    (import_batches, 200, _import_batches),
    (messages, 2_000, _messages_to),
    (email_clicks, 20_000, _clicks_on_theirs),
    (tracking_events, 20_000, _tracking_naming),
    (tracking_sessions, 20_000, _quoting(tracking_sessions, *_SESSION_TEXT)),
    (order_sources, 20_000, _sources_quoting),
    (visitors, 20_000, _quoting(visitors, "first_source")),
    (deletion_requests, 20_000, _quoting(deletion_requests, "comment")),
    (webhook_outbox, 20, _outbox_theirs),  # a row: up to outbox.ROW_EVENTS events
    (webhook_events, 5_000, _quoting(webhook_events, "payload")),
    (webhook_attempts, 5_000, _quoting(webhook_attempts, "error", "response")),
]
#: The sweeps whose last id is read when they start rather than with the request: the webhooks' events
#: move from the outbox to the events as they are fanned out meanwhile.
_LATE: Final = frozenset({"webhook_outbox", "webhook_events", "webhook_attempts"})


class Sweeping(msgspec.Struct):
    """An anonymisation's sweeps under way (``anonymise_sweep``): the person as found, the sweep and
    the id it has reached, and the last id of each table to sweep."""

    request_id: str  # the deletion request
    person: Traces
    upto: dict[str, int]
    sweep: int = 0
    after: int = 0


class Completion(msgspec.Struct):
    """An anonymisation done (``anonymise_done``): its request, and what was anonymised."""

    request_id: str
    counts: dict[str, int]
    profiles: int


def anonymise(round: Round, op: Op) -> None:
    """Run a queued anonymisation (the worker's operation ``anonymise``): everything that is the
    person's by key, in this round; then the sweeps of what may quote them, a bounded step at a time
    (:func:`sweep`), queued in this transaction."""
    person = _person(round, op)
    conn = round.conn
    outbox.hold(conn, round.account_id)  # no deliverer reads their events meanwhile
    for handler in HANDLERS.values():
        handler(conn, round.account_id, person, op)
    round.touch(*person.profiles)
    _forget_operation(conn, op)
    # what came after the request is not the person's as anonymised
    upto = {t.name: _last_id(conn, t) for t, _, _ in SWEEPS if t.name not in _LATE}
    own = select(import_batches.c.id).where(import_batches.c.request_id == op.request_id)
    upto[import_batches.name] = conn.execute(own).scalar_one() - 1
    _next(round, Sweeping(op.request_id, person.traced(), upto))


def _last_id(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.max(table.c.id))).scalar() or 0)


def _next(round: Round, state: Sweeping) -> None:
    """Queue the next step of the sweeps, or the anonymisation's completion when none is left."""
    request_id = str(uuid.uuid4())
    if state.sweep < len(SWEEPS):
        enqueue_operation(round.conn, round.account_id, None, request_id, SWEEP, state, round.at)
    else:
        done = Completion(state.request_id, state.person.counts, len(state.person.profiles))
        enqueue_operation(round.conn, round.account_id, None, request_id, DONE, done, round.at)


def sweep(round: Round, op: Op) -> None:
    """One step of an anonymisation's sweeps: at most :data:`SWEEPS`' ids of one table read (or a
    table's last ids and the next table's first ones), the rows that quote the person rewritten, and
    the next step queued."""
    conn, account_id = round.conn, round.account_id
    state = msgspec.convert(op.record, Sweeping)
    person = state.person.person(account_key(conn, account_id))
    budget = 1.0  # of a step: a table's ids read take 1 / its ids a step
    while state.sweep < len(SWEEPS):
        table, most, sweeper = SWEEPS[state.sweep]
        upto = state.upto.get(table.name)
        if upto is None:  # a sweep whose last id is read as it starts
            upto = state.upto[table.name] = _last_id(conn, table)
        if state.after == 0:  # from the table's first row (those before were deleted)
            first = int(conn.execute(select(func.min(table.c.id))).scalar() or 1)
            state.after = min(upto, first - 1)
        ids = int(budget * most)
        if ids < 1:
            break
        until = min(upto, state.after + ids)
        if until > state.after:
            sweeper(conn, account_id, person, id_window(table, account_id, state.after, until))
        budget -= (until - state.after) / most
        if until < upto:
            state.after = until
            break
        state.sweep, state.after = state.sweep + 1, 0
    _forget_operation(conn, op)
    _next(round, msgspec.structs.replace(state, person=person.traced()))


def complete(round: Round, op: Op) -> None:
    """The anonymisation is done: its request says so, with what was anonymised."""
    conn = round.conn
    done = msgspec.convert(op.record, Completion)
    parts = [f"{n} {what}{'' if n == 1 else 's'} anonymised" for what, n in done.counts.items()]
    t = deletion_requests
    conn.execute(
        update(t)
        .where(t.c.account_id == round.account_id, t.c.request_id == done.request_id)
        .values(status="completed", summary=", ".join(parts), completed_at=op.at)
    )
    log.info(
        "anonymised",
        extra={
            "request_id": done.request_id,
            "account": conn.execute(
                select(accounts.c.hash).where(accounts.c.id == round.account_id)
            ).scalar_one(),
            "profiles": done.profiles,
            **{f"{what.replace(' ', '_')}s": n for what, n in done.counts.items()},
        },
    )


def register(kinds: Registry) -> None:
    """Anonymisation: its keyed part in a round of its own, then its sweeps a step a round, then its
    completion, after which the store's files lose the old bytes."""
    kinds.add(QueueKind(ANONYMISE, anonymise, alone=True, erases=True))
    kinds.add(QueueKind(SWEEP, sweep, alone=True))
    kinds.add(QueueKind(DONE, complete, alone=True, erases=True))
