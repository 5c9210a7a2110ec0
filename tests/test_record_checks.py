"""One source of truth per field: a field type whose check needs code (``Id``, ``Timestamp``, ``Day``,
``Currency``, ``Country``) carries its check (``fields.Check``), and every record Struct runs the checks
of its fields' types. A new field of such a type cannot go unchecked, and a type that looks like one of
them (its pattern or its list of codes) cannot be written without its check."""

from __future__ import annotations

import importlib
import pkgutil
import typing
from typing import Any, ClassVar

import msgspec
import pytest
from msgspec import UNSET, UnsetType

import patron
from patron.errors import FieldInvalid
from patron.records import fields, types
from patron.records.fields import CURRENCIES, DAY_PATTERN, TIMESTAMP_PATTERN, Check, check_in
from patron.records.validate import _strict

#: A value each kind of check refuses (each matches the type's pattern, if it has one).
BAD = {"timestamp": "2020-13-45T00:00:00Z", "day": "2020-02-30", "currency": "QQQ", "country": "QQ"}


def record_structs() -> list[type[types.Part]]:
    """Every Struct of ``records/types.py``, and the strict twin validation decodes with."""
    found = [c for c in vars(types).values() if isinstance(c, type) and issubclass(c, types.Part)]
    return [*found, *(_strict(c) for c in found if c is not types.Part)]


def all_structs() -> list[type[msgspec.Struct]]:
    """Every msgspec Struct defined anywhere in the ``patron`` package."""
    found: dict[str, type[msgspec.Struct]] = {}
    for module in pkgutil.walk_packages(patron.__path__, "patron."):
        if ".migrations" in module.name or module.name.endswith("__main__"):
            continue
        for value in vars(importlib.import_module(module.name)).values():
            if (
                isinstance(value, type)
                and issubclass(value, msgspec.Struct)
                and value.__module__.startswith("patron")
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def hints(cls: type[Any]) -> dict[str, Any]:
    every = typing.get_type_hints(cls, include_extras=True)
    return {name: hint for name, hint in every.items() if typing.get_origin(hint) is not ClassVar}


def metas(hint: Any) -> list[msgspec.Meta]:
    """The msgspec constraints on a field's type, through unions (not inside containers)."""
    if typing.get_origin(hint) is typing.Annotated:
        own = [m for m in hint.__metadata__ if isinstance(m, msgspec.Meta)]
        return own + metas(hint.__origin__)
    if typing.get_origin(hint) in (typing.Union, type(int | None)):
        return [m for arg in typing.get_args(hint) for m in metas(arg)]
    return []


def looks_like(meta: msgspec.Meta) -> str | None:
    """The kind of check a constraint says its field needs: a timestamp's or a day's pattern, or the
    list of currency or country codes the OpenAPI document gives."""
    if meta.pattern == TIMESTAMP_PATTERN:
        return "timestamp"
    if meta.pattern == DAY_PATTERN:
        return "day"
    listed = set((meta.extra_json_schema or {}).get("enum", ()))
    if listed and listed <= CURRENCIES:
        return "currency"
    if listed and listed <= fields.COUNTRIES:
        return "country"
    return None


def required(cls: type[types.Part]) -> dict[str, Any]:
    """Values for the fields ``cls`` requires (a Struct's ``__init__`` checks no type; only its
    ``__post_init__`` runs), and an identity for a custom event."""
    given: dict[str, Any] = {info.name: "x" for info in msgspec.structs.fields(cls) if info.required}
    if issubclass(cls, types.CustomEvent):
        given["identity_email"] = "a@example.com"
    return given


@pytest.mark.parametrize("cls", record_structs(), ids=lambda c: c.__name__)
def test_every_field_of_a_checked_type_is_checked(cls: type[types.Part]) -> None:
    for name, hint in hints(cls).items():
        check = check_in(hint)
        if check is not None:
            assert cls.checks.get(name) == check.kind, (cls.__name__, name)
    assert set(cls.checks) == {name for name, hint in hints(cls).items() if check_in(hint) is not None}


@pytest.mark.parametrize("cls", record_structs(), ids=lambda c: c.__name__)
def test_every_checked_field_refuses_a_bad_value_in_its_own_name(cls: type[types.Part]) -> None:
    for name, kind in cls.checks.items():
        if kind not in BAD:
            continue
        with pytest.raises(FieldInvalid) as raised:
            cls(**{**required(cls), name: BAD[kind]})
        assert [e.path for e in raised.value.errors] == [name], (cls.__name__, name)


def test_a_field_that_looks_checked_carries_its_check_wherever_it_is_declared() -> None:
    """A timestamp, a day, a currency or a country is declared with the types of ``fields`` (which
    carry their check), never with a look-alike made of the same pattern or list of codes."""
    missing = [
        f"{cls.__module__}.{cls.__qualname__}.{name}"
        for cls in all_structs()
        for name, hint in hints(cls).items()
        if any(looks_like(meta) for meta in metas(hint)) and check_in(hint) is None
    ]
    assert missing == []


def test_only_record_parts_declare_fields_whose_check_needs_code() -> None:
    """A Struct that is not a record part runs no field check: none may declare a field of a type
    whose check needs code (an id's, which only makes a number a string, aside)."""
    unchecked = [
        f"{cls.__module__}.{cls.__qualname__}.{name}"
        for cls in all_structs()
        if not issubclass(cls, types.Part)
        for name, hint in hints(cls).items()
        if (check := check_in(hint)) is not None and check.kind != "id"
    ]
    assert unchecked == []


def test_a_new_part_with_a_currency_is_checked_without_being_told() -> None:
    class Price(types.Part):
        amount: float
        currency: fields.Currency | UnsetType | None = UNSET
        when: fields.Timestamp | UnsetType = UNSET

    assert Price.checks == {"currency": "currency", "when": "timestamp"}
    decoded = msgspec.json.decode(
        b'{"amount": 1, "currency": "eur", "when": "2020-01-01T10:00:00+01:00"}', type=Price
    )
    assert (decoded.currency, decoded.when) == ("EUR", "2020-01-01T09:00:00+00:00")
    with pytest.raises(msgspec.ValidationError, match="currency :: 'QQQ' is not an ISO 4217 currency code"):
        msgspec.json.decode(b'{"amount": 1, "currency": "QQQ"}', type=Price)


def test_a_check_is_found_through_unions_but_not_inside_lists() -> None:
    assert check_in(fields.Id | UnsetType | None) == fields.ID_CHECK
    assert check_in(fields.Currency | None) == Check("currency")
    assert check_in(list[fields.Id]) is None
    assert check_in(types.ListIds | UnsetType) is None
