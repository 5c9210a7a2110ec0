"""Documents as CSV rows: a column per field (nested fields by their dotted path), lists and objects
as JSON text, and an order's line items a row each (the order's fields on its first row), the shape
``patron import --map`` reads back with the mapping written beside the file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args, get_origin

import msgspec

from patron.profiles.build import Profile
from patron.transfer.mapping import LIST, RECORD_TYPES, hints, is_struct, members

#: The list whose items are a row each, per record type.
ROWS: Final = {"order": "lineitems"}
#: Fields of the API's documents that are not the record's own (what the server adds).
SKIPPED: Final = frozenset({"@merge", "@force_optin", "@add_to_lists", "@remove_from_lists"})


@dataclass(frozen=True)
class Column:
    header: str  # "customer.email", "lineitems[].quantity"
    path: tuple[str, ...]
    as_json: bool


def _columns(struct: type[msgspec.Struct], prefix: tuple[str, ...], rows: str | None) -> Iterator[Column]:
    for name, annotation in hints(struct).items():
        if name in SKIPPED:
            continue
        path = (*prefix, name)
        kinds = members(annotation)
        nested = next((k for k in kinds if is_struct(k)), None)
        items = next(
            (get_args(k)[0] for k in kinds if get_origin(k) is list and is_struct(get_args(k)[0])), None
        )
        if nested is not None:
            yield from _columns(nested, path, None)
        elif items is not None and name == rows:
            yield from _columns(items, (name + LIST,), None)
        else:
            plain = all(k in (str, int, float, bool) or get_origin(k) is Literal for k in kinds)
            yield Column(".".join(path), path, not plain)


def columns(record_type: str) -> list[Column]:
    struct = Profile if record_type == "profile" else RECORD_TYPES[record_type]
    return list(_columns(struct, (), ROWS.get(record_type)))


def _get(document: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        if not isinstance(document, dict):
            return None
        document = document.get(name)
    return document


def _cell(value: Any, as_json: bool) -> str:
    if value is None:
        return ""
    if as_json or isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Table:
    """The CSV of one record type's documents."""

    def __init__(self, record_type: str) -> None:
        self.columns = columns(record_type)
        self.rows_field = ROWS.get(record_type)

    def header(self) -> bytes:
        return self._line([c.header for c in self.columns])

    def rows(self, document: dict[str, Any]) -> bytes:
        """The document's rows: one, or one per line item (the order's own fields on the first)."""
        items = document.get(self.rows_field) if self.rows_field else None
        if not items or not isinstance(items, list):
            return self._line([self._value(document, None, c) for c in self.columns])
        lines = []
        for position, item in enumerate(items):
            cells = [
                self._value(document if position == 0 or c.path == ("id",) else {}, item, c)
                for c in self.columns
            ]
            lines.append(self._line(cells))
        return b"".join(lines)

    @staticmethod
    def _value(document: dict[str, Any], item: Any, column: Column) -> str:
        if column.path[0].endswith(LIST):
            return _cell(_get(item, column.path[1:]), column.as_json) if item is not None else ""
        return _cell(_get(document, column.path), column.as_json)

    @staticmethod
    def _line(cells: list[str]) -> bytes:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerow(cells)
        return text.getvalue().encode()

    def mapping(self, record_type: str) -> str:
        """The ``--map`` file that imports this CSV again."""
        lines = [f'type = "{record_type}"', "", "[columns]"]
        lines += [f"{json.dumps(c.header)} = {json.dumps(c.header)}" for c in self.columns]
        return "\n".join(lines) + "\n"
