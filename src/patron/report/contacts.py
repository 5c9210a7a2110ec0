"""The rules over contacts: no marketing opt-in at all, a subscription date without an opt-in, one
email under several customer ids, and phone numbers not valid for their country."""

from __future__ import annotations

from typing import Any

import phonenumbers
from sqlalchemy import func

from patron.report.rules import Context, Tally, document, rule, scan, several
from patron.store.schema import contacts

OPTED_IN: tuple[Any, ...] = ("EXPLICITLY_OPTEDIN", True)


def _id(row: Any) -> str:
    """A contact's id in the report: ``collection/id`` outside the default collection."""
    return str(row.contact_id) if row.collection == "default" else f"{row.collection}/{row.contact_id}"


@rule(
    "contacts.no_marketing_optin",
    "warning",
    "Contacts have no marketing_optin at all, so whether they may be emailed is unknown.",
    "Send marketing_optin (EXPLICITLY_OPTEDIN, EXPLICITLY_OPTEDOUT or NOT_SPECIFIED) with every contact.",
)
def no_marketing_optin(ctx: Context, tally: Tally) -> None:
    c = contacts.c
    for row in scan(ctx, contacts, c.contact_id, c.collection, c.data):
        if document(row.data).get("marketing_optin") is None:
            tally.add(_id(row))


@rule(
    "contacts.subscribed_without_optin",
    "warning",
    "Contacts have a timestamp_subscribed but no marketing opt-in.",
    "Send marketing_optin EXPLICITLY_OPTEDIN with the contacts that subscribed, or no subscription date.",
)
def subscribed_without_optin(ctx: Context, tally: Tally) -> None:
    c = contacts.c
    for row in scan(ctx, contacts, c.contact_id, c.collection, c.data):
        contact = document(row.data)
        if contact.get("timestamp_subscribed") and contact.get("marketing_optin") not in OPTED_IN:
            tally.add(_id(row), contact.get("marketing_optin"))


@rule(
    "contacts.email_customer_ids",
    "warning",
    "One email is under several customer ids.",
    "Give each person one customer id, or check the shop does not reuse an email across accounts.",
)
def email_customer_ids(ctx: Context, tally: Tally) -> None:
    several(ctx, tally, contacts, func.lower(contacts.c.email), contacts.c.customer_id)


def valid_phone(number: str, country: str | None) -> bool:
    """Whether ``number`` (E.164) is a valid number, of ``country`` when the contact gives one."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    if country:
        return phonenumbers.is_valid_number_for_region(parsed, country.upper())
    return phonenumbers.is_valid_number(parsed)


@rule(
    "contacts.invalid_phone",
    "warning",
    "Contacts have a phone number that is not valid (for their country_id, when they give one).",
    "Send phone numbers in E.164 (+ and the country code), checked against the contact's country.",
)
def invalid_phone(ctx: Context, tally: Tally) -> None:
    c = contacts.c
    with_phone = c.phone_number.is_not(None)
    for row in scan(ctx, contacts, c.contact_id, c.collection, c.phone_number, c.data, where=with_phone):
        country = document(row.data).get("country_id")
        if not valid_phone(row.phone_number, country if isinstance(country, str) else None):
            tally.add(_id(row), {"phone_number": row.phone_number, "country_id": country})
