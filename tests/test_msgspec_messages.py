"""The shapes of msgspec's error messages that Patron reads, pinned.

``records/validate.py`` turns msgspec's ``ValidationError`` text into Ometria's error paths and words
(``split_error``, ``in_words``), recognises an unknown field (``Object contains unknown field``) and an
empty array where an object belongs (``, got `array```), and reads back the field errors a Struct's
``__post_init__`` raises (``errors.FieldInvalid``, which travels through msgspec as text). None of
this is msgspec's documented interface: a msgspec release that words a message differently would
change what clients are told. These tests feed msgspec each case validate.py relies on and assert the
exact text, so such an upgrade fails here, loudly (pyproject.toml pins msgspec below 1.0).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import pytest

from patron.errors import FieldError, FieldInvalid
from patron.records import fields
from patron.records.types import Contact, Order
from patron.records.validate import _strict, in_words, ometria_path, split_error


def message_of(body: bytes, target: Any) -> str:
    """The text of the error msgspec raises decoding ``body`` as ``target``."""
    with pytest.raises(msgspec.ValidationError) as raised:
        msgspec.json.decode(body, type=target)
    return str(raised.value)


class Checked(msgspec.Struct):
    """A Struct whose own check fails, as records' and requests' checks do."""

    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise FieldInvalid("value", "must not be negative")


# the exact messages -------------------------------------------------------------------------------

SHAPES = [
    # a value of the wrong type, with its path (an index, a field)
    (
        b'[{"@type":"order","id":"a","timestamp":5}]',
        list[Order],
        "Expected `str | null`, got `int` - at `$[0].timestamp`",
    ),
    (
        b'{"@type":"order","id":"a","lineitems":[{"product_id":"p","quantity":"x"}]}',
        Order,
        "Expected `int`, got `str` - at `$.lineitems[0].quantity`",
    ),
    # an empty array where an object belongs: validate.py looks for ", got `array`"
    (
        b'{"@type":"order","id":"a","customer":[]}',
        Order,
        "Expected `object | null`, got `array` - at `$.customer`",
    ),
    (
        b'{"@type":"contact","id":"a","properties":[]}',
        Contact,
        "Expected `object | null`, got `array` - at `$.properties`",
    ),
    # a failed pattern names the regular expression, quoted as Python's repr quotes it
    (
        b'{"@type":"order","id":"a b"}',
        Order,
        f"Expected `str` matching regex {fields.ID_PATTERN!r} - at `$.id`",
    ),
    (
        b'{"@type":"contact","id":"a","email":"nope"}',
        Contact,
        f"Expected `str` matching regex {fields.EMAIL_PATTERN!r} - at `$.email`",
    ),
    # an unknown field, refused by a strict twin: at the root without a path, nested with one
    (b'{"@type":"order","id":"a","nope":1}', _strict(Order), "Object contains unknown field `nope`"),
    (
        b'{"@type":"order","id":"a","customer":{"nope":1}}',
        _strict(Order),
        "Object contains unknown field `nope` - at `$.customer`",
    ),
    # a ValueError of __post_init__ keeps only its text: at the root without a path, nested with one
    (b'{"value":-1}', Checked, "value :: must not be negative"),
    (b'[{"value":1},{"value":-1}]', list[Checked], "value :: must not be negative - at `$[1]`"),
    (
        b'{"@type":"order","id":"a","lineitems":[{"product_id":"p","quantity":1,"totals":{"base":{"currency":"QQQ"}}}]}',
        Order,
        "currency :: 'QQQ' is not an ISO 4217 currency code - at `$.lineitems[0].totals.base`",
    ),
    # a key of a free-form object is written [...]
    (b'{"a":{"k":1}}', dict[str, dict[str, str]], "Expected `str`, got `int` - at `$[...][...]`"),
]


@pytest.mark.parametrize(("body", "target", "expected"), SHAPES)
def test_msgspec_words_each_error_validate_reads_as_it_did(body: bytes, target: Any, expected: str) -> None:
    assert message_of(body, target) == expected


def test_malformed_json_is_a_decode_error_whose_text_is_passed_on() -> None:
    for body, expected in [
        (b"[1,", "Input data was truncated"),
        (b"[1,]", "JSON is malformed: trailing comma in array (byte 3)"),
        (b"nope", "JSON is malformed: invalid character (byte 4)"),
    ]:
        with pytest.raises(msgspec.DecodeError) as raised:
            msgspec.json.decode(body)
        assert str(raised.value) == expected


# what validate.py makes of them -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "path", "text"),
    [
        (
            "Expected `str | null`, got `int` - at `$[0].timestamp`",
            "root > 0 > timestamp",
            "Expected `str | null`, got `int`",
        ),
        (
            "Expected `int`, got `str` - at `$.lineitems[0].quantity`",
            "root > lineitems > 0 > quantity",
            "Expected `int`, got `str`",
        ),
        (
            f"Expected `str` matching regex {fields.ID_PATTERN!r} - at `$.id`",
            "root > id",
            "must be a string without whitespace",
        ),
        ("Object contains unknown field `nope`", "root", "Object contains unknown field `nope`"),
        ("value :: must not be negative", "root > value", "must not be negative"),
        (
            "currency :: 'QQQ' is not an ISO 4217 currency code - at `$.lineitems[0].totals.base`",
            "root > lineitems > 0 > totals > base > currency",
            "'QQQ' is not an ISO 4217 currency code",
        ),
        (
            "Expected `str`, got `int` - at `$.properties[...][...]`",
            "root > properties",
            "Expected `str`, got `int`",
        ),
    ],
)
def test_split_error_reads_each_shape(message: str, path: str, text: str) -> None:
    assert split_error(message) == (path, text)


def test_every_pattern_validate_words_is_found_in_msgspec_s_message() -> None:
    """``in_words`` finds the pattern in msgspec's text and unescapes it: for each pattern it knows."""
    values = {
        fields.ID_PATTERN: "a b",
        fields.EMAIL_PATTERN: "nope",
        fields.PHONE_PATTERN: "12",
        fields.TIMESTAMP_PATTERN: "yesterday",
        fields.DAY_PATTERN: "2020/01/01",
        fields.COLLECTION_PATTERN: "a/b",
        fields.NO_NUL_PATTERN: "a\x00b",
    }
    for pattern, value in values.items():
        constrained = msgspec.defstruct("One", [("v", Annotated[str, msgspec.Meta(pattern=pattern)])])
        text = message_of(msgspec.json.encode({"v": value}), constrained)
        assert text == f"Expected `str` matching regex {pattern!r} - at `$.v`"
        assert in_words(text.rpartition(" - at ")[0]) != text.rpartition(" - at ")[0], pattern


def test_a_field_error_survives_msgspec_as_text_and_is_read_back_once() -> None:
    raised = FieldInvalid("survivor", "is required with customers_to_merge")
    assert raised.errors == [FieldError("survivor", "is required with customers_to_merge")]
    assert FieldInvalid.read(str(raised)) == FieldError("survivor", "is required with customers_to_merge")
    assert FieldInvalid.read("Expected `int`, got `str`") is None
    assert ometria_path("$.a[0].b") == "root > a > 0 > b"
