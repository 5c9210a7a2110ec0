"""The website tag's beacon format decoded, as a pure function (docs/compatibility.md, "On-site
tracking"; reference section 9.4): ``data`` is base64 with its letters' case swapped, of a PHP-style
query string (``d[lis][0][pid]=...``, keys and values URI-encoded). ``wire.decode`` gives the event,
or ``None`` for anything that is not one: an event needs a ``cid`` and ``sid`` (letters, digits,
``-``, ``_``), a ``type`` and a ``d`` object of at most 5 levels; at most 400 fields and 32 KB.

``test_tracking`` has hand-built payloads of each event type, some garbage and a property test that
the decoder never raises; these tables add the limits, the shape of ``d`` and the round trip through
``wire.encode``. A unit test: no app, no store.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import pytest

from patron.tracking import wire

pytestmark = pytest.mark.unit

BASE = "cid=visitor-1&sid=session_1&type=pageview"
#: The event ``BASE`` is, every other field its default.
EVENT: dict[str, Any] = {
    "type": "pageview",
    "channel": "system",
    "cid": "visitor-1",
    "sid": "session_1",
    "cnew": 0,
    "snew": 0,
    "nses": 0,
    "npv": 0,
    "uiid": None,
    "url": None,
    "rurl": None,
    "src": None,
    "osrc": None,
    "osts": None,
    "ecamp": None,
    "tids": None,
    "site": "default",
    "d": {},
}


def swapped(query: str) -> str:
    """What the tag sends for a query string: base64, letters' case swapped."""
    return base64.b64encode(query.encode()).decode().swapcase()


def decoded(data: str) -> dict[str, Any] | None:
    beacon = wire.decode(data)
    return None if beacon is None else msgspec.to_builtins(beacon)


#: (the query string after ``BASE``, the fields of the event that differ from ``EVENT``)
EVENTS = [
    pytest.param("", {}, id="the-least-event"),
    pytest.param(
        "&channel=custom&site=uk&cnew=1&snew=0&nses=3&npv=12&osts=1795740182",
        {"channel": "custom", "site": "uk", "cnew": 1, "nses": 3, "npv": 12, "osts": 1795740182},
        id="counts-read-as-numbers",
    ),
    pytest.param(
        "&url=https%3A%2F%2Fshop.example%2Fp%3Fx%3D1%26y%3D2&src=%7C%7C%7C%7Cnewsletter%7C%7C20784",
        {"url": "https://shop.example/p?x=1&y=2", "src": "||||newsletter||20784"},
        id="uri-encoded-values",
    ),
    pytest.param("&tlast=0&dsize=1280x720&rnd=a1b2", {}, id="unknown-fields-ignored"),
    pytest.param("&&&d%5Bpid%5D=p-1&", {"d": {"pid": "p-1"}}, id="empty-parts-skipped"),
    pytest.param("&d[pid]=p-1", {"d": {"pid": "p-1"}}, id="brackets-not-encoded"),
    pytest.param("&d%5Bq%5D=a+b%20c", {"d": {"q": "a+b c"}}, id="a-plus-is-a-plus-not-a-space"),
    pytest.param("&d%5Bname%5D=%C3%A9l%C3%A8ve", {"d": {"name": "\u00e9l\u00e8ve"}}, id="utf-8"),
    pytest.param("&d%5Bnote%5D=", {"d": {"note": ""}}, id="empty-value"),
    pytest.param("&d%5Bq%5D=a=b", {"d": {"q": "a=b"}}, id="equals-sign-in-a-value"),
    pytest.param("&d%5Bq%5D=1&d%5Bq%5D=2", {"d": {"q": "2"}}, id="a-repeated-key-the-last-wins"),
    pytest.param(
        "&d%5Blis%5D%5B1%5D%5Bpid%5D=b&d%5Blis%5D%5B0%5D%5Bpid%5D=a&d%5Blis%5D%5B0%5D%5Bq%5D=2",
        {"d": {"lis": [{"pid": "a", "q": "2"}, {"pid": "b"}]}},
        id="indexes-are-a-list-in-index-order",
    ),
    pytest.param(
        "&d%5Bl%5D%5B0%5D=a&d%5Bl%5D%5Bx%5D=b",
        {"d": {"l": {"0": "a", "x": "b"}}},
        id="an-index-among-names-is-a-name",
    ),
    pytest.param(
        "&d%5Bprofile%5D%5Bfirstname%5D=Ann&d%5Buiid%5D=ann%40example.org",
        {"d": {"profile": {"firstname": "Ann"}, "uiid": "ann@example.org"}},
        id="nested-object",
    ),
    pytest.param("&d[a][b][c][d][e]=deep", {"d": {"a": {"b": {"c": {"d": {"e": "deep"}}}}}}, id="d-5-levels"),
    pytest.param(
        "&" + "&".join(f"d%5Bk{i}%5D=v" for i in range(397)),
        {"d": {f"k{i}": "v" for i in range(397)}},
        id="400-fields",
    ),
    pytest.param("&cid=" + "c" * 64, {"cid": "c" * 64}, id="cid-64-characters"),
    pytest.param("&sid=" + "s" * 128, {"sid": "s" * 128}, id="sid-128-characters"),
    pytest.param("&type=" + "t" * 100, {"type": "t" * 100}, id="type-100-characters"),
    pytest.param("&type=add%20to%20wishlist", {"type": "add to wishlist"}, id="type-with-spaces"),
    pytest.param("&osts=1000000000000", {"osts": 10**12}, id="osts-at-the-bound"),
]


@pytest.mark.parametrize(("query", "changed"), EVENTS)
def test_decode(query: str, changed: dict[str, Any]) -> None:
    assert decoded(swapped(BASE + query)) == {**EVENT, **changed}


def with_a_plus() -> str:
    """The data of an event that has a ``+`` in it ("~~~" is "fn5+" in base64, at one of 3 offsets)."""
    return next(d for n in range(3) if "+" in (d := swapped(f"{BASE}&d%5Bq%5D={'x' * n}~~~~~~")))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(swapped(BASE).rstrip("="), id="padding-left-out"),
        pytest.param(f"\t{swapped(BASE)}\r\n", id="surrounding-tab-and-newline"),
        pytest.param(with_a_plus().replace("+", " "), id="plus-arrived-as-space"),
    ],
)
def test_what_a_transport_does_to_data_is_undone(data: str) -> None:
    found = decoded(data)
    assert found is not None
    assert (found["cid"], found["sid"], found["type"]) == ("visitor-1", "session_1", "pageview")


def sized(length: int) -> str:
    """The data of a valid event that is exactly ``length`` characters long (a multiple of 4)."""
    padding = length // 4 * 3 - len(BASE) - len("&pad=")
    data = swapped(f"{BASE}&pad={'x' * padding}")
    assert len(data) == length
    return data


def test_data_of_32768_characters_decodes_and_longer_is_refused() -> None:
    assert wire.MAX_DATA == 32_768
    assert decoded(sized(32_768)) == EVENT
    assert decoded(sized(32_772)) is None


#: data that is not an event, each refused whole
REFUSED = [
    pytest.param("", id="empty"),
    pytest.param("    ", id="blank"),
    pytest.param(
        base64.urlsafe_b64encode(b"cid=v&sid=s&type=x>>>???").decode().swapcase(), id="url-safe-alphabet"
    ),
    pytest.param(swapped(BASE) + "===", id="too-much-padding"),
    pytest.param(base64.b64encode(BASE.encode()).decode(), id="case-not-swapped"),
    pytest.param(base64.b64encode("cid=v&sid=s&type=\u00e9".encode()).decode().swapcase(), id="not-ascii"),
    pytest.param(swapped("sid=s&type=pageview"), id="no-cid"),
    pytest.param(swapped("cid=v&type=pageview"), id="no-sid"),
    pytest.param(swapped("cid=v&sid=s"), id="no-type"),
    pytest.param(swapped(BASE + "&type="), id="empty-type"),
    pytest.param(swapped(BASE + "&cid=visitor%201"), id="cid-with-a-space"),
    pytest.param(swapped(BASE + "&cid=v.1"), id="cid-with-a-dot"),
    pytest.param(swapped(BASE + "&cid=" + "c" * 65), id="cid-65-characters"),
    pytest.param(swapped(BASE + "&sid=" + "s" * 129), id="sid-129-characters"),
    pytest.param(swapped(BASE + "&type=" + "t" * 101), id="type-101-characters"),
    pytest.param(swapped(BASE + "&type=page%0Aview"), id="type-with-a-newline"),
    pytest.param(swapped(BASE + "&cnew=-1"), id="count-negative"),
    pytest.param(swapped(BASE + "&npv=many"), id="count-not-a-number"),
    pytest.param(swapped(BASE + "&osts=1000000000001"), id="osts-over-the-bound"),
    pytest.param(swapped(BASE + "&url=https%3A%2F%2Fa.example%2F%0D"), id="url-with-a-control-character"),
    pytest.param(swapped(BASE + "&url=" + "u" * 4097), id="url-4097-characters"),
    pytest.param(swapped(BASE + "&ecamp=" + "e" * 201), id="campaign-201-characters"),
    pytest.param(swapped(BASE + "&d=flat"), id="d-not-an-object"),
    pytest.param(swapped(BASE + "&d[a][b][c][d][e][f]=deep"), id="d-6-levels"),
    pytest.param(swapped(BASE + "&" + "&".join(f"d%5Bk{i}%5D=v" for i in range(398))), id="401-fields"),
    pytest.param(swapped(BASE + "&d%5B%5D=x"), id="empty-brackets"),
    pytest.param(swapped(BASE + "&d%5Ba%5D=1&d%5Ba%5D%5Bb%5D=2"), id="a-value-then-an-object"),
    pytest.param(swapped(BASE + "&d%5Ba%5D%5Bb%5D=2&d%5Ba%5D=1"), id="an-object-then-a-value"),
    pytest.param(swapped(BASE + "&d%5Ba=1"), id="unbalanced-bracket"),
    pytest.param(swapped(BASE + "&%5Ba%5D=1"), id="brackets-without-a-name"),
    pytest.param(swapped(BASE + "&flag"), id="a-field-without-equals"),
    pytest.param(swapped(BASE + "&d%5Bq%5D=%FF"), id="an-escape-that-is-not-utf-8"),
]


@pytest.mark.parametrize("data", REFUSED)
def test_what_is_not_an_event_is_refused(data: str) -> None:
    assert wire.decode(data) is None


#: (an event as the tag holds it, the event decoded from what ``wire.encode`` sends for it)
ROUND_TRIPS = [
    pytest.param(
        {
            "cid": "v1",
            "sid": "s1",
            "type": "pageview",
            "cnew": 1,
            "site": "uk",
            "d": {"type": "product", "pid": "p 1"},
        },
        {**EVENT, "cid": "v1", "sid": "s1", "cnew": 1, "site": "uk", "d": {"type": "product", "pid": "p 1"}},
        id="pageview",
    ),
    pytest.param(
        {
            "cid": "v1",
            "sid": "s1",
            "type": "setbasket",
            "d": {
                "lis": [{"pid": "p-1", "q": 2, "tot": "40.00"}, {"pid": "p-2", "vid": None}],
                "total": 59.5,
            },
        },
        {
            **EVENT,
            "cid": "v1",
            "sid": "s1",
            "type": "setbasket",
            "d": {"lis": [{"pid": "p-1", "q": "2", "tot": "40.00"}, {"pid": "p-2"}], "total": "59.5"},
        },
        id="numbers-become-text-null-is-left-out",
    ),
    pytest.param(
        {
            "cid": "v1",
            "sid": "s1",
            "type": "wishlist",
            "channel": "custom",
            "d": {"gift": True, "public": False},
        },
        {
            **EVENT,
            "cid": "v1",
            "sid": "s1",
            "type": "wishlist",
            "channel": "custom",
            "d": {"gift": "true", "public": "false"},
        },
        id="booleans-as-the-tag-sends-them",
    ),
    pytest.param(
        {
            "cid": "v1",
            "sid": "s1",
            "type": "identify",
            "d": {"uiid": "a+b@example.org", "note": "a&b=c [x] \u00e9 100%"},
        },
        {
            **EVENT,
            "cid": "v1",
            "sid": "s1",
            "type": "identify",
            "d": {"uiid": "a+b@example.org", "note": "a&b=c [x] \u00e9 100%"},
        },
        id="reserved-characters-survive",
    ),
]


@pytest.mark.parametrize(("event", "expected"), ROUND_TRIPS)
def test_what_encode_sends_decodes_to_the_event(event: dict[str, Any], expected: dict[str, Any]) -> None:
    data = wire.encode(event)
    assert data.isascii()
    assert decoded(data) == expected
