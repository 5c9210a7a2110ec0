"""Reading import files: JSON Lines, JSON arrays and CSV through a mapping, items that tile the file
so a run resumes at any item's end, and the checkpoint's spans answered in any order."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patron.transfer.checkpoint import Spans
from patron.transfer.mapping import Mapping, MappingError
from patron.transfer.sources import Csv, JsonArray, JsonLines, open_source

pytestmark = pytest.mark.unit

text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)
records = st.lists(
    st.dictionaries(text, values, max_size=4).map(lambda r: {"@type": "order", **r}), max_size=12
)


def read_all(source: Any, start: int = 0, line: int = 1) -> list[Any]:
    return list(source.read(start, line))


@settings(max_examples=60, deadline=None)
@given(found=records, indent=st.sampled_from([None, 0, 2]), seed=st.integers(0, 1000))
def test_a_json_array_is_read_an_element_at_a_time_and_resumes_at_any_element(
    tmp_path_factory: pytest.TempPathFactory, found: list[dict[str, Any]], indent: int | None, seed: int
) -> None:
    path = tmp_path_factory.mktemp("array") / "records.json"
    path.write_text(json.dumps(found, indent=indent, ensure_ascii=bool(seed % 2)))
    items = read_all(JsonArray(path))
    assert [i.record for i in items] == found
    assert all(i.error is None for i in items)
    if items:
        cut = random.Random(seed).randrange(len(items))
        rest = read_all(JsonArray(path), items[cut].end, items[cut].after)
        assert [i.record for i in rest] == found[cut + 1 :]
        assert [i.line for i in rest] == [i.line for i in items[cut + 1 :]]


def test_json_lines_name_their_bad_lines_and_tile_the_file(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(
        b'{"@type": "order", "id": "1"}\n\nnot json\n[1]\n{"id": "2"}\n{"@type": "order", "id": "3"}'
    )
    items = read_all(JsonLines(path, record_type="order"))
    assert [(i.line, i.error is None) for i in items] == [
        (1, True),
        (3, False),
        (4, False),
        (5, True),
        (6, True),
    ]
    assert items[1].text == "not json" and "not a JSON object" in (items[2].error or "")
    assert (
        items[3].record == {"id": "2", "@type": "order"} and items[3].raw is None
    )  # re-encoded with its type
    assert items[0].raw == b'{"@type": "order", "id": "1"}'  # sent as read
    assert items[-1].end == path.stat().st_size
    assert [i.line for i in read_all(JsonLines(path), items[1].end, items[1].after)] == [4, 5, 6]


MAPPING = """
type = "product"
[columns]
sku = "id"
name = "title"
price = "price"
active = "is_active"
extra = "properties"
"""


def test_csv_cells_become_the_fields_types_and_quoted_newlines_keep_their_offsets(tmp_path: Path) -> None:
    (tmp_path / "map.toml").write_text(MAPPING)
    path = tmp_path / "products.csv"
    path.write_text(
        "sku,name,price,active,extra\n"
        'p1,"Two\nlines",9.5,true,"{""a"": 1}"\n'
        "p2,Plain,12,no,\n"
        "p3,Bad,abc,maybe,{oops\n"
    )
    source = open_source(path, None, None, Mapping.load(tmp_path / "map.toml"))
    items = read_all(source)
    assert [i.line for i in items] == [2, 4, 5]
    assert items[0].record == {
        "@type": "product",
        "id": "p1",
        "title": "Two\nlines",
        "price": 9.5,
        "is_active": True,
        "properties": {"a": 1},
    }
    assert items[1].record == {
        "@type": "product",
        "id": "p2",
        "title": "Plain",
        "price": 12.0,
        "is_active": False,
    }
    assert items[2].record is not None  # what the types cannot read goes as text, for the server to name
    assert (items[2].record["price"], items[2].record["is_active"], items[2].record["properties"]) == (
        "abc",
        "maybe",
        "{oops",
    )
    rest = read_all(source, items[0].end, items[0].after)
    assert [i.line for i in rest] == [4, 5]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ('type = "parcel"\n[columns]\na = "id"', "not one of"),
        ('type = "order"\n[columns]\n', "names no column"),
        ('type = "order"\n[columns]\nsku = "lineitems[].product_id"', 'map a column to "id"'),
        ('type = "order"\n[columns]\nid = "id"\nx = "lineitems[]"', "names a list"),
        ('type = "order"\n[columns]\nid = "id"\nx = "a..b"', "is not a field"),
        ("[columns", "Expected"),
        ('[columns]\nid = "id"', "no record type"),
    ],
)
def test_a_mapping_that_cannot_work_is_refused_before_anything_is_sent(
    tmp_path: Path, mapping: str, message: str
) -> None:
    (tmp_path / "map.toml").write_text(mapping)
    with pytest.raises(MappingError, match=message):
        Mapping.load(tmp_path / "map.toml")


def test_a_csv_lacking_a_mapped_column_is_refused(tmp_path: Path) -> None:
    (tmp_path / "map.toml").write_text(MAPPING)
    (tmp_path / "p.csv").write_text("sku,name\np1,x\n")
    with pytest.raises(MappingError, match="no column 'price', 'active', 'extra'"):
        Csv(tmp_path / "p.csv", Mapping.load(tmp_path / "map.toml"))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=20), st.randoms())
def test_spans_answered_in_any_order_end_where_the_last_one_ends(
    sizes: list[int], order: random.Random
) -> None:
    bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    spans = list(zip(bounds, bounds[1:], range(2, len(sizes) + 2), strict=False))
    order.shuffle(spans)
    state = Spans()
    for answered, (start, end, line) in enumerate(spans, 1):
        state.answered(start, end, line)
        assert all(state.covers(s, e) for s, e, _ in spans[:answered])
        assert not any(state.covers(s, e) for s, e, _ in spans[answered:])
    assert (state.done, state.line, state.ahead) == (bounds[-1], len(sizes) + 1, [])
