"""The rules over contacts: no marketing opt-in at all, a subscription date without an opt-in, one
email under several customer ids, and phone numbers not valid for their country."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func

from patron.model import defects
from patron.report.rules import Context, Kept, Tally, rule, several
from patron.store.schema import contact_flags, contacts


def _id(row: Any) -> str:
    """A contact's id in the report: ``collection/id`` outside the default collection."""
    return str(row.contact_id) if row.collection == "default" else f"{row.collection}/{row.contact_id}"


KEPT = Kept(contact_flags, contacts, _id)


KEPT.rule(
    defects.NO_MARKETING_OPTIN,
    "warning",
    "Contacts have no marketing_optin at all, so whether they may be emailed is unknown.",
    "Send marketing_optin (EXPLICITLY_OPTEDIN, EXPLICITLY_OPTEDOUT or NOT_SPECIFIED) with every contact.",
)

KEPT.rule(
    defects.SUBSCRIBED_WITHOUT_OPTIN,
    "warning",
    "Contacts have a timestamp_subscribed but no marketing opt-in.",
    "Send marketing_optin EXPLICITLY_OPTEDIN with the contacts that subscribed, or no subscription date.",
)


@rule(
    "contacts.email_customer_ids",
    "warning",
    "One email is under several customer ids.",
    "Give each person one customer id, or check the shop does not reuse an email across accounts.",
)
def email_customer_ids(ctx: Context, tally: Tally) -> None:
    several(ctx, tally, contacts, func.lower(contacts.c.email), contacts.c.customer_id)


KEPT.rule(
    defects.INVALID_PHONE,
    "warning",
    "Contacts have a phone number that is not valid (for their country_id, when they give one).",
    "Send phone numbers in E.164 (+ and the country code), checked against the contact's country.",
)
