"""Consent through HTTP and the CLI: a contact's ``marketing_optin`` and the profile's status, source
priority after an operator's unsubscribe (``patron unsubscribe``) and ``@force_optin``,
``GET /v2/unsubscribes`` and its filters, SMS opt-in by collection, and account isolation.

The module runs one app (server and worker) for all its tests, each test on fresh accounts; the CLI
runs against the same store (``PATRON_DATA_DIR`` / ``PATRON_DATABASE_URL``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import Tenant, push, run_cli
from support.app import App, Client, app_fixtures
from support.http import assert_problem, barrier, read

EMAIL = "ann@example.com"
PHONE = "+447812122136"
UNSUBSCRIBE_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00$")
REASON = "asked by phone"


# one app per module, and the CLI on its store -----------------------------------------------------


shared, client, make_tenant = app_fixtures()


# helpers ----------------------------------------------------------------------------------------


def contact(contact_id: str, email: str = EMAIL, **fields: Any) -> dict[str, Any]:
    return {"@type": "contact", "id": contact_id, "email": email, **fields}


def profile(client: Client, tenant: Tenant, email: str = EMAIL) -> dict[str, Any]:
    found: list[dict[str, Any]] = read(client, tenant, f"/v2/profiles?email={email}")
    assert len(found) == 1, found
    return found[0]


def optin(client: Client, tenant: Tenant, email: str = EMAIL) -> bool | None:
    value: bool | None = profile(client, tenant, email)["marketing_optin"]
    return value


def sms(client: Client, tenant: Tenant, email: str = EMAIL) -> dict[str, Any]:
    channel: dict[str, Any] = profile(client, tenant, email)["channels"]["sms"]
    return channel


def stored_contact(client: Client, tenant: Tenant, contact_id: str) -> dict[str, Any]:
    found: dict[str, Any] = read(client, tenant, f"/v2/contacts/default/{contact_id}")
    return found


def unsubscribes(client: Client, tenant: Tenant, query: str = "") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = read(client, tenant, f"/v2/unsubscribes{query}")
    return found


def cli_unsubscribe(shared: App, account: str, email: str, *, check: bool = True) -> Any:
    return run_cli(
        shared.data_dir,
        "unsubscribe",
        "--account",
        account,
        "--email",
        email,
        "--reason",
        REASON,
        check=check,
        environment=shared.environment,
    )


def operator_unsubscribe(shared: App, tenant: Tenant, email: str = EMAIL, timeout: float = 30) -> None:
    """``patron unsubscribe`` (exit 0), then wait until the worker has applied it and the profile is
    opted out."""
    result = cli_unsubscribe(shared, tenant.hash, email, check=False)
    assert result.returncode == 0, result.stderr
    barrier(shared.client, tenant)  # an account's requests apply in order: the unsubscribe first
    deadline = time.monotonic() + timeout
    while optin(shared.client, tenant, email) is not False:
        assert time.monotonic() < deadline, f"the unsubscribe of {email} was not applied in {timeout} s"
        time.sleep(0.05)


# email opt-in -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("EXPLICITLY_OPTEDIN", True),
        ("EXPLICITLY_OPTEDOUT", False),
        (True, True),
        (False, False),
        ("NOT_SPECIFIED", None),
    ],
)
def test_a_pushed_marketing_optin_sets_the_profile_status(
    client: Client, tenant: Tenant, value: Any, expected: bool | None
) -> None:
    push(client, tenant, [contact("c1", marketing_optin=value)])
    assert optin(client, tenant) is expected


def test_a_contact_without_marketing_optin_leaves_the_status_null(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1")])
    assert optin(client, tenant) is None


@pytest.mark.parametrize("value", ["EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT"])
def test_a_null_marketing_optin_leaves_the_status_unchanged(
    client: Client, tenant: Tenant, value: str
) -> None:
    push(client, tenant, [contact("c1", marketing_optin=value)])
    before = optin(client, tenant)
    push(client, tenant, [contact("c1", marketing_optin=None)])
    assert optin(client, tenant) is before


def test_the_status_follows_each_change(client: Client, tenant: Tenant) -> None:
    seen = []
    for value in ["EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", True, False, "EXPLICITLY_OPTEDIN"]:
        push(client, tenant, [contact("c1", marketing_optin=value)])
        seen.append(optin(client, tenant))
    assert seen == [True, False, True, False, True]


def test_the_stored_contact_is_what_was_pushed(client: Client, tenant: Tenant) -> None:
    pushed = contact(
        "c1",
        marketing_optin="EXPLICITLY_OPTEDIN",
        timestamp_subscribed="2024-01-01T00:00:00+00:00",
        **{"@collection": "default"},
    )
    push(client, tenant, [pushed])
    assert stored_contact(client, tenant, "c1") == pushed


def test_the_stored_contact_gets_no_timestamp_added(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1", marketing_optin="EXPLICITLY_OPTEDIN")])
    push(client, tenant, [contact("c1", marketing_optin="EXPLICITLY_OPTEDOUT")])
    assert stored_contact(client, tenant, "c1") == {
        **contact("c1", marketing_optin="EXPLICITLY_OPTEDOUT"),
        "@collection": "default",
    }


def test_repushing_the_same_status_changes_nothing(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1", marketing_optin="EXPLICITLY_OPTEDIN")])
    push(client, tenant, [contact("c1", marketing_optin="EXPLICITLY_OPTEDIN")])
    assert optin(client, tenant) is True
    push(client, tenant, [contact("c1", marketing_optin=True)])  # the older form of the same status
    assert optin(client, tenant) is True


def test_a_repeat_on_one_contact_does_not_undo_a_change_on_another(client: Client, tenant: Tenant) -> None:
    """Two contacts of one profile: a contact repeating its own status is no change, so the profile
    keeps the later change the other contact made."""
    push(client, tenant, [contact("c1", marketing_optin="EXPLICITLY_OPTEDIN")])
    push(client, tenant, [contact("c2", marketing_optin="EXPLICITLY_OPTEDOUT")])
    assert optin(client, tenant) is False
    push(client, tenant, [contact("c1", marketing_optin="EXPLICITLY_OPTEDIN")])
    assert optin(client, tenant) is False


def test_a_timestamp_alone_changes_only_the_contact_s_date(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1", marketing_optin="EXPLICITLY_OPTEDOUT")])
    push(client, tenant, [contact("c1", timestamp_subscribed="2024-05-01T10:00:00+00:00")])
    assert optin(client, tenant) is False
    assert stored_contact(client, tenant, "c1") == {
        **contact("c1", marketing_optin="EXPLICITLY_OPTEDOUT"),
        "timestamp_subscribed": "2024-05-01T10:00:00+00:00",
        "@collection": "default",
    }


def test_a_timestamp_alone_on_a_new_contact_leaves_the_status_null(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1", timestamp_unsubscribed="2024-05-01T10:00:00+00:00")])
    assert optin(client, tenant) is None


# source priority --------------------------------------------------------------------------------


def test_an_operator_unsubscribe_makes_the_profile_opted_out(
    shared: App, client: Client, tenant: Tenant
) -> None:
    push(client, tenant, [contact("c1", marketing_optin="EXPLICITLY_OPTEDIN")])
    operator_unsubscribe(shared, tenant)
    assert optin(client, tenant) is False


@pytest.mark.parametrize("before", ["NOT_SPECIFIED", "EXPLICITLY_OPTEDOUT", None])
def test_a_pushed_optin_after_an_operator_unsubscribe_is_ignored(
    shared: App, client: Client, tenant: Tenant, before: str | None
) -> None:
    first = contact("c1") if before is None else contact("c1", marketing_optin=before)
    push(client, tenant, [first])
    operator_unsubscribe(shared, tenant)
    push(client, tenant, [contact("c1", marketing_optin="EXPLICITLY_OPTEDIN")])
    assert optin(client, tenant) is False
    assert stored_contact(client, tenant, "c1") == {**first, "@collection": "default"}


def test_a_pushed_optin_with_force_optin_wins_over_an_operator_unsubscribe(
    shared: App, client: Client, tenant: Tenant
) -> None:
    push(client, tenant, [contact("c1", marketing_optin="NOT_SPECIFIED")])
    operator_unsubscribe(shared, tenant)
    push(client, tenant, [{**contact("c1", marketing_optin="EXPLICITLY_OPTEDIN"), "@force_optin": True}])
    assert optin(client, tenant) is True
    assert stored_contact(client, tenant, "c1")["marketing_optin"] == "EXPLICITLY_OPTEDIN"


def test_force_optin_false_does_not_win(shared: App, client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1")])
    operator_unsubscribe(shared, tenant)
    push(client, tenant, [{**contact("c1", marketing_optin="EXPLICITLY_OPTEDIN"), "@force_optin": False}])
    assert optin(client, tenant) is False


# GET /v2/unsubscribes ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unsubscribed(shared: App, make_tenant: Callable[..., Tenant]) -> tuple[Tenant, str, datetime]:
    """An account where the operator unsubscribed EMAIL and a push opted out another contact; the
    account, EMAIL's profile id, and when the unsubscribe was asked for."""
    tenant = make_tenant()
    client = shared.client
    push(
        client,
        tenant,
        [
            contact("c1", marketing_optin="EXPLICITLY_OPTEDIN"),
            contact("c2", email="bob@example.com", marketing_optin="EXPLICITLY_OPTEDIN"),
        ],
    )
    push(client, tenant, [contact("c2", email="bob@example.com", marketing_optin="EXPLICITLY_OPTEDOUT")])
    asked = datetime.now(UTC)
    operator_unsubscribe(shared, tenant)
    return tenant, profile(client, tenant)["id"], asked


def test_unsubscribes_lists_the_operator_s_unsubscribe(
    client: Client, unsubscribed: tuple[Tenant, str, datetime]
) -> None:
    tenant, profile_id, _ = unsubscribed
    found = unsubscribes(client, tenant)
    assert [{k: v for k, v in u.items() if k != "timestamp"} for u in found] == [
        {"email_address": EMAIL, "profile_id": profile_id, "reason": REASON, "type": "app"}
    ]
    assert sorted(found[0]) == ["email_address", "profile_id", "reason", "timestamp", "type"]


def test_an_unsubscribe_s_timestamp_is_utc_to_the_second(
    client: Client, unsubscribed: tuple[Tenant, str, datetime]
) -> None:
    tenant, _, asked = unsubscribed
    timestamp = unsubscribes(client, tenant)[0]["timestamp"]
    assert UNSUBSCRIBE_TIMESTAMP.match(timestamp), timestamp
    moment = datetime.strptime(timestamp, "%Y-%m-%d %H:%M:%S+00").replace(tzinfo=UTC)
    assert asked - timedelta(minutes=5) <= moment <= datetime.now(UTC) + timedelta(minutes=5)


def test_unsubscribes_made_by_pushing_contacts_are_not_listed(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1", marketing_optin="EXPLICITLY_OPTEDIN")])
    push(client, tenant, [contact("c1", marketing_optin="EXPLICITLY_OPTEDOUT")])
    push(client, tenant, [contact("c2", email="bob@example.com", marketing_optin=False)])
    assert optin(client, tenant) is False
    assert unsubscribes(client, tenant) == []


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("?type=app", 1),
        ("?type=preferences_centre", 0),
        ("?since=2000-01-01T00:00:00", 1),
        ("?since=2999-01-01T00:00:00", 0),
        ("?before=2000-01-01T00:00:00", 0),
        ("?before=2999-01-01T00:00:00", 1),
        ("?since=2000-01-01T00:00:00&before=2999-01-01T00:00:00&type=app", 1),
    ],
)
def test_unsubscribes_filters(
    client: Client, unsubscribed: tuple[Tenant, str, datetime], query: str, count: int
) -> None:
    tenant, profile_id, _ = unsubscribed
    found = unsubscribes(client, tenant, query)
    assert [(u["email_address"], u["profile_id"], u["type"]) for u in found] == [
        (EMAIL, profile_id, "app")
    ] * count


@pytest.mark.parametrize(
    ("query", "field"), [("type=bogus", "type"), ("since=garbage", "since"), ("before=garbage", "before")]
)
def test_a_bad_unsubscribes_filter_is_a_400_naming_it(
    client: Client, tenant: Tenant, query: str, field: str
) -> None:
    assert_problem(client.get(f"/v2/unsubscribes?{query}", headers=tenant.headers), 400, field)


# patron unsubscribe's errors --------------------------------------------------------------------


def test_unsubscribing_an_unknown_email_fails_and_records_nothing(
    shared: App, client: Client, tenant: Tenant
) -> None:
    push(client, tenant, [contact("c1", marketing_optin="EXPLICITLY_OPTEDIN")])
    result = cli_unsubscribe(shared, tenant.hash, "nobody@example.com", check=False)
    assert result.returncode != 0
    assert "nobody@example.com" in result.stderr
    barrier(client, tenant)
    assert unsubscribes(client, tenant) == []
    assert optin(client, tenant) is True


def test_unsubscribing_in_an_unknown_account_fails(shared: App, client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1")])
    result = cli_unsubscribe(shared, "no-such-account", EMAIL, check=False)
    assert result.returncode != 0
    assert result.stderr != ""
    barrier(client, tenant)
    assert unsubscribes(client, tenant) == []


# SMS --------------------------------------------------------------------------------------------


def sms_contact(contact_id: str, collection: str, allow: bool) -> dict[str, Any]:
    channels = {"sms": {"allow_marketing": allow, "dt_updated_marketing": "2024-01-01T00:00:00Z"}}
    return contact(contact_id, phone_number=PHONE, channels=channels, **{"@collection": collection})


PENDING = {"allow_marketing": False, "status": "pending", "pending_double_optin": True}
SUBSCRIBED = {"allow_marketing": True, "status": "subscribed", "pending_double_optin": False}
UNSUBSCRIBED = {"allow_marketing": False, "status": "unsubscribed", "pending_double_optin": False}
NO_SMS = {"allow_marketing": None, "status": None, "pending_double_optin": False}


def test_an_sms_optin_is_pending(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [sms_contact("s1", "optin:sms", True)])
    assert sms(client, tenant) == PENDING


def test_an_sms_double_optin_confirms_a_pending_one(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [sms_contact("s1", "optin:sms", True)])
    push(client, tenant, [sms_contact("s1", "double_optin:sms", True)])
    assert sms(client, tenant) == SUBSCRIBED
    assert len(read(client, tenant, f"/v2/profiles?email={EMAIL}")) == 1


def test_an_sms_double_optin_alone_subscribes(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [sms_contact("s1", "double_optin:sms", True)])
    assert sms(client, tenant) == SUBSCRIBED


@pytest.mark.parametrize("collection", ["optin:sms", "double_optin:sms"])
def test_sms_allow_marketing_false_unsubscribes(client: Client, tenant: Tenant, collection: str) -> None:
    push(client, tenant, [sms_contact("s1", "double_optin:sms", True)])
    push(client, tenant, [sms_contact("s1", collection, False)])
    assert sms(client, tenant) == UNSUBSCRIBED


@pytest.mark.parametrize("collection", ["optin:sms", "double_optin:sms"])
def test_sms_allow_marketing_false_on_a_new_profile_unsubscribes(
    client: Client, tenant: Tenant, collection: str
) -> None:
    push(client, tenant, [sms_contact("s1", collection, False)])
    assert sms(client, tenant) == UNSUBSCRIBED


@pytest.mark.parametrize("collection", ["default", "customers"])
def test_sms_consent_through_another_collection_is_ignored(
    client: Client, tenant: Tenant, collection: str
) -> None:
    push(client, tenant, [sms_contact("s1", collection, True)])
    assert sms(client, tenant) == NO_SMS
    push(client, tenant, [sms_contact("s2", collection, False)])
    assert sms(client, tenant) == NO_SMS


def test_sms_contacts_with_one_email_share_a_profile(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1", marketing_optin="EXPLICITLY_OPTEDIN")])
    push(client, tenant, [sms_contact("s1", "optin:sms", True)])
    push(client, tenant, [sms_contact("s2", "double_optin:sms", True)])
    found = profile(client, tenant)
    assert (found["marketing_optin"], found["channels"]["sms"]) == (True, SUBSCRIBED)
    contacts = read(client, tenant, f"/v2/contacts?email={EMAIL}")
    assert sorted((c["@collection"], c["id"]) for c in contacts) == [
        ("default", "c1"),
        ("double_optin:sms", "s2"),
        ("optin:sms", "s1"),
    ]


# isolation --------------------------------------------------------------------------------------


def test_an_unsubscribe_in_one_account_is_not_seen_in_another(
    shared: App, client: Client, make_tenant: Callable[..., Tenant]
) -> None:
    a, b = make_tenant("a"), make_tenant("b")
    for tenant in (a, b):
        push(client, tenant, [contact("c1", marketing_optin="EXPLICITLY_OPTEDIN")])
    operator_unsubscribe(shared, a)
    barrier(client, b)
    assert [u["email_address"] for u in unsubscribes(client, a)] == [EMAIL]
    assert unsubscribes(client, b) == []
    assert optin(client, b) is True


def test_unsubscribing_with_another_account_s_hash_leaves_this_one_alone(
    shared: App, client: Client, make_tenant: Callable[..., Tenant]
) -> None:
    a, b = make_tenant("a"), make_tenant("b")
    push(client, a, [contact("c1", marketing_optin="EXPLICITLY_OPTEDIN")])
    result = cli_unsubscribe(shared, b.hash, EMAIL, check=False)  # b has no profile with EMAIL
    assert result.returncode != 0
    barrier(client, a)
    assert unsubscribes(client, a) == []
    assert optin(client, a) is True
