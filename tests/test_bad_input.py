"""Bad input against a real ``patron serve``: every write endpoint refuses malformed, oversized, mistyped and
unauthorised bodies with a 4xx problem naming what is wrong, the server stays up, and nothing is stored.

One server serves the module. The wrong-type and 1 MB string cases are generated from the record Structs
(``msgspec.inspect``), field by field and into nested Structs and list items, so a field added to a record
type is covered without editing this file. On ``/v2/push`` a bad record inside a well-formed batch is the
point: the 202 reply lists it as rejected with its ``error_path`` and accepts nothing. Every other case
must be a 4xx ``application/problem+json`` whose ``errors[].field`` names the path.

Control: the valid form of every body is accepted for a second account, so each case differs from a body
that works only by what makes it bad. The last test checks that the server survived and that the account
that received the bad input holds no contact, order, product or custom event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import msgspec.inspect as mi
import pytest

from conftest import Server, Tenant, create_tenant_cli, set_limits, start_server, wait_applied
from patron.config import MAX_BODY_BYTES
from patron.records.fields import RECORD_TOO_LARGE
from patron.records.types import RECORD_TYPES

PROBLEM = "application/problem+json"
DEPTH = 10_000
BIG_STRING = "a" * 1_000_000
MARK = "@@raw@@"  # a string in a record that is replaced by raw JSON bytes (see `spliced`)

ENDPOINTS = {
    "push": "/v2/push",
    "contact": "/v2/contacts/default/x",
    "order": "/v2/orders/x",
    "product": "/v2/products/x",
    "custom_event": "/v2/custom-events",
}
VALID: dict[str, dict[str, Any]] = {
    "contact": {"@type": "contact", "id": "x", "email": "x@example.com"},
    "order": {"@type": "order", "id": "x", "grand_total": 1.5},
    "product": {"@type": "product", "id": "x", "price": 1.5},
    "custom_event": {
        "@type": "custom_event",
        "id": "x",
        "event_type": "viewed",
        "identity_email": "x@example.com",
    },
}
#: The fields a single-record POST takes from its URL and checks against the body before anything else.
FROM_URL = {
    "contact": {"@type", "@collection", "id"},
    "order": {"@type", "id"},
    "product": {"@type", "id"},
    "custom_event": {"@type"},
}
#: A money field of each record type that has one.
MONEY = {"order": "grand_total", "product": "price"}
ENTITY_LISTS = [
    "/v2/contacts",
    "/v2/contacts/default",
    "/v2/orders",
    "/v2/products?includeVariants=true",
    "/v2/custom-events",
]


# expectations ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A 4xx problem; ``fields`` are the acceptable ``errors[].field`` values (empty: no ``errors``)."""

    status: int
    fields: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rejected:
    """A 202 push reply that accepts nothing and rejects the one record at one of ``paths``."""

    paths: frozenset[str]
    message: str | None = None


def problem(status: int, *fields: str) -> Problem:
    return Problem(status, frozenset(fields))


#: The body as a whole is refused (Patron says ``body``, or ``root`` when the top-level value is wrong).
WHOLE_BODY = problem(400, "body", "root")


@dataclass(frozen=True)
class Case:
    endpoint: str
    body: Callable[[], bytes]  # built when sent, so that megabyte bodies are not all held at collection
    expect: Problem | Rejected
    headers: tuple[tuple[str, str | None], ...] = ()  # over the JSON content type and the key; None drops


def record_type(endpoint: str) -> str:
    return "contact" if endpoint == "push" else endpoint


def wrap(endpoint: str, record: bytes) -> bytes:
    """The body that carries one record to ``endpoint``: a one-record batch for ``/v2/push``."""
    return b"[" + record + b"]" if endpoint == "push" else record


def spliced(
    endpoint: str, raw: bytes, kind: str | None = None, field: str = "properties"
) -> Callable[[], bytes]:
    """A valid record for ``endpoint`` with ``raw`` (any bytes) as ``field`` (default ``properties.p``)."""
    kind = kind or record_type(endpoint)
    value: Any = {"p": MARK} if field == "properties" else MARK
    record = msgspec.json.encode({**VALID[kind], field: value})
    return lambda: wrap(endpoint, record.replace(msgspec.json.encode(MARK), raw))


def valid_body(endpoint: str) -> bytes:
    return wrap(endpoint, msgspec.json.encode(VALID[record_type(endpoint)]))


def out_of_range_expectation(endpoint: str, *paths: str) -> Problem | Rejected:
    return Rejected(frozenset(paths)) if endpoint == "push" else problem(400, *paths)


# cases for every endpoint ------------------------------------------------------------------------

DEEP_ARRAY = b"[" * DEPTH + b"]" * DEPTH
DEEP_OBJECT = b'{"a":' * DEPTH + b"1" + b"}" * DEPTH


def body_cases(endpoint: str) -> Iterator[Any]:
    """The cases about the body as a whole, the content type and the key, for one endpoint."""
    valid = valid_body(endpoint)
    other_container = msgspec.json.encode(VALID["contact"] if endpoint == "push" else [VALID[endpoint]])
    raw: dict[str, Callable[[], bytes]] = {
        "invalid-json": lambda: wrap(endpoint, b'{"@type": "contact", "id": '),
        "trailing-garbage": lambda: valid + b"}",
        "invalid-utf8": spliced(endpoint, b'"\xff\xfe"'),
        "utf8-encoded-surrogate": spliced(endpoint, b'"\xed\xa0\x80"'),
        "lone-surrogate-escape": spliced(endpoint, b'"\\ud800"'),
        "deep-array": lambda: DEEP_ARRAY,
        "deep-object": lambda: DEEP_OBJECT,
        "deep-array-in-properties": spliced(endpoint, DEEP_ARRAY),
        "deep-object-in-properties": spliced(endpoint, DEEP_OBJECT),
        "10000-records": lambda: msgspec.json.encode([VALID[record_type(endpoint)]] * 10_000),
        "nan": spliced(endpoint, b"NaN"),
        "infinity": spliced(endpoint, b"Infinity"),
        "minus-infinity": spliced(endpoint, b"-Infinity"),
        "empty": lambda: b"",
        "whitespace": lambda: b" \r\n\t",
        "null": lambda: b"null",
        "number": lambda: b"1",
        "string": lambda: b'"x"',
        "empty-array": lambda: b"[]",
        "other-container": lambda: other_container,
    }
    for name, body in raw.items():
        yield pytest.param(Case(endpoint, body, WHOLE_BODY), id=f"{endpoint}-{name}")
    yield pytest.param(
        Case(endpoint, lambda: valid + b" " * MAX_BODY_BYTES, problem(413, "body")), id=f"{endpoint}-over-cap"
    )
    # Any declared type is read as JSON (tests/test_lenient.py), but a body that is none stays a 400,
    # and a charset other than UTF-8 a 415.
    content_types = {
        "text-plain": "text/plain; charset=utf-8",
        "form": "application/x-www-form-urlencoded",
        "missing": None,
    }
    for name, content_type in content_types.items():
        case = Case(endpoint, lambda: b"email=x%40example.com", WHOLE_BODY, (("content-type", content_type),))
        yield pytest.param(case, id=f"{endpoint}-content-type-{name}-not-json")
    for name, content_type in {
        "latin1": "application/json; charset=latin-1",
        "text-latin1": "text/plain; charset=latin-1",
    }.items():
        case = Case(endpoint, lambda: valid, problem(415, "Content-Type"), (("content-type", content_type),))
        yield pytest.param(case, id=f"{endpoint}-content-type-{name}")
    for name, key in {"no-key": None, "wrong-key": "0" * 32, "empty-key": ""}.items():
        yield pytest.param(
            Case(endpoint, lambda: valid, problem(403), (("X-Ometria-Auth", key),)), id=f"{endpoint}-{name}"
        )
    # 1e400 is valid JSON syntax but no float: an Infinity in disguise.
    for kind, money in MONEY.items():
        if endpoint in ("push", kind):
            expect = out_of_range_expectation(endpoint, f"root > {money}")
            case = Case(endpoint, spliced(endpoint, b"1e400", kind, money), expect)
            yield pytest.param(case, id=f"{endpoint}-{kind}-out-of-range-{money}")
    expect = out_of_range_expectation(endpoint, "root > properties > p", "root > properties")
    case = Case(endpoint, spliced(endpoint, b"1e400"), expect)
    yield pytest.param(case, id=f"{endpoint}-out-of-range-in-properties")


# cases for every field of every record type ------------------------------------------------------

#: The JSON kinds each msgspec type accepts (a float field also takes an integer).
_KINDS: dict[type[mi.Type], set[str]] = {
    mi.StrType: {"string"},
    mi.IntType: {"integer"},
    mi.FloatType: {"integer", "number"},
    mi.BoolType: {"boolean"},
    mi.NoneType: {"null"},
    mi.ListType: {"array"},
    mi.DictType: {"object"},
    mi.StructType: {"object"},
    mi.AnyType: {"string", "integer", "number", "boolean", "null", "array", "object"},
}
#: A value of each JSON kind, in the order a wrong value is chosen (an object where a string is expected).
_WRONG: list[tuple[str, Any]] = [
    ("object", {"wrong": "type"}),
    ("string", "wrong type"),
    ("array", ["wrong type"]),
    ("boolean", True),
]


def kinds(t: mi.Type) -> set[str]:
    if isinstance(t, mi.Metadata):  # a type with extra JSON schema (the currency and country codes)
        return kinds(t.type)
    if isinstance(t, mi.UnionType):
        return set().union(*(kinds(member) for member in t.types))
    if isinstance(t, mi.LiteralType):
        return {"string" if isinstance(v, str) else "integer" for v in t.values}
    return _KINDS[type(t)]


def wrong_value(t: mi.Type) -> Any:
    """A value of a JSON type that ``t`` does not accept (``UNSET`` when it accepts any)."""
    accepted = kinds(t)
    return next((value for kind, value in _WRONG if kind not in accepted), msgspec.UNSET)


def sample(t: mi.Type) -> Any:
    """A valid value of ``t``: for a Struct, its required fields only."""
    if isinstance(t, mi.Metadata):
        return sample(t.type)
    if isinstance(t, mi.UnionType):
        return sample(next(m for m in t.types if not isinstance(m, mi.NoneType)))
    if isinstance(t, mi.StructType):
        return {f.encode_name: sample(f.type) for f in t.fields if f.required}
    if isinstance(t, mi.LiteralType):
        return t.values[0]
    samples = {mi.StrType: "x", mi.IntType: 1, mi.FloatType: 1.5, mi.BoolType: True, mi.ListType: []}
    return samples.get(type(t), {})


Put = Callable[[Any], dict[str, Any]]  # a value at one position -> the whole record holding it


def _setter(put: Put, base: dict[str, Any], name: str) -> Put:
    return lambda value: put({**base, name: value})


def _fields(info: mi.StructType, path: tuple[str, ...], put: Put, base: dict[str, Any]) -> Iterator[Any]:
    for f in info.fields:
        yield from positions(f.type, (*path, f.encode_name), _setter(put, base, f.encode_name))


def positions(t: mi.Type, path: tuple[str, ...], put: Put) -> Iterator[tuple[tuple[str, ...], mi.Type, Put]]:
    """Every position inside a field of type ``t``: the field, then its nested fields and first item."""
    yield path, t, put
    for member in t.types if isinstance(t, mi.UnionType) else (t,):
        if isinstance(member, mi.StructType):
            yield from _fields(member, path, put, sample(member))
        elif isinstance(member, mi.ListType):
            yield from positions(member.item_type, (*path, "0"), lambda value, put=put: put([value]))
        elif isinstance(member, mi.DictType):
            yield from positions(member.value_type, (*path, "p"), lambda value, put=put: put({"p": value}))


def record_positions(kind: str) -> Iterator[tuple[tuple[str, ...], mi.Type, Put]]:
    info = mi.type_info(RECORD_TYPES[kind])
    assert isinstance(info, mi.StructType) and info.tag_field == "@type"
    base = VALID[kind]
    yield ("@type",), mi.StrType(), _setter(dict, base, "@type")
    yield from _fields(info, (), dict, base)


def field_expectation(endpoint: str, kind: str, path: tuple[str, ...], big: bool) -> Problem | Rejected:
    where = " > ".join(("root", *path))
    if endpoint == "push":
        if path == ("@type",):
            return problem(400, "root > 0 > @type")  # the batch names its records' types: not a push
        return Rejected(frozenset({"root"}), RECORD_TOO_LARGE) if big else Rejected(frozenset({where}))
    if len(path) == 1 and path[0] in FROM_URL[kind]:
        return problem(400, where)  # checked against the URL first
    return problem(400, "root") if big else problem(400, where)


def encoded(endpoint: str, record: dict[str, Any]) -> Callable[[], bytes]:
    return lambda: wrap(endpoint, msgspec.json.encode(record))


def field_cases() -> Iterator[Any]:
    for kind in RECORD_TYPES:
        for path, t, put in record_positions(kind):
            values = {
                "wrong-type": wrong_value(t),
                "1mb-string": BIG_STRING if "string" in kinds(t) else None,
            }
            for name, value in values.items():
                if value is msgspec.UNSET or value is None:
                    continue
                for endpoint in ("push", kind):
                    expect = field_expectation(endpoint, kind, path, name == "1mb-string")
                    case = Case(endpoint, encoded(endpoint, put(value)), expect)
                    yield pytest.param(case, id=f"{endpoint}-{kind}-{name}-{'.'.join(path)}")


CASES = [case for endpoint in ENDPOINTS for case in body_cases(endpoint)] + list(field_cases())


# the server --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    server: Server
    client: httpx.Client
    tenant: Tenant  # receives every bad request; must end with nothing stored
    control: Tenant  # receives the valid bodies


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, new_database_url: Callable[[], str | None]
) -> Iterator[Served]:
    """One server for the module, on the session's backend."""
    data_dir = tmp_path_factory.mktemp("bad-input") / "data"
    url = new_database_url()
    env = {} if url is None else {"PATRON_DATABASE_URL": url}
    tenant, control = (create_tenant_cli(data_dir, name, env) for name in ("shop", "control"))
    for account in (tenant, control):
        set_limits(data_dir, account.hash, "--push", "unlimited", "--data", "unlimited", environment=env)
    server = start_server(data_dir, environment=env)
    try:
        with server.client() as client:
            yield Served(server, client, tenant, control)
    finally:
        server.stop()


def send(served: Served, case: Case, tenant: Tenant | None = None) -> httpx.Response:
    headers: dict[str, str | None] = {"content-type": "application/json", **(tenant or served.tenant).headers}
    headers.update(case.headers)
    sent = {name: value for name, value in headers.items() if value is not None}
    return served.client.post(ENDPOINTS[case.endpoint], content=case.body(), headers=sent)


def check(response: httpx.Response, expect: Problem | Rejected) -> None:
    assert response.status_code < 500, response.text[:2000]
    assert "Traceback" not in response.text and 'File "' not in response.text
    if isinstance(expect, Rejected):
        assert response.status_code == 202, response.text[:2000]
        reply = response.json()
        assert (reply["accepted"], reply["rejected"]) == (0, 1), reply
        [error] = reply["errors"]
        assert error["index"] == 0 and error["error_path"] in expect.paths, error
        assert expect.message in (None, error["error_message"]), error
        return
    assert (response.status_code, response.headers["content-type"]) == (expect.status, PROBLEM), (
        response.text[:2000]
    )
    body = response.json()
    assert body["status"] == expect.status and body["title"] and body["detail"], body
    fields = [error["field"] for error in body.get("errors") or []]
    if expect.fields:
        assert fields and set(fields) <= expect.fields, body
    else:
        assert not fields, body


# tests -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_valid_body_of_each_endpoint_is_accepted(served: Served, endpoint: str) -> None:
    """The control: the bodies the cases start from are good ones (sent for the other account)."""
    response = send(served, Case(endpoint, lambda: valid_body(endpoint), WHOLE_BODY), served.control)
    assert response.status_code in (201, 202), response.text
    assert response.json()["accepted"] == 1
    wait_applied(served.client, served.control, response.json()["request_id"])


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused(served: Served, case: Case) -> None:
    check(send(served, case), case.expect)


def test_rejected_records_can_be_read_back(served: Served) -> None:
    case = Case(
        "push", spliced("push", b"1e400", "order", "grand_total"), Rejected(frozenset({"root > grand_total"}))
    )
    check(send(served, case), case.expect)
    listed = served.client.get("/v2/push/_errors", params={"limit": 1}, headers=served.tenant.headers)
    assert listed.status_code == 200, listed.text[:2000]
    assert listed.json()[0]["error_path"] == "root > grand_total"


def test_the_server_survived_and_stored_nothing(served: Served) -> None:
    # A barrier: the worker applies batches in arrival order, so once this one is applied every batch
    # queued before it (had any bad request been queued) is applied too.
    barrier = send(served, Case("order", lambda: valid_body("order"), WHOLE_BODY), served.control)
    assert barrier.status_code == 202, barrier.text
    wait_applied(served.client, served.control, barrier.json()["request_id"])
    assert served.server.process.poll() is None
    assert served.client.get("/health").status_code == 200
    for path in ENTITY_LISTS:
        response = served.client.get(path, headers=served.tenant.headers)
        assert (response.status_code, response.json()) == (200, []), f"{path}: {response.text[:2000]}"
    assert served.client.get("/v2/orders", headers=served.control.headers).json() == [VALID["order"]]
