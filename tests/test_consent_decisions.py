"""Consent decisions as pure functions (docs/compatibility.md, "Consent"): what a pushed contact's
``marketing_optin`` is (``email_status``), what it does to the profile's email consent
(``email_decision``: the change to record and the fields of the contact to set instead of the pushed
ones), and the SMS status a contact pushed to ``optin:sms`` or ``double_optin:sms`` asks for
(``sms_status``).

A unit test: no app, no store (``test_consent`` checks the same rules through HTTP).
"""

from __future__ import annotations

from typing import Any

import pytest

from patron.profiles.consent import (
    CONTROLLED,
    NOT_SPECIFIED,
    PENDING,
    SUBSCRIBED,
    UNSUBSCRIBED,
    Decision,
    Latest,
    email_decision,
    email_status,
    sms_status,
)

pytestmark = pytest.mark.unit

IN, OUT, UNSET = "EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", "NOT_SPECIFIED"
#: The decision that changes nothing: no change recorded, the contact stored as pushed.
NOTHING = Decision(None, None, {})


def test_the_sources_that_outrank_the_api_are_the_operator_the_preference_centre_and_email_links() -> None:
    assert frozenset({"app", "preferences_centre", "list_unsubscribe", "link_unsubscribe"}) == CONTROLLED


@pytest.mark.parametrize(
    ("value", "status"),
    [
        pytest.param(IN, SUBSCRIBED, id="optedin"),
        pytest.param(True, SUBSCRIBED, id="true"),
        pytest.param(OUT, UNSUBSCRIBED, id="optedout"),
        pytest.param(False, UNSUBSCRIBED, id="false"),
        pytest.param(UNSET, NOT_SPECIFIED, id="not-specified"),
        pytest.param(None, None, id="null"),
        pytest.param("explicitly_optedin", None, id="lower-case-is-no-status"),
        pytest.param(1, None, id="one-is-not-true"),
        pytest.param(0, None, id="zero-is-not-false"),
        pytest.param("true", None, id="string-true"),
    ],
)
def test_email_status(value: Any, status: str | None) -> None:
    assert email_status(value) == status


def contact(optin: Any = None, **fields: Any) -> dict[str, Any]:
    """A pushed (or stored) contact, with ``marketing_optin`` when ``optin`` is given."""
    doc: dict[str, Any] = {"@type": "contact", "id": "c1", "email": "ann@example.com", **fields}
    if optin is not None:
        doc["marketing_optin"] = optin
    return doc


FORCED = {"@force_optin": True}

#: (pushed record, the contact stored before it, the profile's latest email consent, the decision)
EMAIL_DECISIONS = [
    # no status given: nothing changes
    pytest.param(contact(), contact(IN), None, NOTHING, id="no-optin-leaves-the-status"),
    pytest.param(
        contact(None, marketing_optin=None), contact(IN), Latest(SUBSCRIBED, "api"), NOTHING, id="null-optin"
    ),
    pytest.param(
        contact(None, timestamp_subscribed="2024-01-01T00:00:00+00:00"),
        None,
        None,
        NOTHING,
        id="a-timestamp-without-optin-changes-no-status",
    ),
    # a new contact
    pytest.param(contact(IN), None, None, Decision(SUBSCRIBED, "timestamp_subscribed", {}), id="new-optedin"),
    pytest.param(contact(True), None, None, Decision(SUBSCRIBED, "timestamp_subscribed", {}), id="new-true"),
    pytest.param(
        contact(OUT), None, None, Decision(UNSUBSCRIBED, "timestamp_unsubscribed", {}), id="new-optedout"
    ),
    pytest.param(
        contact(False), None, None, Decision(UNSUBSCRIBED, "timestamp_unsubscribed", {}), id="new-false"
    ),
    pytest.param(contact(UNSET), None, None, NOTHING, id="new-not-specified-has-nothing-to-clear"),
    # a stored contact: only a real change is recorded
    pytest.param(contact(IN), contact(IN), Latest(SUBSCRIBED, "api"), NOTHING, id="repeat"),
    pytest.param(
        contact(IN), contact(True), Latest(SUBSCRIBED, "api"), NOTHING, id="repeat-in-the-older-form"
    ),
    pytest.param(
        contact(OUT),
        contact(IN),
        Latest(SUBSCRIBED, "api"),
        Decision(UNSUBSCRIBED, "timestamp_unsubscribed", {}),
        id="in-to-out",
    ),
    pytest.param(
        contact(True),
        contact(False),
        Latest(UNSUBSCRIBED, "api"),
        Decision(SUBSCRIBED, "timestamp_subscribed", {}),
        id="false-to-true",
    ),
    pytest.param(
        contact(UNSET), contact(IN), Latest(SUBSCRIBED, "api"), Decision(NOT_SPECIFIED, None, {}), id="clears"
    ),
    pytest.param(contact(UNSET), contact(UNSET), Latest(NOT_SPECIFIED, "api"), NOTHING, id="clear-repeated"),
    pytest.param(
        contact(UNSET),
        None,
        Latest(SUBSCRIBED, "api"),
        Decision(NOT_SPECIFIED, None, {}),
        id="a-new-contact-not-specified-clears-another-contact-s-status",
    ),
    pytest.param(
        contact(IN),
        contact(IN),
        Latest(UNSUBSCRIBED, "api"),
        NOTHING,
        id="this-contact-unchanged-another-contact-s-unsubscribe-stands",
    ),
    pytest.param(
        contact(IN),
        None,
        Latest(UNSUBSCRIBED, "api"),
        Decision(SUBSCRIBED, "timestamp_subscribed", {}),
        id="a-new-contact-over-an-api-status",
    ),
    # a source Ometria controls set the status: the push is outranked, the contact keeps its old value
    pytest.param(
        contact(IN),
        contact(OUT),
        Latest(UNSUBSCRIBED, "app"),
        Decision(None, None, {"marketing_optin": OUT}),
        id="outranked-contact-keeps-its-value",
    ),
    pytest.param(
        contact(IN),
        None,
        Latest(UNSUBSCRIBED, "preferences_centre"),
        Decision(None, None, {"marketing_optin": None}),
        id="outranked-new-contact-keeps-none",
    ),
    pytest.param(
        contact(OUT),
        contact(IN),
        Latest(UNSUBSCRIBED, "link_unsubscribe"),
        NOTHING,
        id="agreeing-with-the-controlled-status-records-nothing",
    ),
    pytest.param(
        contact(UNSET),
        contact(OUT),
        Latest(UNSUBSCRIBED, "list_unsubscribe"),
        Decision(None, None, {"marketing_optin": OUT}),
        id="outranked-clear",
    ),
    pytest.param(
        contact(IN, **{"@force_optin": False}),
        contact(OUT),
        Latest(UNSUBSCRIBED, "app"),
        Decision(None, None, {"marketing_optin": OUT}),
        id="force-optin-false-does-not-win",
    ),
    pytest.param(
        contact(IN, **{"@force_optin": "true"}),
        contact(OUT),
        Latest(UNSUBSCRIBED, "app"),
        Decision(None, None, {"marketing_optin": OUT}),
        id="force-optin-string-does-not-win",
    ),
    # ... unless the record has "@force_optin": true
    pytest.param(
        contact(IN, **FORCED),
        contact(OUT),
        Latest(UNSUBSCRIBED, "app"),
        Decision(SUBSCRIBED, "timestamp_subscribed", {}),
        id="forced-wins",
    ),
    pytest.param(
        contact(IN, **FORCED),
        contact(IN),
        Latest(UNSUBSCRIBED, "app"),
        Decision(SUBSCRIBED, "timestamp_subscribed", {}),
        id="forced-wins-over-the-profile-when-the-contact-is-unchanged",
    ),
    pytest.param(
        contact(IN, **FORCED),
        contact(IN),
        Latest(SUBSCRIBED, "app"),
        NOTHING,
        id="forced-repeat-records-nothing",
    ),
    pytest.param(
        contact(IN, **FORCED),
        None,
        None,
        Decision(SUBSCRIBED, "timestamp_subscribed", {}),
        id="forced-on-a-new-profile",
    ),
]


@pytest.mark.parametrize(("record", "before", "latest", "decision"), EMAIL_DECISIONS)
def test_email_decision(
    record: dict[str, Any], before: dict[str, Any] | None, latest: Latest | None, decision: Decision
) -> None:
    assert email_decision(record, before, latest) == decision


@pytest.mark.parametrize("source", sorted(CONTROLLED))
def test_every_controlled_source_outranks_a_push(source: str) -> None:
    assert email_decision(contact(IN), contact(OUT), Latest(UNSUBSCRIBED, source)) == Decision(
        None, None, {"marketing_optin": OUT}
    )


def sms(allow: Any = None, **more: Any) -> dict[str, Any]:
    """A contact pushed with ``channels.sms`` (``allow`` as its ``allow_marketing``, when given)."""
    given = {**({} if allow is None else {"allow_marketing": allow}), **more}
    return contact(phone_number="+447812122136", channels={"sms": given})


WHEN = "2024-05-01T10:00:00+00:00"

#: (collection, pushed contact, the SMS status asked for and its date, or None)
SMS = [
    pytest.param("optin:sms", sms(True), (PENDING, None), id="optin-asks-for-a-double-optin"),
    pytest.param("optin:sms", sms(True, dt_updated_marketing=WHEN), (PENDING, WHEN), id="optin-dated"),
    pytest.param("optin:sms", sms(False), (UNSUBSCRIBED, None), id="optin-false-unsubscribes"),
    pytest.param("double_optin:sms", sms(True), (SUBSCRIBED, None), id="double-optin-subscribes"),
    pytest.param(
        "double_optin:sms",
        sms(False, dt_updated_marketing=WHEN),
        (UNSUBSCRIBED, WHEN),
        id="double-optin-false",
    ),
    pytest.param("default", sms(True), None, id="another-collection-is-ignored"),
    pytest.param("default", sms(False), None, id="another-collection-false-is-ignored"),
    pytest.param("OPTIN:SMS", sms(True), None, id="collection-names-are-exact"),
    pytest.param("optin:sms", contact(), None, id="no-channels"),
    pytest.param("optin:sms", contact(channels=None), None, id="channels-null"),
    pytest.param("optin:sms", contact(channels={}), None, id="no-sms"),
    pytest.param("optin:sms", sms(dt_updated_marketing=WHEN), None, id="no-allow-marketing"),
    pytest.param("double_optin:sms", sms("true"), None, id="allow-marketing-not-a-boolean"),
    pytest.param("optin:sms", sms(None, allow_transactional=True), None, id="transactional-alone"),
]


@pytest.mark.parametrize(("collection", "record", "expected"), SMS)
def test_sms_status(collection: str, record: dict[str, Any], expected: tuple[str, str | None] | None) -> None:
    assert sms_status(collection, record) == expected
