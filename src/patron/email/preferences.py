"""The preference centre: a person's marketing choices by email and SMS, behind a signed per-profile
link (``links.preferences_url``). Saving records a change for each channel whose box the person
changed, as type ``preferences_centre`` (reference section 5.8), in order with the account's pushes;
a save that does not carry the page's form token (``links.Owner.form_token``) changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import msgspec
from sqlalchemy import Connection, select

from patron.email import links
from patron.profiles.build import survivor
from patron.profiles.operations import addresses_of
from patron.profiles.requests import Preferences
from patron.store.schema import profiles

GONE = "This link is no longer valid."


@dataclass(frozen=True)
class Choices:
    """What the page shows: where the person can be reached, and whether marketing goes there."""

    account_id: int
    profile_id: str  # as the link names it
    email: str | None
    email_on: bool
    phone: str | None
    sms_on: bool
    form_token: str  # what the page's form carries, and a save must send back


def current(conn: Connection, account_hash: str, token: str) -> Choices:
    """The choices a link opens (``links.Refused`` for a link not made here, or an anonymised
    profile)."""
    owner = links.verify_preferences(conn, account_hash, token)
    live = survivor(conn, owner.account_id, owner.profile_id, anonymised=False)
    if live is None:
        raise links.Refused(GONE)
    p = profiles
    data = conn.execute(
        select(p.c.data).where(p.c.account_id == owner.account_id, p.c.profile_id == live)
    ).scalar()
    document: dict[str, Any] = msgspec.json.decode(data or "{}")
    addresses = addresses_of(conn, owner.account_id, live)
    return Choices(
        owner.account_id,
        owner.profile_id,
        addresses["email"],
        document.get("marketing_optin") is True,
        addresses["sms"],
        (document.get("channels") or {}).get("sms", {}).get("status") == "subscribed",
        owner.form_token,
    )


def changes(choices: Choices, form: dict[str, list[str]]) -> tuple[Preferences, Choices]:
    """What a submitted form changes (a box whose state differs from the one shown), and the choices
    the person now sees; ``links.Forbidden`` for a form without the page's token."""
    links.check_form(choices.form_token, form.get("form_token", [""])[0])
    wanted: dict[str, bool | None] = {}
    for channel, address in (("email", choices.email), ("sms", choices.phone)):
        shown = form.get(f"{channel}_shown", [""])[0]
        ticked = form.get(channel, [""])[0] == "on"
        wanted[channel] = ticked if address and shown in ("on", "off") and ticked != (shown == "on") else None
    after = replace(
        choices,
        email_on=choices.email_on if wanted["email"] is None else wanted["email"],
        sms_on=choices.sms_on if wanted["sms"] is None else wanted["sms"],
    )
    return Preferences(choices.profile_id, wanted["email"], wanted["sms"]), after
