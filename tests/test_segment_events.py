"""A segment's entries and exits reach the webhooks from their rows of ``segment_changes``: a round's
are one entry of the outbox, whatever their number, read when the deliverer fans it out; each is an
event of its own then (its id named after its row, so it is the same however often it is read); the
entries and exits of another account are not taken, nor those deleted before the fan-out (the
person anonymised, the segment deleted)."""

from __future__ import annotations

import json

import msgspec
from sqlalchemy import Connection, select

from patron import accounts, gdpr, segments
from patron.profiles.segments import members
from patron.profiles.segments.members import ENTER
from patron.store import Store, insert_rows
from patron.store.schema import profiles, segment_changes, webhook_events, webhook_outbox
from patron.webhooks import endpoints, outbox
from patron.webhooks.requests import NewEndpoint
from test_segment_members import GB, applied, contacts, pushed, shop

TYPES = ["segment.entered", "segment.exited"]


def hooked(store: Store, account_id: int, types: list[str] = TYPES) -> None:
    body = NewEndpoint(url="https://hooks.example.com/in", event_types=types)
    store.write_blocking(lambda conn: endpoints.create(conn, account_id, body, body.url, accounts.now()))


def fanned(store: Store) -> list[tuple[str, str, str, dict[str, str]]]:
    """The outbox fanned out: each event written for the endpoint (id, type, profile, data), in order."""
    store.write_blocking(lambda conn: outbox.fan_out(conn, 100_000))
    e = webhook_events.c
    rows = store.read_blocking(
        lambda conn: conn.execute(select(e.event_id, e.type, e.profile, e.payload).order_by(e.id)).all()
    )
    return [(row.event_id, row.type, row.profile, json.loads(row.payload)["data"]) for row in rows]


def profile_ids(store: Store, account_id: int) -> list[str]:
    p = profiles.c
    query = select(p.profile_id).where(p.account_id == account_id).order_by(p.id)
    return list(store.read_blocking(lambda conn: conn.execute(query).scalars().all()))


def test_a_rounds_entries_and_exits_are_one_entry_of_the_outbox_and_an_event_each(store: Store) -> None:
    account, segment_id = shop(store)
    applied(store)  # the segment built
    hooked(store, account.id)
    pushed(store, account, contacts(0, 30))
    applied(store)
    rows = store.read_blocking(lambda conn: conn.execute(select(webhook_outbox.c.payload)).scalars().all())
    assert len(rows) == 1 and len(json.loads(rows[0])) == 1  # one entry, for 30 entries
    assert store.read_blocking(outbox.pending) == 30
    pushed(store, account, [{**person, "country_id": "FR"} for person in contacts(0, 5)])
    applied(store)
    ids = profile_ids(store, account.id)
    events = fanned(store)
    expected = [("segment.entered", pid) for pid in ids] + [("segment.exited", pid) for pid in ids[:5]]
    assert [(kind, profile) for _, kind, profile, _ in events] == expected
    assert all(data == {"segment_id": str(segment_id), "profile_id": pid} for _, _, pid, data in events)
    assert len({event_id for event_id, _, _, _ in events}) == 35
    assert store.read_blocking(outbox.pending) == 35  # fanned out, not yet delivered


def test_an_endpoint_taking_exits_alone_is_sent_the_exits(store: Store) -> None:
    account, _ = shop(store)
    applied(store)
    hooked(store, account.id, ["segment.exited"])
    pushed(store, account, contacts(0, 4))
    applied(store)
    pushed(store, account, [{**contacts(0, 1)[0], "country_id": "FR"}])
    applied(store)
    assert [(kind, profile) for _, kind, profile, _ in fanned(store)] == [
        ("segment.exited", profile_ids(store, account.id)[0])
    ]


def test_entries_deleted_before_the_fan_out_are_not_sent(store: Store) -> None:
    """An anonymised person's entries go with their rows; a deleted segment's entries with it."""
    account, segment_id = shop(store)
    other = store.write_blocking(lambda conn: segments.create(conn, account.id, "gb too", GB, accounts.now()))
    applied(store)
    hooked(store, account.id)
    pushed(store, account, contacts(0, 3))
    applied(store)
    ids = profile_ids(store, account.id)
    request = gdpr.DeletionRequest(email="c1@x.co")
    store.write_blocking(lambda conn: gdpr.request(conn, account.id, None, "gdpr-1", request, accounts.now()))
    applied(store)
    assert store.write_blocking(lambda conn: members.remove(conn, account.id, other))
    events = fanned(store)
    sent = [(kind, profile, data["segment_id"]) for _, kind, profile, data in events]
    assert sent == [("segment.entered", pid, str(segment_id)) for pid in (ids[0], ids[2])]


def test_the_changes_of_another_account_in_the_range_are_not_taken(store: Store) -> None:
    """(On PostgreSQL, two accounts' rounds may write their changes at once, their ids interleaved.)"""
    account, segment_id = shop(store)
    hooked(store, account.id)
    other, _ = store.write_blocking(lambda conn: accounts.create_account(conn, "other", "staging"))
    at = accounts.now()

    def interleaved(conn: Connection) -> None:
        after = conn.execute(select(segment_changes.c.id).order_by(segment_changes.c.id.desc())).scalar() or 0
        fixed: dict[str, object] = {"created_at": at}
        for n, owner in enumerate([account.id, other.id, account.id]):
            row = [(owner, segment_id, f"p{n}", ENTER)]
            insert_rows(conn, segment_changes, fixed, ("account_id", "segment_id", "profile", "event"), row)
        upto = conn.execute(select(segment_changes.c.id).order_by(segment_changes.c.id.desc())).scalar()
        assert upto is not None
        outbox.emit_changes(conn, account.id, after, upto, 2, at)

    store.write_blocking(interleaved)
    assert [profile for _, _, profile, _ in fanned(store)] == ["p0", "p2"]


def test_a_build_of_many_entries_is_fanned_out_a_bounded_part_at_a_time(store: Store) -> None:
    """A segment built over 2,500 profiles enters them in one step: the outbox's rows stand for at
    most ``ROW_EVENTS`` of them each, and a fan-out takes at most what it is given room for."""
    account, _ = store.write_blocking(lambda conn: accounts.create_account(conn, "shop", "staging"))
    account = msgspec.structs.replace(account, queue_limit=10**6)
    many = 2 * outbox.ROW_EVENTS + 500
    pushed(store, account, contacts(0, many))
    applied(store)
    hooked(store, account.id)
    store.write_blocking(lambda conn: segments.create(conn, account.id, "gb", GB, accounts.now()))
    applied(store)
    weights = store.read_blocking(lambda conn: conn.execute(select(webhook_outbox.c.events)).scalars().all())
    assert sum(weights) == many and max(weights) <= outbox.ROW_EVENTS
    taken = []
    while took := store.write_blocking(lambda conn: outbox.fan_out(conn, 2 * outbox.ROW_EVENTS)):
        taken.append(took)
    assert sum(taken) == many and max(taken) <= 2 * outbox.ROW_EVENTS and len(taken) == 2
    e = webhook_events.c
    profiles_sent = store.read_blocking(
        lambda conn: conn.execute(select(e.profile).order_by(e.id)).scalars().all()
    )
    assert profiles_sent == profile_ids(store, account.id)
