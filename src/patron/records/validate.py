"""Validating a push: split the body into records, check each on its own, keep what is valid.

The body is split into raw records without decoding them; each record is then decoded into its
Struct, so one bad record is rejected with its own Ometria-style path while its neighbours are
accepted. Accepted records are re-encoded from their Structs: values are normalised (ids as strings,
timestamps in UTC) and fields the schema does not know are left out, each reported as a warning.
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

from patron.records import fields
from patron.records.fields import MAX_RECORD_BYTES, RECORD_TOO_LARGE
from patron.records.types import MAX_LISTS_PER_PUSH, RECORD_TYPES, Contact, CustomEvent, Part, Record

MAX_RECORDS: Final = 100
_INDEX = re.compile(r"\[(\d+)\]")


class BatchInvalid(ValueError):
    """The request as a whole is not a push (not an array, too many records, mixed types...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class RecordsInvalid(ValueError):
    """Records were rejected where the caller asked for all of them or nothing."""

    def __init__(self, errors: list[RecordError]) -> None:
        super().__init__("; ".join(f"{e.error_path}: {e.error_message}" for e in errors))
        self.errors = errors


class RecordError(msgspec.Struct):
    index: int
    id: str | None
    error_path: str
    error_message: str


class FieldWarning(msgspec.Struct):
    index: int
    id: str | None
    path: str
    message: str


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


_split = msgspec.json.Decoder(list[msgspec.Raw])
_head = msgspec.json.Decoder(_Head)
_generic = msgspec.json.Decoder()
_decoders = {name: msgspec.json.Decoder(cls) for name, cls in RECORD_TYPES.items()}
#: Decoding with a strict twin first means a record without unknown fields (nearly all of them) is
#: decoded once; only a record the twin refuses is decoded again, leniently, to list its warnings.
_strict_decoders = {name: msgspec.json.Decoder(_strict(cls)) for name, cls in RECORD_TYPES.items()}
_UNKNOWN = "Object contains unknown field"


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
    fields.TIMESTAMP_PATTERN: "is not an ISO 8601 timestamp with an offset (2023-05-25T15:32:52+00:00)",
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
    field, sep, rest = text.partition(" :: ")  # raised by a record's own check (fields.Invalid)
    if sep:
        return f"{path} > {field}", rest
    return path, text


def _id(value: Any) -> str | None:
    """A record's id as errors report it: as sent, cut to 512 characters (an id column's width), with
    any NUL written as ``\\u0000`` (which a PostgreSQL text column cannot hold)."""
    if value is None or isinstance(value, dict | list):
        return None
    return str(value).replace("\x00", "\\u0000")[:512]


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


def validate(body: bytes, received: datetime) -> Batch:
    """Split and validate a push body; raises :class:`BatchInvalid` when it is not a push at all."""
    records = split(body)
    record_type = str(records[0][1].type)
    decoder = _decoders[record_type]
    strict = _strict_decoders[record_type]
    cls = RECORD_TYPES[record_type]
    accepted: list[Record] = []
    errors: list[RecordError] = []
    warnings: list[FieldWarning] = []
    named_lists: set[str] = set()
    for index, (raw, head) in enumerate(records):
        record_id = _id(head.id)
        if len(raw) > MAX_RECORD_BYTES:
            errors.append(RecordError(index, record_id, "root", RECORD_TOO_LARGE))
            continue
        try:
            try:
                record = strict.decode(raw)
            except msgspec.ValidationError as exc:
                if not str(exc).startswith(_UNKNOWN):
                    raise
                record = decoder.decode(raw)
                warnings.extend(
                    FieldWarning(index, record_id, path, "unknown field; not stored")
                    for path in unknown_fields(_generic.decode(raw), cls)
                )
        except msgspec.ValidationError as exc:
            path, message = split_error(str(exc))
            errors.append(RecordError(index, record_id, path, message))
            continue
        if isinstance(record, CustomEvent) and record.timestamp is UNSET:
            record.timestamp = received.isoformat()
        if isinstance(record, Contact) and isinstance(record.add_to_lists, list):
            named = named_lists | {str(list_id) for list_id in record.add_to_lists}
            if len(named) > MAX_LISTS_PER_PUSH:
                message = f"a push may add to at most {MAX_LISTS_PER_PUSH} lists; push the others apart"
                errors.append(RecordError(index, record_id, "root > @add_to_lists", message))
                continue
            named_lists = named
        accepted.append(record)
    return Batch(record_type, accepted, errors, warnings)
