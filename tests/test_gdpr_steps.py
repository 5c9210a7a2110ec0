"""An anonymisation holds the worker for a bounded time, whatever the account holds: what is the
person's by key goes in one round, then anyone's rows that may quote them (rejected records, the
queue's copies, messages, tracking, webhooks...) are swept a window of ids at a time, one step a round,
in order with every account's pushes; the request is completed after the last step."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import delete, func, select

from patron import accounts, gdpr
from patron.accounts import Account
from patron.config import Settings
from patron.ingest.push import push
from patron.ingest.queue import unpack
from patron.ingest.submit import Submitter
from patron.ingest.worker import apply_round
from patron.runtime import queue_kinds
from patron.store import Store, open_store
from patron.store.schema import contacts, deletion_requests, import_batches, push_errors

SWEEPING = Path(__file__).parent / "support" / "sweeping.py"

ANN = "ann.sweep@example.com"
#: Ids of each table one step reads, here: a few rejected records take several steps.
WINDOW = 2


def _account(store: Store, name: str) -> Account:
    account, _ = store.write_blocking(lambda conn: accounts.create_account(conn, name, "staging"))
    return msgspec.structs.replace(account, queue_limit=10**6)


def _push(submit: Submitter, account: Account, records: list[dict[str, Any]]) -> None:
    asyncio.run(push(submit, account, json.dumps(records).encode(), accounts.now()))


def _contact(contact_id: str, email: str, **fields: Any) -> dict[str, Any]:
    return {"@type": "contact", "@collection": "default", "id": contact_id, "email": email, **fields}


def test_the_sweeps_take_bounded_steps_between_other_accounts_pushes(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gdpr, "SWEEPS", [(table, WINDOW, sweep) for table, _, sweep in gdpr.SWEEPS])
    shop, other = _account(store, "shop"), _account(store, "other")
    submit, kinds = Submitter(store, wake=lambda: None), queue_kinds()
    # Ann's contact, and five records rejected (an opt-in that is not one) that quote her address
    rejected = [_contact(f"r{n}", ANN, marketing_optin="maybe") for n in range(5)]
    _push(submit, shop, [_contact("ann", ANN, firstname="Ann"), *rejected])
    _push(submit, shop, [_contact("bob", "bob.sweep@example.com", marketing_optin="maybe")])
    while apply_round(store, kinds):
        pass

    assert _quoting(store) == 5
    request_id = str(uuid.uuid4())
    body = gdpr.DeletionRequest(email=ANN)
    store.write_blocking(lambda conn: gdpr.request(conn, shop.id, None, request_id, body, accounts.now()))
    _push(submit, other, [_contact("carol", "carol.sweep@example.com")])  # queued after the request

    def stored(account: Account) -> list[str]:
        query = select(contacts.c.email).where(contacts.c.account_id == account.id)
        return list(store.read_blocking(lambda conn: conn.execute(query).scalars().all()))

    assert apply_round(store, kinds) == 1  # the anonymisation's keyed part, alone
    assert gdpr.hashed_email(ANN) in stored(shop) and ANN not in stored(shop)
    assert (_status(store, request_id), _quoting(store)) == (
        "queued",
        5,
    )  # the rejected records are swept later
    assert apply_round(store, kinds) == 1  # the other account's push comes before the first step
    assert stored(other) == ["carol.sweep@example.com"]
    rounds = 0
    while apply_round(store, kinds):
        rounds += 1
    # five rejected records of hers and one of Bob's, two ids a step: three steps for them alone
    assert rounds >= 4
    assert (_status(store, request_id), _quoting(store)) == ("completed", 0)
    assert any("bob.sweep@example.com" in (r or "") for r in _all(store, push_errors.c.record))
    # the queue's copies of the anonymisation and of each of its steps keep nothing of her
    query = select(import_batches.c.record_type, import_batches.c.records).where(
        import_batches.c.record_type.in_((gdpr.ANONYMISE, gdpr.SWEEP, gdpr.DONE))
    )
    copies = store.read_blocking(lambda conn: conn.execute(query).all())
    assert sum(kind == gdpr.SWEEP for kind, _ in copies) >= 3
    assert all(ANN not in json.dumps(unpack(records)) for _, records in copies)
    steps = [unpack(records) for kind, records in copies if kind != gdpr.DONE]
    assert all(found == [{"@type": found[0]["@type"], "@anonymised": True}] for found in steps)


def test_a_sweep_starts_at_its_tables_first_row(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows deleted before the first one left (pruned, another account's) cost no step: forty ids of
    rejected records gone would be twenty steps of two ids."""
    monkeypatch.setattr(gdpr, "SWEEPS", [(table, WINDOW, sweep) for table, _, sweep in gdpr.SWEEPS])
    shop, other = _account(store, "shop"), _account(store, "other")
    submit, kinds = Submitter(store, wake=lambda: None), queue_kinds()
    _push(submit, other, [_contact(f"x{n}", f"x{n}@example.com", marketing_optin="maybe") for n in range(40)])
    while apply_round(store, kinds):
        pass
    _push(submit, shop, [_contact("ann", ANN), _contact("r1", ANN, marketing_optin="maybe")])
    while apply_round(store, kinds):
        pass
    gone = push_errors.c.account_id == other.id
    store.write_blocking(lambda conn: conn.execute(delete(push_errors).where(gone)))
    assert _quoting(store) == 1
    request_id = str(uuid.uuid4())
    body = gdpr.DeletionRequest(email=ANN)
    store.write_blocking(lambda conn: gdpr.request(conn, shop.id, None, request_id, body, accounts.now()))
    while apply_round(store, kinds):
        pass
    assert (_status(store, request_id), _quoting(store)) == ("completed", 0)
    kind = import_batches.c.record_type
    steps = store.read_blocking(
        lambda conn: conn.execute(select(func.count()).where(kind == gdpr.SWEEP)).scalar()
    )
    assert 1 <= steps < 20


def _all(store: Store, column: Any) -> list[Any]:
    return list(store.read_blocking(lambda conn: conn.execute(select(column)).scalars().all()))


def _quoting(store: Store) -> int:
    records = _all(store, push_errors.c.record)
    return sum(ANN in (record or "") for record in records)


def _status(store: Store, request_id: str) -> str:
    query = select(deletion_requests.c.status).where(deletion_requests.c.request_id == request_id)
    return str(store.read_blocking(lambda conn: conn.execute(query).scalar_one()))


def test_a_worker_killed_mid_sweep_leaves_the_rest_to_the_next(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL of the worker between two steps of the sweeps: the next worker goes on from the step
    the last one queued, and the request completes with nothing of her left."""
    store = open_store(settings)
    store.start()
    try:
        shop = _account(store, "shop")
        submit, kinds = Submitter(store, wake=lambda: None), queue_kinds()
        rejected = [_contact(f"r{n}", ANN, marketing_optin="maybe") for n in range(8)]
        _push(submit, shop, [_contact("ann", ANN), *rejected])
        while apply_round(store, kinds):
            pass
        request_id = str(uuid.uuid4())
        body = gdpr.DeletionRequest(email=ANN)
        store.write_blocking(lambda conn: gdpr.request(conn, shop.id, None, request_id, body, accounts.now()))
    finally:
        store.close()
    # -P: not its own directory first on the path (tests/support/http.py is not the standard library's)
    command = [sys.executable, "-P", str(SWEEPING), str(settings.data_dir), settings.database_url or ""]
    worker = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        assert [worker.stdout.readline().strip() for _ in range(3)] == ["1", "2", "3"]  # two steps in
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        if worker.stdout is not None:
            worker.stdout.close()
    assert worker.returncode == -signal.SIGKILL
    monkeypatch.setattr(gdpr, "SWEEPS", [(table, WINDOW, sweep) for table, _, sweep in gdpr.SWEEPS])
    store = open_store(settings)
    store.start()
    try:
        assert _status(store, request_id) == "queued"
        assert 0 < _quoting(store) < 8  # some swept, some not
        while apply_round(store, kinds):
            pass
        assert (_status(store, request_id), _quoting(store)) == ("completed", 0)
    finally:
        store.close()
