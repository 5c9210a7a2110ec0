"""docs/deploy.md's settings reference is the code's: every ``Settings`` field, every ``PATRON_*``
variable the source reads (or an option reads), and every option of ``patron``, ``patron serve`` and
``patron worker`` has its row; every row names a variable, an option and a field that exist; and each
row's default is the one the code has."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from patron.config import Settings
from support.settings import command_at, envvars, every_variable, options, settings_fields

DOC = Path(__file__).resolve().parents[1] / "docs" / "deploy.md"
#: The commands every option of which has a row.
COVERED = [("patron",), ("patron", "serve"), ("patron", "worker")]


@dataclass(frozen=True)
class Row:
    variables: tuple[str, ...]
    options: tuple[tuple[tuple[str, ...], str], ...]  # (command path, long name)
    fields: tuple[str, ...]
    default: str
    line: int


def code(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def reference() -> list[Row]:
    """The rows of the table under "## Settings reference"."""
    text = DOC.read_text(encoding="utf-8")
    lines = text.splitlines()
    start = lines.index("## Settings reference")
    rows = []
    for number, line in enumerate(lines[start + 1 :], start + 2):
        if line.startswith("## "):
            break
        if not line.startswith("|") or line.startswith("|---") or line.startswith("| Variable"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 5, f"docs/deploy.md:{number}: five cells, not {len(cells)}"
        variable, option, field, default, _meaning = cells
        flags = []
        for written in code(option):
            *path, name = written.split()
            flags.append((tuple(path), name))
        rows.append(Row(tuple(code(variable)), tuple(flags), tuple(code(field)), default, number))
    assert rows, "no settings reference table in docs/deploy.md"
    return rows


def every(rows: list[Row], what: str) -> Iterator[Any]:
    for row in rows:
        yield from getattr(row, what)


def test_every_setting_variable_and_option_has_a_row() -> None:
    rows = reference()
    missing_fields = settings_fields() - set(every(rows, "fields"))
    missing_variables = every_variable() - set(every(rows, "variables"))
    documented = set(every(rows, "options"))
    missing_options = {
        (path, name)
        for path in COVERED
        for name in options(command_at(path))
        if (path, name) not in documented
    }
    assert not missing_fields, f"Settings fields without a row in docs/deploy.md: {sorted(missing_fields)}"
    assert not missing_variables, f"variables without a row in docs/deploy.md: {sorted(missing_variables)}"
    assert not missing_options, f"options without a row in docs/deploy.md: {sorted(missing_options)}"


def test_every_row_names_what_exists_once() -> None:
    rows = reference()
    fields, variables = list(every(rows, "fields")), list(every(rows, "variables"))
    assert set(fields) <= settings_fields(), f"no such Settings field: {set(fields) - settings_fields()}"
    assert set(variables) <= every_variable(), f"no such variable: {set(variables) - every_variable()}"
    assert len(fields) == len(set(fields)) and len(variables) == len(set(variables)), "a row repeated"
    for row in rows:
        for path, name in row.options:
            assert name in options(command_at(path)), f"docs/deploy.md:{row.line}: no option {path} {name}"


def test_an_option_that_reads_a_variable_shares_its_row() -> None:
    by_option = {option: row for row in reference() for option in row.options}
    for variable, readers in envvars().items():
        for reader in readers:
            if reader in by_option:
                row = by_option[reader]
                assert variable in row.variables, f"docs/deploy.md:{row.line}: {reader} reads {variable}"


def matches(default: object, cell: str) -> bool:
    """Whether the table's default ``cell`` says ``default``."""
    if default is None:
        return cell.startswith("none")
    if isinstance(default, bool):
        return cell.startswith("on" if default else "off")
    if isinstance(default, int | float):
        number = re.match(r"[\d,.]+", cell)
        return number is not None and float(number.group().replace(",", "")) == float(default)
    if isinstance(default, Path):
        return str(default) in cell
    return f"`{default}`" in cell


def test_each_default_is_the_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("PATRON_"):
            monkeypatch.delenv(name)
    defaults = Settings()
    for row in reference():
        if row.fields:
            value = defaults
            for name in row.fields[0].split("."):
                value = getattr(value, name)
        elif row.options:
            path, name = row.options[0]
            option = options(command_at(path))[name]
            given = option.default  # click's UNSET when there is none
            if option.is_flag:
                value = given is True
            else:
                value = given if isinstance(given, str | int | float | Path) else None
        else:
            continue
        assert matches(value, row.default), f"docs/deploy.md:{row.line}: the default is {value!r}"
