"""Records into push requests, and the API's replies back into one outcome per record.

A push request holds at most 100 records, all of one ``@type``, each at most 60,000 bytes of JSON
(Ometria's limits, which Patron keeps); the client also keeps a request's body under a byte budget.
Records go out in the caller's order: a request ends where the type changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from patron.records.fields import MAX_RECORD_BYTES, RECORD_TOO_LARGE

MAX_RECORDS: Final = 100
#: The client's budget for one request's body: a request of 100 large records is split before it.
MAX_REQUEST_BYTES: Final = 1_000_000
RECORD_TYPES: Final = ("contact", "order", "product", "custom_event")

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Warning:
    path: str
    message: str
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one record: accepted (queued by the server), or rejected with the path of the
    field at fault and the message (the server's, or the client's for a record it never sent)."""

    index: int  # the record's position in what the caller gave
    accepted: bool
    id: str | None = None
    request_id: str | None = None  # the push request that carried it (None: never sent)
    path: str | None = None
    message: str | None = None
    warnings: tuple[Warning, ...] = ()


@dataclass(frozen=True, slots=True)
class Encoded:
    """One record ready to send: its JSON, type, id and the key of what it writes (records with the
    same key are never in flight at once, so they apply in the caller's order)."""

    index: int
    record_type: str
    id: str | None
    json: bytes
    key: tuple[str, ...] | None


@dataclass
class Batch:
    """One push request's records, all of one type."""

    record_type: str
    records: list[Encoded] = field(default_factory=list)
    size: int = 2  # the body's bytes: "[" and "]", and the records with their commas

    @property
    def body(self) -> bytes:
        return b"[" + b",".join(r.json for r in self.records) + b"]"

    @property
    def keys(self) -> set[tuple[str, ...]]:
        return {r.key for r in self.records if r.key is not None}


def _text(value: Any) -> str | None:
    return None if value is None or isinstance(value, dict | list) else str(value)


def encode(index: int, record: Any, raw: bytes | None = None) -> Encoded | Outcome:
    """``record`` (a dict, or one of ``patron.records.types``' Structs) ready to send, or the outcome
    of a record the server would refuse as a whole request. ``raw``: the record's JSON as read, sent
    as it is (the importer's lines)."""
    if isinstance(record, msgspec.Struct):
        raw = _encode(record) if raw is None else raw
        record = msgspec.json.decode(raw)
    if not isinstance(record, Mapping):
        return Outcome(index, False, path="root", message="is not a record (a JSON object)")
    record_id = _text(record.get("id"))
    record_type = record.get("@type")
    if record_type not in RECORD_TYPES:
        message = "is missing" if record_type is None else f"is not one of {', '.join(RECORD_TYPES)}"
        return Outcome(index, False, record_id, path="root > @type", message=message)
    try:
        raw = _encode(record) if raw is None else raw
    except (TypeError, msgspec.EncodeError) as exc:
        return Outcome(index, False, record_id, path="root", message=f"cannot be sent as JSON: {exc}")
    if len(raw) > MAX_RECORD_BYTES:
        return Outcome(index, False, record_id, path="root", message=RECORD_TOO_LARGE)
    return Encoded(index, str(record_type), record_id, raw, _key(str(record_type), record, record_id))


def _key(record_type: str, record: Mapping[str, Any], record_id: str | None) -> tuple[str, ...] | None:
    if record_id is None:
        return None
    if record_type == "contact":
        return (record_type, str(record.get("@collection") or "default"), record_id)
    return (record_type, record_id)


def split(
    records: Iterable[Encoded], max_records: int = MAX_RECORDS, max_bytes: int = MAX_REQUEST_BYTES
) -> Iterator[Batch]:
    """The records in requests, in order: a new request when the type changes, or when the next
    record would pass ``max_records`` or ``max_bytes``."""
    batch: Batch | None = None
    for record in records:
        size = len(record.json) + 1
        if batch is not None and (
            batch.record_type != record.record_type
            or len(batch.records) >= max_records
            or batch.size + size > max_bytes
        ):
            yield batch
            batch = None
        if batch is None:
            batch = Batch(record.record_type)
        batch.records.append(record)
        batch.size += size
    if batch is not None:
        yield batch


def outcomes(batch: Batch, reply: Mapping[str, Any]) -> list[Outcome]:
    """One outcome per record of ``batch`` from the server's push reply (``errors`` and ``warnings``
    name records by their ``index`` in the request)."""
    request_id = _text(reply.get("request_id"))
    errors: dict[int, tuple[str, str]] = {}
    for error in reply.get("errors") or ():
        if isinstance(error, Mapping) and isinstance(error.get("index"), int):
            path = str(error.get("error_path") or error.get("path") or "root")
            errors.setdefault(error["index"], (path, str(error.get("error_message") or error.get("message"))))
    warned: dict[int, list[Warning]] = {}
    for warning in reply.get("warnings") or ():
        if isinstance(warning, Mapping) and isinstance(warning.get("index"), int):
            found = Warning(str(warning.get("path")), str(warning.get("message")), _text(warning.get("kind")))
            warned.setdefault(warning["index"], []).append(found)
    found_outcomes = []
    for position, record in enumerate(batch.records):
        error = errors.get(position)
        notes = tuple(warned.get(position, ()))
        if error is None:
            found_outcomes.append(Outcome(record.index, True, record.id, request_id, warnings=notes))
        else:
            path, message = error
            found_outcomes.append(Outcome(record.index, False, record.id, request_id, path, message, notes))
    return found_outcomes


def refused(batch: Batch, path: str, message: str) -> list[Outcome]:
    """Every record of a request the server refused as a whole (a 400 or 413 naming ``path``)."""
    return [Outcome(r.index, False, r.id, None, path, message) for r in batch.records]


@dataclass
class PushResult:
    """The outcome of every record given to ``push``, in the caller's order."""

    outcomes: list[Outcome]

    @property
    def accepted(self) -> int:
        return sum(o.accepted for o in self.outcomes)

    @property
    def rejected(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.accepted]
