"""Records read from a file: JSON Lines, a JSON array, or CSV through a mapping (``mapping.py``).

Each source yields :class:`Item` s that tile the file: an item's ``start`` is where the previous one
ended, so a run that stopped can start again at any item's ``end`` (``read(start=...)``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol

import msgspec

from patron.transfer.items import SHOWN, Item
from patron.transfer.mapping import Mapping, MappingError, Row

#: The longest line (or JSON array element) read; a longer one is a bad line, skipped.
MAX_LINE: Final = 1_000_000


class Source(Protocol):
    path: Path

    def read(self, start: int = 0, line: int = 1) -> Iterator[Item]:
        """The items from byte ``start`` on (``line`` its line number)."""
        ...


def _object(raw: bytes) -> dict[str, Any] | str:
    """A JSON object, or why it is not one."""
    try:
        found = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        return f"not JSON: {exc}"
    return found if isinstance(found, dict) else f"not a JSON object but {type(found).__name__}"


def _shown(raw: bytes) -> str:
    return raw[:SHOWN].decode("utf-8", "replace")


@dataclass
class _Json:
    """A file of JSON records; ``record_type`` the ``@type`` of those without one."""

    path: Path
    record_type: str | None = None


class JsonLines(_Json):
    """One record a line; blank lines are skipped."""

    def read(self, start: int = 0, line: int = 1) -> Iterator[Item]:
        with self.path.open("rb") as file:
            file.seek(start)
            offset = start
            while text := file.readline(MAX_LINE + 1):
                end = offset + len(text)
                if len(text) > MAX_LINE and not text.endswith(b"\n"):
                    end = _skip_line(file, end)
                    yield Item(
                        line, offset, end, line + 1, error=f"longer than {MAX_LINE} bytes", text=_shown(text)
                    )
                elif raw := text.strip():
                    yield _item(line, offset, end, line + 1, raw, self.record_type)
                offset, line = end, line + 1


def _skip_line(file: BinaryIO, offset: int) -> int:
    while chunk := file.readline(MAX_LINE):
        offset += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return offset


def _item(line: int, start: int, end: int, after: int, raw: bytes, record_type: str | None) -> Item:
    found = _object(raw)
    if isinstance(found, str):
        return Item(line, start, end, after, error=found, text=_shown(raw))
    if record_type is not None and "@type" not in found:
        found["@type"] = record_type
        return Item(line, start, end, after, found)
    return Item(line, start, end, after, found, raw)


class JsonArray(_Json):
    """A JSON array of records, read an element at a time (the file is never held whole)."""

    def read(self, start: int = 0, line: int = 1) -> Iterator[Item]:
        with self.path.open("rb") as file:
            file.seek(start)
            yield from _elements(file, start, line, self.record_type)


def _elements(file: BinaryIO, offset: int, line: int, record_type: str | None) -> Iterator[Item]:
    """The top-level elements of the array, cut where depth returns to the array's own (strings and
    their escapes tracked). ``offset`` 0 is before the ``[``; later offsets are after an element."""
    depth = 0 if offset else -1  # -1: before the array's "["
    element = bytearray()
    begin, begin_line = offset, line
    in_string = escaped = False
    while chunk := file.read(1 << 16):
        for byte in chunk:
            offset += 1
            if byte == 0x0A:
                line += 1
            if in_string:
                element.append(byte)
                if escaped:
                    escaped = False
                elif byte == 0x5C:  # backslash
                    escaped = True
                elif byte == 0x22:
                    in_string = False
                continue
            if depth == -1:
                if byte == 0x5B:  # the array's "["
                    depth, begin, begin_line = 0, offset, line
                continue
            if depth == 0 and byte in (0x2C, 0x5D):  # "," or "]" ends an element
                raw = bytes(element).strip()
                if raw:
                    yield _item(begin_line, begin, offset, line, raw, record_type)
                element.clear()
                begin, begin_line = offset, line
                if byte == 0x5D:
                    return
                continue
            if not element and byte in b" \t\r\n":
                continue
            if not element:
                begin_line = line
            element.append(byte)
            if byte == 0x22:
                in_string = True
            elif byte in (0x7B, 0x5B):
                depth += 1
            elif byte in (0x7D, 0x5D):
                depth -= 1
            if len(element) > MAX_LINE:
                raise MappingError(f"line {begin_line}: an element longer than {MAX_LINE} bytes")
    if element.strip():
        yield Item(begin_line, begin, offset, line, error="the array ends before this element does")


class Csv:
    """CSV with a header row, each row (or group of rows) a record as ``mapping`` says."""

    def __init__(self, path: Path, mapping: Mapping) -> None:
        self.path = path
        self.mapping = mapping
        with path.open("rb") as file:
            header_line = file.readline(MAX_LINE)
        self.header = next(csv.reader([header_line.decode("utf-8-sig")]), [])
        self.data_start = len(header_line)
        mapping.check_header(self.header)

    def read(self, start: int = 0, line: int = 1) -> Iterator[Item]:
        start = max(start, self.data_start)
        line = max(line, 2)
        with self.path.open("rb") as file:
            file.seek(start)
            lines = _Lines(file, start, line)
            reader = csv.reader(lines)
            rows = (
                Row(lines.line_of_row, lines.row_start, lines.offset, lines.next_line, row)
                for row in _rows(reader, lines)
            )
            yield from self.mapping.records(self.header, rows)


class _Lines:
    """A file's lines as text for ``csv.reader``, keeping the offset and line where each row began
    (the reader pulls exactly the lines of one row before it yields it)."""

    def __init__(self, file: BinaryIO, offset: int, line: int) -> None:
        self.file = file
        self.offset = offset
        self.next_line = line
        self.row_start = offset
        self.line_of_row = line

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = self.file.readline(MAX_LINE)
        if not raw:
            raise StopIteration
        self.offset += len(raw)
        self.next_line += raw.count(b"\n")
        return raw.decode("utf-8", "replace")

    def mark(self) -> None:
        self.row_start, self.line_of_row = self.offset, self.next_line


def _rows(reader: Any, lines: _Lines) -> Iterator[list[str]]:
    lines.mark()
    for row in reader:
        yield row
        lines.mark()


def open_source(
    path: Path, file_format: str | None, record_type: str | None, mapping: Mapping | None
) -> Source:
    """The source for ``path``: ``file_format`` jsonl, json or csv, else told by the file's suffix
    (``.csv``; ``.json`` holding an array) and first byte."""
    if mapping is not None or file_format == "csv" or (file_format is None and path.suffix.lower() == ".csv"):
        if mapping is None:
            raise MappingError("a CSV file needs --map: which record field each column holds")
        return Csv(path, mapping)
    if file_format == "json" or (file_format is None and _first_byte(path) == b"["):
        return JsonArray(path, record_type)
    return JsonLines(path, record_type)


def _first_byte(path: Path) -> bytes:
    with path.open("rb") as file:
        return io.BufferedReader(file).peek(1 << 12).lstrip()[:1]
