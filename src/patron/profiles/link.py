"""Identity resolution: the worker links every record it applies to a profile, in arrival order.

Runs inside the transaction that applies a round, after the records are merged and before they are
written, so every read sees what the round has done so far. The rules (reference sections 5.2 and 7.1):

- A contact is found by its listing (``@collection`` and ``id``); a new one joins the profile of its
  ``customer_id``, else of its email, else of its phone number (phone matching is per account), else a
  new profile. It never joins a profile that holds a different ``customer_id``: two profiles with
  different customer ids are never merged automatically.
- Each identifier belongs to one profile. An identifier another profile holds is ignored; a profile
  holds at most one ``customer_id``. A contact whose email changes gives up the old one (unless another
  of the profile's contacts still has it) and takes the new one.
- An order joins by its customer's id, then email; when only the email matches a profile with another
  customer id, the order starts a profile of its own. An order with neither (names only) is stored and
  linked to nothing.
- A custom event joins by ``profile_id``, then ``identity_account_id``, then ``identity_email``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Connection, delete, insert, select, update

from patron.model.documents import Document, Key, Step
from patron.model.rounds import Op, QueueKind, Registry, Round
from patron.model.storage import KINDS, Changes
from patron.profiles import build, consent, lists
from patron.profiles.identity import Kind, identifiers, new_profile_id
from patron.store import among, among_keys, chunks
from patron.store.schema import (
    accounts,
    contacts,
    custom_events,
    identities,
    orders,
    profiles,
)
from patron.webhooks import outbox

#: The fields of an order its ``order.applied`` event carries (never its customer's or addresses).
ORDER_FIELDS = ("timestamp", "status", "currency", "grand_total", "subtotal", "channel", "store")
#: The custom events the tag's idle sessions end with, and the webhook event each is also told as.
ABANDONED = {"abandoned_basket": "basket.abandoned", "browse_abandoned": "browse.abandoned"}
LINKED = {"contact": contacts, "order": orders, "custom_event": custom_events}
_encode = msgspec.json.Encoder().encode


class Linker:
    """Links one account's records to profiles, keeping what it decides for :meth:`finish`: the
    :class:`~patron.model.rounds.Links` of a round."""

    def __init__(self, round: Round) -> None:
        self.round = round
        self._touched = round.touched  # (the round's set, added to on the hot path directly)
        self.conn = round.conn
        self.account_id = round.account_id
        outbox.defer(self.conn)  # the round's events are written together, when it finishes
        self.match_phone = bool(
            self.conn.execute(select(accounts.c.match_phone).where(accounts.c.id == self.account_id)).scalar()
        )
        self.links: dict[str, dict[Key, str | None]] = {name: {} for name in LINKED}
        self.patches: dict[Key, dict[str, Any]] = {}  # contact -> consent fields to set (None: remove)
        self._contact_ids: dict[Key, dict[Kind, str]] = {}  # contacts of this round: their identifiers
        # what the round has read or decided so far (the database is only read for what is not here)
        self._owners: dict[tuple[str, str], str | None] = {}  # identifier -> the profile holding it
        self._customers: dict[str, str | None] = {}  # profile -> its customer id
        self._stored: dict[str, dict[Key, str | None]] = {name: {} for name in LINKED}  # links before
        # rows to insert, written together by :meth:`flush`
        self._new_profiles: dict[str, datetime] = {}
        self._new_identities: dict[tuple[str, str], tuple[str, datetime]] = {}  # -> profile, when

    def preload(self, ops: Iterable[Op]) -> None:
        """Read at once the links and identifier holders the records of ``ops`` will ask for."""
        wanted: dict[Kind, set[str]] = {}
        keys: dict[str, set[Key]] = {name: set() for name in LINKED}
        for op in ops:
            if op.step is None or op.record_type not in LINKED:
                continue
            keys[op.record_type].add(op.step.key)
            for doc in (op.step.after, op.step.before or {}):
                for kind, value in self._identifiers_of(op.record_type, doc).items():
                    wanted.setdefault(kind, set()).add(value)
        t = identities
        for kind, values in wanted.items():
            for chunk in chunks(sorted(values)):
                self._owners.update(dict.fromkeys(((kind, v) for v in chunk), None))
                found = self.conn.execute(
                    select(t.c.value, t.c.profile).where(
                        t.c.account_id == self.account_id,
                        t.c.kind == kind,
                        among(self.conn, t.c.value, chunk),
                    )
                )
                self._owners.update({(kind, row.value): row.profile for row in found})
        held = sorted({p for p in self._owners.values() if p is not None} - self._customers.keys())
        for chunk in chunks(held):
            self._customers.update(dict.fromkeys(chunk, None))
            found = self.conn.execute(
                select(t.c.profile, t.c.value)
                .where(
                    t.c.account_id == self.account_id,
                    t.c.kind == "customer_id",
                    among(self.conn, t.c.profile, chunk),
                )
                .order_by(t.c.id.desc())  # the oldest last, so it is the one kept
            )
            self._customers.update({row.profile: row.value for row in found})
        for record_type, wanted_keys in keys.items():
            spec = KINDS[record_type]
            columns = spec.key_columns()
            stored = self._stored[record_type]
            stored.update(dict.fromkeys(wanted_keys, None))
            for condition in among_keys(self.conn, columns, wanted_keys):
                found = self.conn.execute(
                    select(spec.table.c.profile, *columns).where(
                        spec.table.c.account_id == self.account_id, condition
                    )
                )
                stored.update({tuple(str(v) for v in row[1:]): row.profile for row in found})

    def forget(self) -> None:
        """Drop what was read: a merge moved identifiers and records between profiles."""
        self._owners.clear()
        self._customers.clear()
        for stored in self._stored.values():
            stored.clear()

    def _identifiers_of(self, record_type: str, doc: Document) -> dict[Kind, str]:
        if record_type == "contact":
            return self._ids(doc)
        if record_type == "order":
            customer = doc.get("customer") or {}
            return identifiers(customer.get("id"), customer.get("email"), None, match_phone=False)
        return identifiers(doc.get("identity_account_id"), doc.get("identity_email"), None, match_phone=False)

    # the queue, in order ----------------------------------------------------------------------------

    def link(self, op: Op) -> None:
        if op.record_type == "contact" and op.step:
            self._contact(op, op.step)
        elif op.record_type == "order" and op.step:
            cust = op.step.after.get("customer") or {}
            before = (op.step.before or {}).get("customer") or {}
            profile = self._follower(
                op, op.step, (cust.get("id"), cust.get("email")), (before.get("id"), before.get("email"))
            )
            self._order_event(op, op.step, profile)
        elif op.record_type == "custom_event" and op.step:
            after, before = op.step.after, op.step.before or {}
            ids = (after.get("identity_account_id"), after.get("identity_email"), after.get("profile_id"))
            was = (before.get("identity_account_id"), before.get("identity_email"), before.get("profile_id"))
            profile = self._follower(op, op.step, ids, was)
            if op.step.before is None:
                self._custom_events(op, op.step, profile)
        elif op.record_type == "product" and op.step:
            self.round.attributes |= _attributes(op.step.after) ^ _attributes(op.step.before or {})

    def _order_event(self, op: Op, step: Step, profile: str | None) -> None:
        """``order.applied``: an order pushed, new or changed, with its profile."""
        if not outbox.wants(self.conn, self.account_id, "order.applied"):
            return
        doc = step.after
        data = {
            "order_id": step.key[-1],
            "profile_id": profile,
            "created": step.before is None,
            **{name: doc[name] for name in ORDER_FIELDS if name in doc},
        }
        outbox.emit(self.conn, self.account_id, "order.applied", data, op.at, profile=profile)

    def _custom_events(self, op: Op, step: Step, profile: str | None) -> None:
        """``custom_event.created``, and ``basket.abandoned`` / ``browse.abandoned`` for the events the
        tag's sessions end with (``tracking.abandonment``)."""
        doc = step.after
        data = {
            "custom_event_id": step.key[-1],
            "event_type": doc.get("event_type"),
            "profile_id": profile,
            "timestamp": doc.get("timestamp"),
        }
        outbox.emit(self.conn, self.account_id, "custom_event.created", data, op.at, profile=profile)
        also = ABANDONED.get(str(doc.get("event_type")))
        if also is not None:
            outbox.emit(self.conn, self.account_id, also, data, op.at, profile=profile)

    def patch(self, changes: Changes) -> None:
        """Put the consent fields decided here into the contacts about to be written."""
        if changes.kind.table is contacts:
            for key, fields in self.patches.items():
                doc = changes.rows[key]["data"]
                for name, value in fields.items():
                    if value is None:
                        doc.pop(name, None)
                    else:
                        doc[name] = value

    def flush(self) -> None:
        """Insert the profiles and identifiers made so far (the profiles without their documents,
        which :meth:`finish` computes)."""
        if self._new_profiles:
            rows = [
                {"profile_id": p, "created_at": at, "updated_at": at} for p, at in self._new_profiles.items()
            ]
            self.conn.execute(insert(profiles).values(account_id=self.account_id, data="{}"), rows)
        if self._new_identities:
            rows = [
                {"kind": kind, "value": value, "profile": profile, "created_at": at}
                for (kind, value), (profile, at) in self._new_identities.items()
            ]
            self.conn.execute(insert(identities).values(account_id=self.account_id), rows)
        self._new_profiles.clear()
        self._new_identities.clear()

    def moved(self, merged: str, survivor: str) -> None:
        for links in self.links.values():
            for key, link in links.items():
                if link == merged:
                    links[key] = survivor

    def finish(self) -> None:
        """Compute the profiles this round made and recompute those it touched (after the records
        are written)."""
        made, self._new_profiles = self._new_profiles, {}
        self.flush()
        touched = self.round.touched - made.keys()
        changed: set[str] = set()
        build.refresh(self.conn, self.account_id, touched, self.round.at, new=made, changed_ids=changed)
        self.round.created.update(made)
        self.round.updated.update(changed - made.keys())
        outbox.flush(self.conn, end=True)

    # contacts ---------------------------------------------------------------------------------------

    def _ids(self, doc: Document) -> dict[Kind, str]:
        return identifiers(
            doc.get("customer_id"), doc.get("email"), doc.get("phone_number"), match_phone=self.match_phone
        )

    def _contact(self, op: Op, step: Step) -> None:
        ids = self._ids(step.after)
        profile = self._link_of("contact", step.key)
        if profile is None:
            profile = self.live(op.record.get("@profile_id")) or self._find(ids) or self._new_profile(op.at)
        else:
            old = self._ids(step.before or {})
            for kind, value in old.items():
                if ids.get(kind) != value:
                    self._release(kind, value, profile, step.key)
        self._contact_ids[step.key] = ids
        self.links["contact"][step.key] = profile
        self._claim(ids, profile, op.at)
        self._touched.add(profile)
        self._consent(op, step, profile)
        for list_id in op.record.get("@add_to_lists") or ():
            lists.add(self.conn, self.account_id, str(list_id), profile, op.at)
        for list_id in op.record.get("@remove_from_lists") or ():
            lists.remove(self.conn, self.account_id, str(list_id), profile, op.at)

    def _consent(self, op: Op, step: Step, profile: str) -> None:
        latest = consent.latest(self.conn, self.account_id, profile, "email")
        decision = consent.email_decision(op.record, step.before, latest)
        fields = self.patches.setdefault(step.key, {})
        for name in op.record:  # what this record sets replaces what an earlier one patched
            fields.pop(name, None)
        fields.update(decision.patch)
        if not fields:
            del self.patches[step.key]
        if decision.status is not None:
            given = op.record.get(decision.timestamp_field or "")
            self._change(op, step, profile, "email", decision.status, given, step.after.get("email"))
        sms = consent.sms_status(step.key[0], op.record)
        if sms is not None:
            status, given = sms
            latest_sms = consent.latest(self.conn, self.account_id, profile, "sms")
            already = latest_sms is not None and (
                latest_sms.status == status
                or (latest_sms.status, status) == (consent.SUBSCRIBED, consent.PENDING)
            )
            if not already:
                self._change(op, step, profile, "sms", status, given, step.after.get("phone_number"))

    def _change(
        self, op: Op, step: Step, profile: str, channel: str, status: str, given: Any, address: Any
    ) -> None:
        """Record a change of consent the contact made (dated ``given``, else when applied)."""
        occurred = datetime.fromisoformat(given) if isinstance(given, str) else op.at
        consent.record(
            self.conn,
            self.account_id,
            profile,
            channel,
            status,
            "api",
            occurred,
            op.at,
            address=address,
            collection=step.key[0],
            contact_id=step.key[1],
        )

    # orders and custom events -------------------------------------------------------------------

    def _follower(self, op: Op, step: Step, ids: tuple[Any, ...], was: tuple[Any, ...]) -> str | None:
        """Orders and custom events: linked by their customer's identifiers, re-linked only when those
        change (so a record keeps its profile across updates); returns the profile."""
        links = self.links[op.record_type]
        current = self._link_of(op.record_type, step.key)
        if step.before is not None and current is not None and ids == was:
            profile: str | None = current
        else:
            profile_id = ids[2] if len(ids) > 2 else None
            profile = self.live(profile_id) or self.customer(ids[0], ids[1], op.at)
        links[step.key] = profile
        for touched in (current, profile):
            if touched is not None:
                self._touched.add(touched)
        return profile

    def customer(self, customer_id: Any, email: Any, at: datetime) -> str | None:
        """The profile of a customer known by id and/or email, made when none matches (section 5.2)."""
        ids = identifiers(customer_id, email, None, match_phone=False)
        if not ids:
            return None
        profile = self._find(ids) or self._new_profile(at)
        self._claim(ids, profile, at)
        return profile

    # identities ---------------------------------------------------------------------------------

    def _find(self, ids: dict[Kind, str]) -> str | None:
        """The profile the identifiers point to, trying them in order, never one whose customer id
        differs from the one given."""
        for kind, value in ids.items():
            owner = self.owner(kind, value)
            if owner is None:
                continue
            if kind != "customer_id" and "customer_id" in ids:
                held = self._customer_of(owner)
                if held is not None and held != ids["customer_id"]:
                    continue
            return owner
        return None

    def owner(self, kind: str, value: str) -> str | None:
        """The profile holding an identifier, if any."""
        if (kind, value) not in self._owners:
            t = identities
            self._owners[kind, value] = self.conn.execute(
                select(t.c.profile).where(
                    t.c.account_id == self.account_id, t.c.kind == kind, t.c.value == value
                )
            ).scalar()
        return self._owners[kind, value]

    def _customer_of(self, profile: str) -> str | None:
        if profile not in self._customers:
            t = identities
            self._customers[profile] = self.conn.execute(
                select(t.c.value)
                .where(t.c.account_id == self.account_id, t.c.profile == profile, t.c.kind == "customer_id")
                .order_by(t.c.id)
                .limit(1)
            ).scalar()
        return self._customers[profile]

    def _claim(self, ids: dict[Kind, str], profile: str, at: datetime) -> None:
        """Give the profile the identifiers no profile holds yet (a customer id only if it has none)."""
        for kind, value in ids.items():
            if self.owner(kind, value) is not None:
                continue
            if kind == "customer_id" and self._customer_of(profile) is not None:
                continue
            self._new_identities[kind, value] = (profile, at)
            self._owners[kind, value] = profile
            if kind == "customer_id":
                self._customers[profile] = value
            self._touched.add(profile)

    def _release(self, kind: Kind, value: str, profile: str, key: Key) -> None:
        """A contact no longer has this identifier: the profile gives it up unless another of its
        contacts still has it."""
        if self.owner(kind, value) != profile:
            return
        for other, ids in self._contacts_of(profile):
            if other != key and ids.get(kind) == value:
                return
        if self._new_identities.pop((kind, value), None) is None:
            t = identities
            self.conn.execute(
                delete(t).where(t.c.account_id == self.account_id, t.c.kind == kind, t.c.value == value)
            )
        self._owners[kind, value] = None
        if kind == "customer_id":
            self._customers.pop(profile, None)  # it may hold another (after a merge): read again
        self._touched.add(profile)

    def _contacts_of(self, profile: str) -> Iterable[tuple[Key, dict[Kind, str]]]:
        """The profile's contacts and their identifiers, as of this point of the round."""
        c = contacts
        rows = self.conn.execute(
            select(c.c.collection, c.c.contact_id, c.c.data).where(
                c.c.account_id == self.account_id, c.c.profile == profile
            )
        )
        seen = set()
        for row in rows:
            key: Key = (row.collection, row.contact_id)
            seen.add(key)
            if key in self._contact_ids:
                if self.links["contact"].get(key) == profile:
                    yield key, self._contact_ids[key]
            else:
                yield key, self._ids(msgspec.json.decode(row.data))
        for key, link in self.links["contact"].items():
            if link == profile and key not in seen:
                yield key, self._contact_ids[key]

    # profiles -----------------------------------------------------------------------------------

    def _new_profile(self, at: datetime) -> str:
        """A new profile, and its ``profile.created``: emitted now, so that it comes before the
        events of the record that made it (and of the round's later records) about it."""
        profile = new_profile_id()
        self._new_profiles[profile] = at
        self._customers[profile] = None
        self._touched.add(profile)
        data = {"profile_id": profile}
        outbox.emit(self.conn, self.account_id, "profile.created", data, at, profile=profile)
        return profile

    def live(self, profile_id: Any) -> str | None:
        """The live profile an id names: itself, or the profile it was merged into."""
        if not isinstance(profile_id, str | int):
            return None
        if str(profile_id) in self._new_profiles:
            return str(profile_id)
        return build.survivor(self.conn, self.account_id, str(profile_id), anonymised=False)

    def _link_of(self, record_type: str, key: Key) -> str | None:
        for links in (self.links[record_type], self._stored[record_type]):
            if key in links:
                return links[key]
        kind = KINDS[record_type]
        where = [column == value for column, value in zip(kind.key_columns(), key, strict=True)]
        found: str | None = self.conn.execute(
            select(kind.table.c.profile).where(kind.table.c.account_id == self.account_id, *where)
        ).scalar()
        return found


def _attributes(doc: Document) -> set[tuple[str, str]]:
    """A product's attributes, as (type, id)."""
    held = doc.get("attributes")
    return {
        (str(a.get("type")), str(a.get("id")))
        for a in (held if isinstance(held, list) else [])
        if isinstance(a, dict)
    }


def link_stored(conn: Connection, account_id: int, at: datetime) -> int:
    """Link the records stored before profiles existed (or whose link was lost), oldest first, as the
    worker would have; returns how many it linked (an order naming no customer stays unlinked)."""
    unlinked: list[tuple[datetime, str, int, Key, Document]] = []
    for record_type, table in LINKED.items():
        kind = KINDS[record_type]
        rows = conn.execute(
            select(table.c.id, table.c.created_at, table.c.data, *kind.key_columns()).where(
                table.c.account_id == account_id, table.c.profile.is_(None)
            )
        )
        for row in rows:
            key = tuple(str(value) for value in row[3:])
            unlinked.append((row.created_at, record_type, row.id, key, msgspec.json.decode(row.data)))
    round = Round(conn, account_id, at)
    linker = round.links = Linker(round)
    for _, record_type, _, key, doc in sorted(unlinked, key=lambda r: (r[0], r[2])):
        linker.link(Op(record_type, doc, Step(key, None, doc), at, "rebuild", 0))
    for record_type, links in linker.links.items():
        kind = KINDS[record_type]
        columns = kind.key_columns()
        for key, profile in links.items():
            where = [column == value for column, value in zip(columns, key, strict=True)]
            conn.execute(
                update(kind.table)
                .where(kind.table.c.account_id == account_id, *where)
                .values(profile=profile)
            )
    linker.finish()
    return sum(profile is not None for links in linker.links.values() for profile in links.values())


def _link(round: Round, op: Op) -> None:
    round.links.link(op)


def register(kinds: Registry) -> None:
    """The record types: each stored (``patron.model.storage``), and linked to its profile here."""
    for record_type in KINDS:
        kinds.add(QueueKind(record_type, _link))
