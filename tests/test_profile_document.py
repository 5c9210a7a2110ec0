"""The profile document as a pure function of its facts (docs/compatibility.md, "Profiles" and
"On-site tracking"): ``document(facts)`` from the profile's contacts, order stats, identities, lists,
consent, email clicks, tracked visits and the website tag's profile data; ``tag_profile``, what the
tag's ``d[profile]`` may give; and ``second``, the timestamps shown.

Each case names the facts that differ from a profile that has none and the fields that differ from the
empty document: every other field must be the empty document's.

A unit test: no app, no store (``test_profiles`` checks the documents through HTTP).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from patron.profiles.build import Contact, Facts, OrderStats, document, second, tag_profile
from patron.profiles.consent import NOT_SPECIFIED, PENDING, SUBSCRIBED, UNSUBSCRIBED

pytestmark = pytest.mark.unit

BEGAN = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
#: A moment for consent changes (their dates are not shown).
AT = datetime(2024, 3, 1, tzinfo=UTC)

#: The document of a profile with no facts but its id and when it began.
EMPTY: dict[str, Any] = {
    "@type": "profile",
    "id": "0001-abcdef-123456",
    "customer_id": None,
    "email": None,
    "name": None,
    "prefix": None,
    "firstname": None,
    "middlename": None,
    "lastname": None,
    "suffix": None,
    "gender": None,
    "date_of_birth": None,
    "country_id": None,
    "country": None,
    "marketing_optin": None,
    "channels": {"sms": {"allow_marketing": None, "status": None, "pending_double_optin": False}},
    "seen": False,
    "identities": [],
    "lists": [],
    "dates": {
        "acquired": "2024-01-02T03:04:05+00:00",
        "first_purchase": None,
        "last_purchase": None,
        "first_seen": None,
        "last_seen": None,
        "last_email_click": None,
    },
    "stats": {
        "orders": 0,
        "orders_attempted": 0,
        "revenue": 0.0,
        "aov": 0.0,
        "total_items": 0,
        "visits": 0,
        "email_clicks": 0,
    },
    "tags": [],
    "properties": {},
}


def facts(**given: Any) -> Facts:
    """The facts of a profile: none but those ``given``."""
    base = Facts("0001-abcdef-123456", BEGAN, [], OrderStats(), [], [], {})
    return base._replace(**given)


def contact(n: int, **doc: Any) -> Contact:
    """The contact updated ``n``-th (a larger ``n`` is more recent), stored as ``doc``."""
    return Contact((BEGAN + timedelta(minutes=n), n), {"@type": "contact", "id": f"c{n}", **doc})


def dates(**changed: str | None) -> dict[str, str | None]:
    return {**EMPTY["dates"], **changed}


def stats(**changed: Any) -> dict[str, Any]:
    return {**EMPTY["stats"], **changed}


def names(**given: str) -> dict[str, str | None]:
    """The name fields: those given, the others None (``name`` as given)."""
    return {f: given.get(f) for f in ("name", "prefix", "firstname", "middlename", "lastname", "suffix")}


ANN = {"prefix": "Dr", "firstname": "Ann", "middlename": "Q", "lastname": "Lee", "suffix": "Jr"}

#: (the facts, the fields of the document that differ from EMPTY)
DOCUMENTS = [
    pytest.param(facts(), {}, id="no-facts"),
    # names: all from one contact, the most recent with a first or last name
    pytest.param(
        facts(contacts=[contact(1, **ANN)]),
        names(name="Ann Lee", **ANN),
        id="name-fields-from-the-contact",
    ),
    pytest.param(
        facts(contacts=[contact(2, firstname="Annie"), contact(1, **ANN)]),
        names(name="Annie", firstname="Annie"),
        id="names-all-from-the-most-recent-named-contact",
    ),
    pytest.param(
        facts(contacts=[contact(1, **ANN), contact(2, email="ann@example.com", gender="f")]),
        {**names(name="Ann Lee", **ANN), "email": "ann@example.com", "gender": "f"},
        id="a-newer-contact-without-names-does-not-clear-them",
    ),
    pytest.param(
        facts(contacts=[contact(1, lastname="Lee")]),
        names(name="Lee", lastname="Lee"),
        id="last-name-alone",
    ),
    pytest.param(
        facts(contacts=[contact(1, prefix="Dr", middlename="Q")]),
        {},
        id="no-first-or-last-name-no-name-fields",
    ),
    pytest.param(
        facts(
            contacts=[
                Contact((BEGAN, 7), {"firstname": "Seven"}),
                Contact((BEGAN, 9), {"firstname": "Nine"}),
                Contact((BEGAN, 8), {"firstname": "Eight"}),
            ]
        ),
        names(name="Nine", firstname="Nine"),
        id="same-update-time-the-later-stored-wins",
    ),
    # personal fields: each from the most recent contact that has it
    pytest.param(
        facts(
            contacts=[
                contact(3, country_id="FR"),
                contact(1, gender="f", date_of_birth="1990-01-02", country_id="GB"),
                contact(2, gender="m"),
            ]
        ),
        {"gender": "m", "date_of_birth": "1990-01-02", "country_id": "FR", "country": "FR"},
        id="personal-fields-each-from-the-most-recent-that-has-it",
    ),
    # email and identities
    pytest.param(
        facts(
            contacts=[contact(1, email="Ann@Example.com"), contact(2, email="other@example.com")],
            identities=[("email", "ann@example.com")],
        ),
        {"email": "ann@example.com", "identities": [{"id": "ann@example.com", "type": "email"}]},
        id="email-the-most-recent-the-profile-holds-lower-case",
    ),
    pytest.param(
        facts(
            contacts=[contact(1, email="old@example.com"), contact(2, email="new@example.com")],
            identities=[("email", "old@example.com"), ("email", "new@example.com")],
        ),
        {
            "email": "new@example.com",
            "identities": [
                {"id": "new@example.com", "type": "email"},
                {"id": "old@example.com", "type": "email"},
            ],
        },
        id="email-of-the-most-recent-contact-among-those-held",
    ),
    pytest.param(
        facts(contacts=[contact(1, email="older@example.com"), contact(2, email="shared@example.com")]),
        {"email": "shared@example.com"},
        id="email-none-held-the-most-recent-contact-s",
    ),
    pytest.param(
        facts(identities=[("email", "first@example.com"), ("email", "a-second@example.com")]),
        {
            "email": "first@example.com",
            "identities": [
                {"id": "a-second@example.com", "type": "email"},
                {"id": "first@example.com", "type": "email"},
            ],
        },
        id="email-no-contact-the-first-identity",
    ),
    pytest.param(
        facts(
            identities=[
                ("phone_number", "+447812122136"),
                ("customer_id", "c9"),
                ("email", "ann@example.com"),
                ("customer_id", "c1"),
            ]
        ),
        {
            "customer_id": "c9",
            "email": "ann@example.com",
            "identities": [
                {"id": "c1", "type": "customer_id"},
                {"id": "c9", "type": "customer_id"},
                {"id": "ann@example.com", "type": "email"},
                {"id": "+447812122136", "type": "phone_number"},
            ],
        },
        id="customer-id-its-first-identities-sorted",
    ),
    # lists and properties
    pytest.param(
        facts(lists=[("vip", "VIPs"), ("a-list", None)]),
        {
            "lists": [
                {"id": "a-list", "title": None, "type": "STATIC"},
                {"id": "vip", "title": "VIPs", "type": "STATIC"},
            ]
        },
        id="lists-static-by-id",
    ),
    pytest.param(
        facts(
            contacts=[
                contact(3, properties={"b": 3}),
                contact(1, properties={"a": 1, "b": 1, "c": {"x": 1}}),
                contact(2, properties={"b": 2, "c": {"y": 2}}),
            ]
        ),
        {"properties": {"a": 1, "b": 3, "c": {"y": 2}}},
        id="properties-merged-oldest-to-most-recent",
    ),
    # dates
    pytest.param(
        facts(
            contacts=[
                contact(1, timestamp_acquired="2020-05-01T10:00:00+00:00"),
                contact(2, timestamp_acquired="2019-03-04T05:06:07.250000+00:00"),
                contact(3),
            ]
        ),
        {"dates": dates(acquired="2019-03-04T05:06:07+00:00")},
        id="acquired-the-earliest-of-the-contacts",
    ),
    pytest.param(
        facts(
            stats=OrderStats(2, 2, 30.0, 5, "2023-01-02T03:04:05.123456+00:00", "2023-06-07T08:09:10+00:00"),
            clicks=(4, datetime(2024, 2, 3, 4, 5, 6, 999999, tzinfo=UTC)),
            visits=(
                3,
                datetime(2024, 2, 1, 0, 0, 1, tzinfo=UTC),
                datetime(2024, 2, 9, 23, 59, 59, tzinfo=UTC),
            ),
        ),
        {
            "dates": dates(
                first_purchase="2023-01-02T03:04:05+00:00",
                last_purchase="2023-06-07T08:09:10+00:00",
                first_seen="2024-02-01T00:00:01+00:00",
                last_seen="2024-02-09T23:59:59+00:00",
                last_email_click="2024-02-03T04:05:06+00:00",
            ),
            "stats": stats(
                orders=2, orders_attempted=2, revenue=30.0, aov=15.0, total_items=5, visits=3, email_clicks=4
            ),
        },
        id="purchases-visits-and-clicks",
    ),
    # stats
    pytest.param(
        facts(stats=OrderStats(attempted=4, orders=3, revenue=100.0, items=7)),
        {"stats": stats(orders=3, orders_attempted=4, revenue=100.0, aov=33.33, total_items=7)},
        id="aov-rounded-to-cents",
    ),
    pytest.param(
        facts(stats=OrderStats(attempted=1, orders=1, revenue=12.3456, items=1)),
        {"stats": stats(orders=1, orders_attempted=1, revenue=12.35, aov=12.35, total_items=1)},
        id="revenue-rounded-to-cents",
    ),
    pytest.param(
        facts(stats=OrderStats(attempted=2, orders=0)),
        {"stats": stats(orders_attempted=2)},
        id="no-counted-order-aov-zero",
    ),
    pytest.param(
        facts(stats=OrderStats(attempted=2, orders=2, revenue=-10.0)),
        {"stats": stats(orders=2, orders_attempted=2, revenue=-10.0, aov=-5.0)},
        id="refunds-make-revenue-negative",
    ),
    # consent
    pytest.param(
        facts(consent={"email": (SUBSCRIBED, AT)}), {"marketing_optin": True}, id="email-subscribed"
    ),
    pytest.param(
        facts(consent={"email": (UNSUBSCRIBED, AT)}), {"marketing_optin": False}, id="email-unsubscribed"
    ),
    pytest.param(facts(consent={"email": (NOT_SPECIFIED, AT)}), {}, id="email-cleared"),
    pytest.param(
        facts(consent={"sms": (SUBSCRIBED, AT)}),
        {
            "channels": {
                "sms": {"allow_marketing": True, "status": "subscribed", "pending_double_optin": False}
            }
        },
        id="sms-subscribed",
    ),
    pytest.param(
        facts(consent={"sms": (PENDING, AT)}),
        {"channels": {"sms": {"allow_marketing": False, "status": "pending", "pending_double_optin": True}}},
        id="sms-pending-double-optin",
    ),
    pytest.param(
        facts(consent={"sms": (UNSUBSCRIBED, AT), "email": (SUBSCRIBED, AT)}),
        {
            "marketing_optin": True,
            "channels": {
                "sms": {"allow_marketing": False, "status": "unsubscribed", "pending_double_optin": False}
            },
        },
        id="sms-unsubscribed-email-subscribed",
    ),
    # the website tag fills only the fields no contact has
    pytest.param(
        facts(tag={"firstname": "Tia", "lastname": "Tag", "gender": "f", "country_id": "FR"}),
        {
            **names(name="Tia Tag", firstname="Tia", lastname="Tag"),
            "gender": "f",
            "country_id": "FR",
            "country": "FR",
        },
        id="tag-alone",
    ),
    pytest.param(
        facts(
            contacts=[contact(1, firstname="Ann", gender="m")],
            tag={"firstname": "Tia", "lastname": "Tag", "gender": "f"},
        ),
        {**names(name="Ann Tag", firstname="Ann", lastname="Tag"), "gender": "m"},
        id="a-contact-s-field-always-wins-the-tag-fills-the-others",
    ),
    pytest.param(
        facts(
            contacts=[contact(1, firstname="Ann"), contact(2, middlename="Q")],
            tag={"middlename": "Tagged"},
        ),
        names(name="Ann", firstname="Ann"),
        id="a-field-any-contact-has-is-never-the-tag-s",
    ),
]


@pytest.mark.parametrize(("given", "changed"), DOCUMENTS)
def test_document(given: Facts, changed: dict[str, Any]) -> None:
    assert msgspec.to_builtins(document(given)) == {**EMPTY, **changed}


@pytest.mark.parametrize(
    ("d", "found"),
    [
        pytest.param({}, {}, id="no-profile"),
        pytest.param({"profile": "Ann"}, {}, id="profile-not-an-object"),
        pytest.param(
            {
                "profile": {
                    "prefix": "Dr",
                    "firstname": "Ann",
                    "middlename": "Q",
                    "lastname": "Lee",
                    "suffix": "Jr",
                }
            },
            {"prefix": "Dr", "firstname": "Ann", "middlename": "Q", "lastname": "Lee", "suffix": "Jr"},
            id="names",
        ),
        pytest.param({"profile": {"firstname": "  Ann  "}}, {"firstname": "Ann"}, id="trimmed"),
        pytest.param(
            {"profile": {"firstname": "Mary Ann"}}, {"firstname": "Mary Ann"}, id="inner-space-kept"
        ),
        pytest.param({"profile": {"firstname": "   "}}, {}, id="blank"),
        pytest.param(
            {"profile": {"firstname": "null", "lastname": "undefined"}}, {}, id="javascript-nothing"
        ),
        pytest.param({"profile": {"firstname": "x" * 255}}, {"firstname": "x" * 255}, id="255-characters"),
        pytest.param({"profile": {"firstname": "x" * 256}}, {}, id="256-characters"),
        pytest.param({"profile": {"firstname": "A\tnn", "lastname": "L\x85ee"}}, {}, id="control-characters"),
        pytest.param({"profile": {"lastname": "L\u2028ee"}}, {}, id="line-separator"),
        pytest.param(
            {"profile": {"lastname": "Lee\u2028"}},
            {"lastname": "Lee"},
            id="line-separator-at-the-end-trimmed",
        ),
        pytest.param({"profile": {"firstname": ["Ann"]}}, {}, id="not-text"),
        pytest.param({"profile": {"gender": "F"}}, {"gender": "f"}, id="gender-letter-any-case"),
        pytest.param({"profile": {"gender": " Male "}}, {"gender": "m"}, id="gender-word"),
        pytest.param({"profile": {"gender": "OTHER"}}, {"gender": "o"}, id="gender-other"),
        pytest.param({"profile": {"gender": "x"}}, {}, id="gender-unknown"),
        pytest.param(
            {"profile": {"date_of_birth": "1990-02-28"}}, {"date_of_birth": "1990-02-28"}, id="date"
        ),
        pytest.param({"profile": {"date_of_birth": "1990-02-30"}}, {}, id="date-not-real"),
        pytest.param({"profile": {"date_of_birth": "02/01/1990"}}, {}, id="date-not-iso"),
        pytest.param({"profile": {"date_of_birth": "1990-02-28T00:00:00"}}, {}, id="date-with-time"),
        pytest.param({"profile": {"country_id": "gb"}}, {"country_id": "GB"}, id="country-upper-cased"),
        pytest.param({"profile": {"country_id": "GBR"}}, {}, id="country-alpha-3"),
        pytest.param({"profile": {"country_id": "XX"}}, {}, id="country-unknown"),
        pytest.param({"profile": {"country_id": "\u0131t"}}, {}, id="country-not-ascii"),
        pytest.param(
            {
                "profile": {
                    "email": "ann@example.com",
                    "customer_id": "c1",
                    "phone_number": "+447812122136",
                    "vip": "1",
                }
            },
            {},
            id="identifiers-and-other-keys-give-nothing",
        ),
    ],
)
def test_tag_profile(d: dict[str, Any], found: dict[str, str]) -> None:
    assert tag_profile(d) == found


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param(None, None, id="none"),
        pytest.param("2015-11-03T11:48:10+00:00", "2015-11-03T11:48:10+00:00", id="utc"),
        pytest.param(
            "2015-11-03T11:48:10.999999+00:00", "2015-11-03T11:48:10+00:00", id="fraction-cut-not-rounded"
        ),
        pytest.param("2015-11-03 11:48:10+00:00", "2015-11-03T11:48:10+00:00", id="space-separator"),
        pytest.param("2015-11-03T11:48:10Z", "2015-11-03T11:48:10+00:00", id="zulu"),
        pytest.param(
            datetime(2015, 11, 3, 11, 48, 10, 5, tzinfo=UTC), "2015-11-03T11:48:10+00:00", id="datetime"
        ),
        pytest.param(
            datetime(2015, 11, 3, 11, 48, 10, tzinfo=UTC), "2015-11-03T11:48:10+00:00", id="whole-second"
        ),
    ],
)
def test_second(value: str | datetime | None, shown: str | None) -> None:
    assert second(value) == shown
