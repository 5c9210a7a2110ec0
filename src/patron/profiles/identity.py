"""Identifiers: which values of a record can join it to a profile.

A profile is found by ``customer_id``, then email, then phone number (only when the account turns phone
matching on). Values that many unrelated people send by mistake (:data:`JUNK`) never join anything:
the peers' worst identity bugs came from ids like ``null`` or ``anonymous`` merging everyone.
"""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any, Final, Literal

Kind = Literal["customer_id", "email", "phone_number"]
#: The order in which identifiers are tried.
ORDER: Final[tuple[Kind, ...]] = ("customer_id", "email", "phone_number")
#: Values that never identify anyone (compared after trimming, case-insensitively). The one list.
JUNK: Final = frozenset(
    {"", "null", "none", "nil", "undefined", "nan", "0", "-1", "anonymous", "unknown", "test", "n/a"}
)


def normalise(kind: Kind, value: Any) -> str | None:
    """The identifier as it is matched (emails in lower case), or None when it identifies no one."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if text.lower() in JUNK:
        return None
    return text.lower() if kind == "email" else text


def identifiers(customer_id: Any, email: Any, phone_number: Any, *, match_phone: bool) -> dict[Kind, str]:
    """The usable identifiers among the given values, in matching order."""
    found: dict[Kind, str] = {}
    for kind, value in zip(ORDER, (customer_id, email, phone_number), strict=True):
        if kind == "phone_number" and not match_phone:
            continue
        normal = normalise(kind, value)
        if normal is not None:
            found[kind] = normal
    return found


#: Profile ids are unique, not secret (reading a profile takes the account's key; the links that name
#: one are signed): the low 40 bits count up from a random start, so two ids of one process never
#: collide, and two processes only if their counts, 2**40 apart at random, meet.
_counter = itertools.count(secrets.randbits(40))


def new_profile_id() -> str:
    """A fresh public profile id, shaped like Ometria's (``6927-a0c4e2-4aaf58``): six hex digits of
    the second it was made in, then ten of the count.

    Ids made together sort together, so the indexes keyed on profiles (the profiles', identities' and
    orders') grow at one end instead of at random places, where a round of new customers rewrote a
    page of each for nearly every profile it made (bench/apply.py --customers distinct: 7,900 to
    9,700 records/s; docs/performance.md).
    """
    digits = f"{int(time.time()) & 0xFFFFFF:06x}{next(_counter) & 0xFFFFFFFFFF:010x}"
    return f"{digits[:4]}-{digits[4:10]}-{digits[10:16]}"
