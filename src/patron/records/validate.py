"""Validating a push: split the body into records, check each on its own, keep what is valid.

The body is split into raw records without decoding them; each record is then decoded into its
Struct, so one bad record is rejected with its own Ometria-style path while its neighbours are
accepted. Accepted records are re-encoded from their Structs: values are normalised (ids as strings,
timestamps in UTC) and fields the schema does not know are left out, each reported as a warning.

Some forms clients send are read leniently, each with a warning that names its kind: a timestamp
without an offset (read as UTC) and an empty array where an object belongs (PHP's ``json_encode`` of
an empty array, read as ``{}``). A strict account's records are rejected for them instead. Neither
costs a record that has none: each is looked for only in a record whose first decoding failed, and
the first decoding refuses a timestamp without an offset (``fields.READINGS``).
"""

from __future__ import annotations

import re
import reprlib
import types
import typing
from datetime import datetime
from functools import cache
from typing import Any, Final

import msgspec
from msgspec import UNSET

from patron.errors import FieldError, FieldInvalid, Invalid
from patron.records import fields
from patron.records.fields import MAX_ID_LENGTH, MAX_RECORD_BYTES, READINGS, RECORD_TOO_LARGE
from patron.records.types import (
    MAX_LISTS_PER_PUSH,
    MAX_RECORDS,
    RECORD_TYPES,
    Contact,
    CustomEvent,
    Part,
    Record,
)

_INDEX = re.compile(r"\[(\d+)\]")

# The lenient readings, by kind: the rule each of their warnings names (and a strict account's errors).
#: A request's ``Content-Type`` was not ``application/json``; its body was read as JSON.
CONTENT_TYPE: Final = "content_type"
#: A timestamp without an offset, read as UTC.
NO_OFFSET: Final = "timestamp_no_offset"
#: An empty array where an object belongs, read as an empty object.
EMPTY_ARRAY: Final = "empty_array_as_object"
#: What a strict account is told instead, after the path (``root > timestamp``).
STRICT: Final = {
    NO_OFFSET: (
        "has no offset; the account is strict, and Ometria documents timestamps with one"
        " (2023-05-25T15:32:52+00:00)"
    ),
    EMPTY_ARRAY: "is an empty array where an object belongs; the account is strict, so it is not read as {}",
}
_NO_OFFSET = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?")


class BatchInvalid(Invalid):
    """The request as a whole is not a push (not an array, too many records, mixed types...): the
    error of one field (``field``, ``message``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, errors=[FieldError(field, message)])
        self.field = field
        self.message = message


class RecordsInvalid(Invalid):
    """Records were rejected where the caller asked for all of them or nothing: each record's error
    is a field error (its path and message)."""

    def __init__(self, rejected: list[RecordError]) -> None:
        errors = [FieldError(e.error_path, e.error_message) for e in rejected]
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in errors), errors=errors)
        self.rejected = rejected


class RecordError(msgspec.Struct, omit_defaults=True):
    index: int
    id: str | None
    error_path: str
    error_message: str
    kind: str | None = None  # the lenient reading a strict account refused


class FieldWarning(msgspec.Struct, omit_defaults=True):
    """A field not stored (``kind`` None), or a lenient reading (``kind`` names its rule). A warning
    about the request as a whole (its ``Content-Type``) has ``index`` and ``id`` None."""

    index: int | None
    id: str | None
    path: str
    message: str
    kind: str | None = None


class Batch(msgspec.Struct):
    record_type: str
    accepted: list[Record]
    errors: list[RecordError]
    warnings: list[FieldWarning]


class _Head(msgspec.Struct):
    type: Any = msgspec.field(name="@type", default=None)
    id: Any = None


@cache
def _strict(hint: Any) -> Any:
    """``hint`` with every record Struct in it replaced by a twin that refuses unknown fields."""
    if isinstance(hint, type) and issubclass(hint, Part):
        return _strict_struct(hint)
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return typing.Annotated[(_strict(args[0]), *hint.__metadata__)]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_strict(a) for a in args)]  # noqa: UP007
    if origin is list:
        return list[_strict(args[0])]  # type: ignore[misc]
    return hint


@cache
def _strict_struct(cls: type[Part]) -> type[Part]:
    fields = []
    for info in msgspec.structs.fields(cls):
        default: dict[str, Any] = {}
        if info.default is not msgspec.NODEFAULT:
            default["default"] = info.default
        elif info.default_factory is not msgspec.NODEFAULT:
            default["default_factory"] = info.default_factory
        fields.append((info.name, _strict(info.type), msgspec.field(name=info.encode_name, **default)))
    tag = cls.__struct_config__.tag
    extra: dict[str, Any] = {} if tag is None else {"tag": tag}
    strict = msgspec.defstruct(
        cls.__name__, fields, bases=(cls,), kw_only=True, forbid_unknown_fields=True, **extra
    )
    return typing.cast(type[Part], strict)


_encode = msgspec.json.Encoder().encode
_split = msgspec.json.Decoder(list[msgspec.Raw])
_head = msgspec.json.Decoder(_Head)
_generic = msgspec.json.Decoder()
_decoders = {name: msgspec.json.Decoder(cls) for name, cls in RECORD_TYPES.items()}
#: Decoding with a strict twin first means a record without unknown fields (nearly all of them) is
#: decoded once; only a record the twin refuses is decoded again, leniently, to list its warnings.
_strict_decoders = {name: msgspec.json.Decoder(_strict(cls)) for name, cls in RECORD_TYPES.items()}
_UNKNOWN = "Object contains unknown field"
_GOT_ARRAY = ", got `array`"


#: The reasons a record is rejected, for the metrics: bounded, never the message's own words.
REASONS: Final = (
    "missing_field",
    "wrong_type",
    "invalid_value",
    "too_large",
    "too_many_lists",
    *STRICT,
)
_TOO_MANY_LISTS = "a push may add to at most"


def reason(error: RecordError) -> str:
    """Why ``error``'s record was rejected, as one of :data:`REASONS`."""
    if error.kind is not None:
        return error.kind
    message = error.error_message
    if message == RECORD_TOO_LARGE:
        return "too_large"
    if message.startswith(_TOO_MANY_LISTS):
        return "too_many_lists"
    if message.startswith("Object missing required field"):
        return "missing_field"
    if message.startswith("Expected `") and ", got `" in message:
        return "wrong_type"
    return "invalid_value"


def ometria_path(msgspec_path: str) -> str:
    """``$.lineitems[0].quantity`` -> ``root > lineitems > 0 > quantity``.

    msgspec writes ``[...]`` for a key of a free-form object; the path stops at that object.
    """
    parts = _INDEX.sub(r".\1", msgspec_path.removeprefix("$").split("[...]", 1)[0]).split(".")
    return " > ".join(["root", *(p for p in parts if p)])


#: What a failed pattern means, in words (msgspec names only the regular expression).
_PATTERNS = {
    fields.ID_PATTERN: "must be a string without whitespace",
    fields.EMAIL_PATTERN: "is not a valid email address",
    fields.PHONE_PATTERN: "is not an E.164 phone number (a plus sign and up to 15 digits)",
    fields.TIMESTAMP_PATTERN: "is not an ISO 8601 timestamp (2023-05-25T15:32:52+00:00)",
    fields.DAY_PATTERN: "is not a YYYY-MM-DD date",
    fields.COLLECTION_PATTERN: "must be a string without whitespace or '/'",
    fields.NO_NUL_PATTERN: "must not contain NUL",
}


def in_words(message: str) -> str:
    """msgspec's "Expected `str` matching regex '...'" as what the pattern means."""
    if "matching regex " not in message:
        return message
    pattern = message.split("matching regex ", 1)[1].strip("'").encode().decode("unicode_escape")
    return _PATTERNS.get(pattern, message)


def split_error(message: str) -> tuple[str, str]:
    """A msgspec error (``Expected `int`, got `str` - at `$.a[1]```) as (Ometria path, message)."""
    text, sep, where = message.rpartition(" - at `")
    if not sep:
        text, where = message, "$"
    path = ometria_path(where.rstrip("`"))
    text = in_words(text)
    checked = FieldInvalid.read(text)  # raised by a Struct's own check, in its __post_init__
    if checked is not None:
        return f"{path} > {checked.path}", checked.message
    return path, text


def _id(value: Any) -> str | None:
    """A record's id as errors report it: as sent, cut to :data:`MAX_ID_LENGTH` characters (an id
    column's width), with any NUL written as ``\\u0000`` (which a PostgreSQL text column cannot
    hold)."""
    if value is None or isinstance(value, dict | list):
        return None
    return str(value).replace("\x00", "\\u0000")[:MAX_ID_LENGTH]


def split_raw(body: bytes) -> list[bytes]:
    """The records of an already validated push body, as bytes (to keep rejected records as sent)."""
    return [bytes(raw) for raw in _split.decode(body)]


def split(body: bytes) -> list[tuple[msgspec.Raw, _Head]]:
    """The records of a push body, each with its ``@type`` and ``id``; raises :class:`BatchInvalid`."""
    try:
        raws = _split.decode(body)
    except msgspec.ValidationError as exc:
        raise BatchInvalid("body", "must be a JSON array of records") from exc
    except msgspec.DecodeError as exc:
        raise BatchInvalid("body", str(exc)) from exc
    except RecursionError as exc:
        raise BatchInvalid("body", "is nested too deeply") from exc
    if not raws:
        raise BatchInvalid("body", "must hold at least one record")
    if len(raws) > MAX_RECORDS:
        raise BatchInvalid(
            "body", f"holds {len(raws)} records; at most {MAX_RECORDS} are allowed per request"
        )
    heads = []
    for index, raw in enumerate(raws):
        try:
            head = _head.decode(raw)
        except msgspec.ValidationError as exc:
            raise BatchInvalid(f"root > {index}", "every record must be a JSON object") from exc
        except RecursionError as exc:
            raise BatchInvalid(f"root > {index}", "is nested too deeply") from exc
        if not isinstance(head.type, str) or head.type not in RECORD_TYPES:
            known = ", ".join(RECORD_TYPES)
            given = reprlib.repr(head.type)
            raise BatchInvalid(f"root > {index} > @type", f"must be one of {known}, not {given}")
        heads.append(head)
    types = {h.type for h in heads}
    if len(types) > 1:
        raise BatchInvalid(
            "root", f"mixes record types ({', '.join(sorted(types))}); send one type per request"
        )
    return list(zip(raws, heads, strict=True))


@cache
def _shape(cls: type[Part]) -> tuple[frozenset[str], dict[str, type[Part]]]:
    """The JSON field names of ``cls``, and those of them that hold nested Structs (with their type)."""
    hints = typing.get_type_hints(cls)
    names = {"@type"} if issubclass(cls, Record) else set()
    nested: dict[str, type[Part]] = {}
    for info in msgspec.structs.fields(cls):
        names.add(info.encode_name)
        child = _struct_in(hints[info.name])
        if child is not None:
            nested[info.encode_name] = child
    return frozenset(names), nested


def _struct_in(hint: Any) -> type[Part] | None:
    if isinstance(hint, type) and issubclass(hint, Part):
        return hint
    for arg in typing.get_args(hint):
        found = _struct_in(arg)
        if found is not None:
            return found
    return None


def unknown_fields(value: Any, cls: type[Part], path: str = "root") -> list[str]:
    """The paths of every key in ``value`` that ``cls`` (recursively) does not know."""
    if not isinstance(value, dict):
        return []
    names, nested = _shape(cls)
    found = [f"{path} > {key}" for key in value.keys() - names]
    for key in value.keys() & nested.keys():
        item = value[key]
        if isinstance(item, list):
            for i, element in enumerate(item):
                found.extend(unknown_fields(element, nested[key], f"{path} > {key} > {i}"))
        else:
            found.extend(unknown_fields(item, nested[key], f"{path} > {key}"))
    return found


@cache
def _readable(cls: type[Part]) -> tuple[frozenset[str], frozenset[str]]:
    """The JSON names of the fields of ``cls`` that hold an object (a Struct or a free-form object, not
    a list of them), and of those that hold a timestamp."""
    hints = typing.get_type_hints(cls)
    timestamps = {name for name, kind in getattr(cls, "checks", {}).items() if kind == "timestamp"}
    objects: set[str] = set()
    stamps: set[str] = set()
    for info in msgspec.structs.fields(cls):
        if _takes_object(hints[info.name]):
            objects.add(info.encode_name)
        if info.name in timestamps:
            stamps.add(info.encode_name)
    return frozenset(objects), frozenset(stamps)


def _takes_object(hint: Any) -> bool:
    if (isinstance(hint, type) and issubclass(hint, Part)) or hint is dict or typing.get_origin(hint) is dict:
        return True
    if typing.get_origin(hint) is list:
        return False
    return any(_takes_object(arg) for arg in typing.get_args(hint))


def lenient_readings(value: Any, cls: type[Part], path: str = "root") -> list[tuple[str, str]]:
    """The lenient readings in ``value`` (a record's generic JSON, read as ``cls``), as (kind, path):
    each timestamp without an offset, and each empty array where an object belongs, which this
    replaces with ``{}`` in ``value``."""
    if not isinstance(value, dict):
        return []
    objects, timestamps = _readable(cls)
    nested = _shape(cls)[1]
    found: list[tuple[str, str]] = []
    for key, item in value.items():
        if key in timestamps and isinstance(item, str) and _NO_OFFSET.fullmatch(item):
            found.append((NO_OFFSET, f"{path} > {key}"))
        elif key in objects and isinstance(item, list) and not item:
            value[key] = {}
            found.append((EMPTY_ARRAY, f"{path} > {key}"))
        elif key in nested and isinstance(item, list):
            for i, element in enumerate(item):
                found.extend(lenient_readings(element, nested[key], f"{path} > {key} > {i}"))
        elif key in nested:
            found.extend(lenient_readings(item, nested[key], f"{path} > {key}"))
    return found


class _Read(msgspec.Struct):
    record: Record
    unknown: list[str]  # the paths of fields not stored
    lenient: list[tuple[str, str]]  # (kind, path) of each lenient reading


class _Refused(Exception):
    """A lenient reading a strict account does not take."""

    def __init__(self, kind: str, path: str) -> None:
        super().__init__(f"{path}: {STRICT[kind]}")
        self.kind = kind
        self.path = path


def _read(raw: msgspec.Raw, record_type: str, strict: bool) -> _Read:
    """Decode one record that :func:`validate` could not take at the first try, with timestamps
    without an offset read as UTC; raises ``msgspec.ValidationError``, or :class:`_Refused` when
    ``strict``.

    A record the strict twin refuses for an unknown field is decoded leniently, and its generic JSON
    lists those fields; one refused for an array (where an object belongs, when the array is empty)
    is decoded again with ``{}`` in place of each such array (once: every one is replaced at once);
    one whose timestamps were read as UTC has them looked for in its generic JSON.
    """
    READINGS.lenient, READINGS.no_offset = True, 0
    try:
        return _read_leniently(raw, record_type, strict)
    finally:
        READINGS.lenient = False


def _read_leniently(raw: msgspec.Raw, record_type: str, strict: bool) -> _Read:
    cls = RECORD_TYPES[record_type]
    generic: Any = None
    lenient: list[tuple[str, str]] | None = None
    data: bytes = raw
    while True:
        try:
            try:
                record = _strict_decoders[record_type].decode(data)
                unknown: list[str] = []
            except msgspec.ValidationError as exc:
                if not str(exc).startswith(_UNKNOWN):
                    raise
                record = _decoders[record_type].decode(data)
                generic = _generic.decode(raw) if generic is None else generic
                unknown = unknown_fields(generic, cls)
            break
        except msgspec.ValidationError as exc:
            if lenient is not None or _GOT_ARRAY not in str(exc):
                raise
            generic = _generic.decode(raw) if generic is None else generic
            lenient = lenient_readings(generic, cls)  # puts {} in place of each empty array
            emptied = [path for kind, path in lenient if kind == EMPTY_ARRAY]
            if not emptied:
                raise
            if strict:
                raise _Refused(EMPTY_ARRAY, emptied[0]) from exc
            data = _encode(generic)
    if READINGS.no_offset and lenient is None:  # a timestamp was read as UTC: where?
        generic = _generic.decode(raw) if generic is None else generic
        lenient = lenient_readings(generic, cls)
    lenient = lenient or []
    if strict and lenient:
        kind, path = lenient[0]
        raise _Refused(kind, path)
    return _Read(record, unknown, lenient)


def _leniently(kind: str, path: str) -> str:
    """The warning of a lenient reading."""
    field = path.rpartition(" > ")[2]
    if kind == NO_OFFSET:
        return f"{field} has no offset; read as UTC"
    return f"{field} was an empty array; read as an empty object"


def validate(body: bytes, received: datetime, *, strict: bool = False) -> Batch:
    """Split and validate a push body; raises :class:`BatchInvalid` when it is not a push at all.

    ``strict``: a record read leniently (above) is rejected instead, with the path of the reading.
    """
    records = split(body)
    record_type = str(records[0][1].type)
    READINGS.lenient = False  # a timestamp without an offset fails the first try (see _read)
    try:
        return _validate(records, record_type, received, strict)
    finally:
        READINGS.lenient = True


def _validate(
    records: list[tuple[msgspec.Raw, _Head]], record_type: str, received: datetime, strict: bool
) -> Batch:
    decoder = _strict_decoders[record_type]
    accepted: list[Record] = []
    errors: list[RecordError] = []
    warnings: list[FieldWarning] = []
    named_lists: set[str] = set()
    for index, (raw, head) in enumerate(records):
        record_id = _id(head.id)
        if len(raw) > MAX_RECORD_BYTES:
            errors.append(RecordError(index, record_id, "root", RECORD_TOO_LARGE))
            continue
        try:  # nearly every record: decoded once, no unknown field, nothing read leniently
            record = decoder.decode(raw)
        except msgspec.ValidationError:
            try:
                read = _read(raw, record_type, strict)
            except msgspec.ValidationError as exc:
                path, message = split_error(str(exc))
                errors.append(RecordError(index, record_id, path, message))
                continue
            except _Refused as exc:
                errors.append(RecordError(index, record_id, exc.path, STRICT[exc.kind], exc.kind))
                continue
            record = read.record
            warnings.extend(
                FieldWarning(index, record_id, path, "unknown field; not stored") for path in read.unknown
            )
            warnings.extend(
                FieldWarning(index, record_id, path, _leniently(kind, path), kind)
                for kind, path in read.lenient
            )
        if isinstance(record, CustomEvent) and record.timestamp is UNSET:
            record.timestamp = received.isoformat()
        if isinstance(record, Contact) and isinstance(record.add_to_lists, list):
            named = named_lists | {str(list_id) for list_id in record.add_to_lists}
            if len(named) > MAX_LISTS_PER_PUSH:
                message = f"{_TOO_MANY_LISTS} {MAX_LISTS_PER_PUSH} lists; push the others apart"
                errors.append(RecordError(index, record_id, "root > @add_to_lists", message))
                continue
            named_lists = named
        accepted.append(record)
    return Batch(record_type, accepted, errors, warnings)
