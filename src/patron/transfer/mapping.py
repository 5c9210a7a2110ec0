"""A CSV mapping: which record field each column holds, read from a TOML file.

    type = "order"                      # every row's @type (or --type)

    [columns]                           # column = record field
    order_id = "id"
    placed = "timestamp"
    email = "customer.email"            # nested fields with dots
    sku = "lineitems[].product_id"      # a line item per row: rows of one order (the same id) together
    qty = "lineitems[].quantity"

A cell's text becomes the field's type as the record types declare it (numbers, true/false); an
empty cell leaves the field out. Columns the mapping does not name are ignored.
"""

from __future__ import annotations

import json
import tomllib
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Union, get_args, get_origin, get_type_hints

import msgspec

from patron.records.types import Contact, CustomEvent, Order, Product
from patron.transfer.items import SHOWN, Item

RECORD_TYPES: Final[dict[str, type[msgspec.Struct]]] = {
    "contact": Contact,
    "order": Order,
    "product": Product,
    "custom_event": CustomEvent,
}
LIST: Final = "[]"
TRUE: Final = frozenset({"true", "1", "yes", "y", "t"})
FALSE: Final = frozenset({"false", "0", "no", "n", "f"})


class MappingError(ValueError):
    """A mapping that cannot be used, or a file it does not fit (said before anything is sent)."""


def members(annotation: Any) -> list[Any]:
    """A type's members that hold a value: a union's (less None and msgspec's UNSET), or itself."""
    if get_origin(annotation) in (Union, types.UnionType):
        return [a for a in get_args(annotation) if a not in (type(None), msgspec.UnsetType)]
    return [annotation]


def is_struct(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)


def _kind(annotation: Any) -> type | None:
    """How a cell is read for a field of this type: ``int``, ``float``, ``bool``, ``object`` (JSON:
    lists, objects), or None (text)."""
    kinds = members(annotation)
    if any(get_origin(a) in (list, dict) or a in (list, dict) or is_struct(a) for a in kinds):
        return object
    found = {next((k for k in (bool, int, float) if a is k), None) for a in kinds}
    if len(found) == 1:
        return found.pop()
    return float if None not in found else None  # numbers of either kind; text when text is allowed


def hints(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """A Struct's fields by the names they have in JSON, with their types."""
    annotations = get_type_hints(struct)
    return {f.encode_name: annotations[f.name] for f in msgspec.structs.fields(struct)}


def _field_type(struct: type[msgspec.Struct], path: list[str]) -> type | None:
    """How a cell is read for the field at ``path`` (names, ``x[]`` for a list's items) of ``struct``
    (None, as text, for a field the type does not declare: custom fields)."""
    annotation = hints(struct).get(path[0].removesuffix(LIST))
    if annotation is None:
        return None
    if len(path) == 1:
        return _kind(annotation)
    for member in members(annotation):
        inner = get_args(member)[0] if get_origin(member) is list else member
        if is_struct(inner):
            return _field_type(inner, path[1:])
    return None


def convert(text: str, kind: type | None) -> Any:
    """A cell's text as ``kind`` (text it cannot be read as is sent as it is: the server names it)."""
    if kind is object:
        try:
            return json.loads(text)
        except ValueError:
            return text
    if kind is bool:
        lowered = text.strip().lower()
        return True if lowered in TRUE else False if lowered in FALSE else text
    if kind in (int, float):
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if kind is int and number.is_integer() else number
    return text


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    start: int
    end: int
    after: int
    cells: list[str]


@dataclass(frozen=True)
class Column:
    name: str
    path: list[str]  # the field's names; a line item's field: ["lineitems[]", "quantity"]
    kind: type | None

    @property
    def per_row(self) -> bool:
        return self.path[0].endswith(LIST)


class Mapping:
    """A CSV file's columns as fields of one record type."""

    def __init__(self, record_type: str, columns: dict[str, str]) -> None:
        if record_type not in RECORD_TYPES:
            raise MappingError(f"type {record_type!r} is not one of {', '.join(RECORD_TYPES)}")
        if not columns:
            raise MappingError('the mapping names no column ([columns] column = "field")')
        self.record_type = record_type
        struct = RECORD_TYPES[record_type]
        self.columns = []
        for name, field in columns.items():
            path = field.split(".")
            if not all(path) or any(LIST in p for p in path[1:]) or path[0].count(LIST) > 1:
                raise MappingError(f"column {name!r}: {field!r} is not a field (a.b, or list[].field)")
            if path[0].endswith(LIST) and len(path) == 1:
                raise MappingError(f"column {name!r}: {field!r} names a list, not a field of its items")
            self.columns.append(Column(name, path, _field_type(struct, path)))
        self.key = next((c.name for c in self.columns if c.path == ["id"]), None)
        if any(c.per_row for c in self.columns) and self.key is None:
            raise MappingError('rows are grouped into records by their id: map a column to "id"')
        self.index: dict[str, int] = {}

    @classmethod
    def load(cls, path: Path, record_type: str | None = None) -> Mapping:
        try:
            found = tomllib.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise MappingError(f"{path}: {exc}") from exc
        columns = found.get("columns")
        if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
            raise MappingError(f"{path}: [columns] must map each column to a field name")
        kind = record_type or found.get("type")
        if not isinstance(kind, str):
            raise MappingError(f'{path}: no record type (type = "order", or --type)')
        return cls(kind, columns)

    def check_header(self, header: list[str]) -> None:
        self.index = {name: position for position, name in enumerate(header)}
        missing = [c.name for c in self.columns if c.name not in self.index]
        if missing:
            raise MappingError(f"the file's header has no column {', '.join(map(repr, missing))}")

    def records(self, header: list[str], rows: Iterable[Row]) -> Iterator[Item]:
        """Items from the rows (line, start, end, cells): one a row, or one per group of rows with the
        same id when line items are mapped."""
        grouped = any(c.per_row for c in self.columns)
        group: list[Row] = []
        done: set[str] = set()
        for row in rows:
            if grouped and group and self._id(row.cells) != self._id(group[0].cells):
                yield self._record(group, done)
                group = []
            group.append(row)
            if not grouped:
                yield self._record(group, done)
                group = []
        if group:
            yield self._record(group, done)

    def _id(self, cells: list[str]) -> str | None:
        position = self.index[self.key] if self.key else None
        return cells[position] if position is not None and position < len(cells) else None

    def _record(self, rows: list[Row], done: set[str]) -> Item:
        line, start, end, after = rows[0].line, rows[0].start, rows[-1].end, rows[-1].after
        for row in rows:
            cells = row.cells
            short = [c.name for c in self.columns if self.index[c.name] >= len(cells)]
            if short:
                counts = f"the row has {len(cells)} of {len(self.index)} columns"
                error = f"no value for column {short[0]!r} ({counts})"
                return Item(row.line, start, end, after, error=error, text=",".join(cells)[:SHOWN])
        if self.key and len(rows) and any(c.per_row for c in self.columns):
            record_id = self._id(rows[0].cells) or ""
            if record_id in done:
                error = (
                    f"rows of {self.record_type} {record_id!r} again after other rows: the rows of one"
                    f" record must be together (sort the file by {self.key!r})"
                )
                return Item(line, start, end, after, error=error, text=",".join(rows[0].cells)[:SHOWN])
            done.add(record_id)
        record: dict[str, Any] = {"@type": self.record_type}
        for column in self.columns:
            if not column.per_row and (text := rows[0].cells[self.index[column.name]]) != "":
                _put(record, column.path, convert(text, column.kind))
        for row in rows:
            cells = row.cells
            items: dict[str, dict[str, Any]] = {}
            for column in self.columns:
                if column.per_row and (text := cells[self.index[column.name]]) != "":
                    name = column.path[0].removesuffix(LIST)
                    _put(items.setdefault(name, {}), column.path[1:], convert(text, column.kind))
            for name, item in items.items():
                record.setdefault(name, []).append(item)
        return Item(line, start, end, after, record)


def _put(record: dict[str, Any], path: list[str], value: Any) -> None:
    for name in path[:-1]:
        record = record.setdefault(name, {})
    record[path[-1]] = value
