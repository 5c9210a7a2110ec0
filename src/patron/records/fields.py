"""Field types of the wire records, and the checks msgspec cannot express as a constraint.

Each constrained type is an ``Annotated`` msgspec type, so a wrong value fails during decoding with
its exact path. Checks that need code (a currency in ISO 4217, a real calendar date, a timestamp's
offset) are part of the type too: its annotation carries a :class:`Check`, and every record Struct
with such a field runs the check in its ``__post_init__`` (written by :func:`post_init` from the
annotations, ``records.types.Part``), which also normalises values (ids to strings, timestamps to
UTC). A timestamp without an offset is read as UTC and counted in :data:`READINGS`, or refused while
validation tries records at their first, quick reading.
"""

from __future__ import annotations

import re
import threading
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Annotated, Any, Final

import pycountry
from msgspec import UNSET, Meta

from patron.errors import FieldInvalid

#: The longest id a client gives (a record's, a list's, an identity's value): an id column's width.
MAX_ID_LENGTH: Final = 512
#: The longest id Patron makes and a client quotes back (a profile id, a request or job id, a message
#: id): a longer one cannot be one of ours.
MAX_MADE_ID_LENGTH: Final = 64
#: The longest free text of a record or a request (a name, a comment, a description).
MAX_TEXT_LENGTH: Final = 4096
#: The longest name or title a client gives something (a contact collection, a list, a template).
MAX_NAME_LENGTH: Final = 200
#: Ometria's limit on one record, and its error text.
MAX_RECORD_BYTES: Final = 60_000
RECORD_TOO_LARGE: Final = "Payload invalid: Record is too large."

CURRENCIES: Final = frozenset(c.alpha_3 for c in pycountry.currencies)
COUNTRIES: Final = frozenset(c.alpha_2 for c in pycountry.countries)

# The patterns are written to mean the same in Python's ``re`` (the server) and in ECMA-262 (the
# OpenAPI document a client validates with): whitespace is spelled out (``\s`` differs between the
# two), digits are ``[0-9]`` (Python's ``\d`` takes any script's digits), and each ends with
# ``$(?!\n)`` because ``$`` alone also matches before a final newline.
# NUL is refused with the whitespace: a PostgreSQL text column cannot hold it.
_WS: Final = r"\x00\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
ID_PATTERN: Final = rf"^[^{_WS}]+$(?!\n)"
EMAIL_PATTERN: Final = rf"^[^@{_WS}]+@[^@{_WS}]+\.[^@.{_WS}]+$(?!\n)"
#: E.164: a plus sign and up to 15 digits, the first not zero.
PHONE_PATTERN: Final = r"^\+[1-9][0-9]{6,14}$(?!\n)"
CURRENCY_PATTERN: Final = r"^[A-Za-z]{3}$(?!\n)"
COUNTRY_PATTERN: Final = r"^[A-Za-z]{2}$(?!\n)"
#: ISO 8601 date and time, ``T`` or a space between them, seconds and a fraction of any length
#: optional, with an offset (``Z``, ``+00:00``, ``+0000`` or ``+00``) or without one (read as UTC).
TIMESTAMP_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
    r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)?$(?!\n)"
)
DAY_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$(?!\n)"
#: A contact collection: like an id, and without "/" (it is a segment of /v2/contacts/{collection}/{id}).
COLLECTION_PATTERN: Final = rf"^[^/{_WS}]+$(?!\n)"


@dataclass(frozen=True)
class Check:
    """In a field type's ``Annotated`` metadata: the check (and normalisation) a record Struct runs on
    a field of that type after decoding, by ``kind``: ``"id"`` (a number becomes a string) or a key
    of :data:`FIXES`. msgspec ignores it; :func:`checks_of` finds it."""

    kind: str


ID_CHECK: Final = Check("id")
TIMESTAMP_CHECK: Final = Check("timestamp")
DAY_CHECK: Final = Check("day")
CURRENCY_CHECK: Final = Check("currency")
COUNTRY_CHECK: Final = Check("country")

#: An id: a string without whitespace (a number is accepted and stored as a string).
Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN), ID_CHECK] | int
Text = Annotated[str, Meta(max_length=MAX_TEXT_LENGTH)]
#: Text without NUL, which a PostgreSQL text column cannot hold (nor match in a query).
NO_NUL_PATTERN: Final = r"^[^\x00]*$(?!\n)"
#: A name that becomes a column (``event_type``).
Name = Annotated[str, Meta(min_length=1, max_length=32, pattern=NO_NUL_PATTERN)]
Collection = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LENGTH, pattern=COLLECTION_PATTERN)]
Email = Annotated[str, Meta(max_length=254, pattern=EMAIL_PATTERN)]
Phone = Annotated[str, Meta(pattern=PHONE_PATTERN)]
# Either case is accepted (and stored upper-case); the document lists the upper-case codes.
# The pattern is the OpenAPI document's only: the server's check (below) looks the code up, which
# refuses what the pattern would, for one regular expression less per field (bench/micro: validation).
Currency = Annotated[
    str, Meta(extra_json_schema={"pattern": CURRENCY_PATTERN, "enum": sorted(CURRENCIES)}), CURRENCY_CHECK
]
Country = Annotated[
    str, Meta(extra_json_schema={"pattern": COUNTRY_PATTERN, "enum": sorted(COUNTRIES)}), COUNTRY_CHECK
]
Timestamp = Annotated[str, Meta(pattern=TIMESTAMP_PATTERN), TIMESTAMP_CHECK]
Day = Annotated[str, Meta(pattern=DAY_PATTERN), DAY_CHECK]
Money = float
Quantity = Annotated[int, Meta(ge=0)]
Properties = dict[str, Any]

_TS = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?"
    r"(?:(Z|z)|([+-])([0-9]{2}):?([0-9]{2})?)?$"
)


class Readings(threading.local):
    """How this thread's checks take a timestamp without an offset.

    ``lenient`` (the default): read as UTC and counted in ``no_offset``. Validation turns it off for
    its first try at each record, where such a timestamp then fails the record at no cost to the
    others, and decodes that record again with it on, to find the timestamps and say where they are.
    """

    lenient = True
    no_offset = 0


READINGS: Final = Readings()


def utc_timestamp(value: str) -> str:
    """``2018-04-19T09:00:00+01`` -> ``2018-04-19T08:00:00+00:00``; raises ValueError if not a moment.

    A timestamp without an offset is read as UTC and counted in :data:`READINGS` (refused when
    ``READINGS.lenient`` is off); a fraction of a second is cut to microseconds (``.1234567`` is
    ``.123456``). Only strings that already match :data:`TIMESTAMP_PATTERN` come here.
    """
    zulu = value[-1] in "Zz"
    if not (zulu or (value[-6] in "+-" and value[-3] == ":" and value[-2] < "6")):
        return _utc_timestamp(value)
    try:  # the common forms (Z or +hh:mm), in C
        moment = datetime.fromisoformat(value)
    except ValueError:
        return _utc_timestamp(value)
    if moment.tzinfo is None:  # pragma: no cover - the test above leaves only values with an offset
        return _utc_timestamp(value)
    try:
        return moment.astimezone(UTC).isoformat()
    except OverflowError as exc:  # year 1 or 9999 shifted out of range by its offset
        raise ValueError("out of the representable range") from exc


def _utc_timestamp(value: str) -> str:
    """The forms ``datetime.fromisoformat`` does not read (``+00``, no offset, long fractions...)."""
    m = _TS.match(value)
    if m is None:
        raise ValueError("not an ISO 8601 timestamp")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = m.groups()
    naive = sign is None and not zulu
    if naive and not READINGS.lenient:
        raise ValueError("no offset")
    offset = timedelta(0)
    if sign is not None:
        if int(off_m or 0) > 59:
            raise ValueError("offset minutes over 59")
        offset = timedelta(hours=int(off_h), minutes=int(off_m or 0))
        if sign == "-":
            offset = -offset
    micro = int((fraction or "0").ljust(6, "0")[:6])
    moment = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, timezone(offset)
    )
    try:
        read = moment.astimezone(UTC).isoformat()
    except OverflowError as exc:  # year 1 or 9999 shifted out of range by its offset
        raise ValueError("out of the representable range") from exc
    if naive:
        READINGS.no_offset += 1
    return read


def _timestamp(field: str, value: str) -> str:
    try:
        return utc_timestamp(value)
    except ValueError as exc:
        raise FieldInvalid(field, f"{value!r} is not a valid ISO 8601 timestamp") from exc


def _day(field: str, value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        raise FieldInvalid(field, f"{value!r} is not a valid YYYY-MM-DD date") from exc
    return value


def _currency(field: str, value: str) -> str:
    upper = value.upper()  # ASCII only: "\u017fek".upper() is "SEK"
    if upper not in CURRENCIES or not value.isascii():
        raise FieldInvalid(field, f"{value!r} is not an ISO 4217 currency code")
    return upper


def _country(field: str, value: str) -> str:
    upper = value.upper()
    if upper not in COUNTRIES or not value.isascii():
        raise FieldInvalid(field, f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return upper


#: What each kind of checked field runs: it returns the value to store or raises ``FieldInvalid``.
#: (An ``id`` needs no check: one sent as a number is stored as a string, by :func:`post_init`.)
FIXES: Final[dict[str, Callable[[str, Any], Any]]] = {
    "timestamp": _timestamp,
    "day": _day,
    "currency": _currency,
    "country": _country,
}


def check_in(hint: Any) -> Check | None:
    """The :class:`Check` a field's type carries: in its ``Annotated`` metadata, or in one of the
    members of a union (``Id | UnsetType | None``), but not inside a container (the ids of a list are
    not checked one by one)."""
    if typing.get_origin(hint) is Annotated:
        found = next((m for m in hint.__metadata__ if isinstance(m, Check)), None)
        return found if found is not None else check_in(hint.__origin__)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next((c for c in map(check_in, typing.get_args(hint)) if c is not None), None)
    return None


def checks_of(cls: type[Any]) -> dict[str, str]:
    """The checked fields of a Struct class and their kinds (field -> kind), from their types, in
    the order of the fields (those of its bases first)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    found = {
        name: check_in(hint) for name, hint in hints.items() if typing.get_origin(hint) is not typing.ClassVar
    }
    return {name: check.kind for name, check in found.items() if check is not None}


def post_init(spec: dict[str, str], then: Callable[[Any], None] | None = None) -> Callable[[Any], None]:
    """A ``__post_init__`` that checks and normalises the set fields of ``spec`` (field -> kind of
    :data:`FIXES`) in place, then calls ``then``.

    It runs for every part of every pushed record (five hundred times in a push of 100 orders), so it
    is written out for each Struct, as ``dataclasses`` writes its ``__init__``: one plain attribute
    test a field, and for ids (almost always strings already) no call at all (bench/micro: validation).
    """
    lines = ["def __post_init__(self):", "    pass"]
    for field, kind in spec.items():
        if not field.isidentifier() or kind not in {"id", *FIXES}:
            raise ValueError(f"cannot check {field!r} as {kind!r}")
        if kind == "id":
            lines.append(f"    if type(self.{field}) is int: self.{field} = str(self.{field})")
        else:
            lines.append(f"    value = self.{field}")
            lines.append("    if value is not UNSET and value is not None:")
            lines.append(f"        self.{field} = fix_{kind}({field!r}, value)")
    if then is not None:
        lines.append("    then(self)")
    scope: dict[str, Any] = {"UNSET": UNSET, "then": then, **{f"fix_{k}": fix for k, fix in FIXES.items()}}
    exec("\n".join(lines), scope)  # noqa: S102 - the fields are our Structs' own, checked identifiers
    made: Callable[[Any], None] = scope["__post_init__"]
    return made
