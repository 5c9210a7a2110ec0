"""Lenient readings through HTTP: what real clients send that Ometria's documentation does not show,
read as they mean it, with a warning in the reply and in ``/v2/push/_errors``; and a strict account,
which is refused each of them.

The bodies are the clients' own: a C# client's ``Content-Type: text/plain; charset=utf-8``, none at
all, curl's ``-d`` (``application/x-www-form-urlencoded``); PHP's ``date('Y-m-d\\TH:i:s')`` and its
``json_encode`` of an empty array (``[]`` for an empty object); .NET's ``DateTime`` with seven digits
of a second and no offset. The module shares one app (``app_fixtures``), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from conftest import Tenant, eventually, run_cli, wait_applied
from patron import accounts
from support.app import App, Client, app_fixtures
from support.http import assert_problem, errors, post, read
from support.records import minimal

shared, client, make_tenant = app_fixtures()

#: The Content-Types clients send a JSON body with (None: no header at all), and what the warning says.
CONTENT_TYPES = {
    "csharp-text-plain": ("text/plain; charset=utf-8", "text/plain"),
    "no-content-type": (None, "not given"),
    "curl-form": ("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"),
}
PHP_NOW = "2019-05-01T10:00:00"  # date('Y-m-d\TH:i:s')
DOTNET_NOW = "2019-05-01T10:00:00.1234567"  # DateTime.ToString("o") of an unspecified kind
NO_OFFSET = "timestamp_no_offset"
EMPTY_ARRAY = "empty_array_as_object"
CONTENT_TYPE = "content_type"


def send(client: Client, tenant: Tenant, path: str, body: Any, content_type: str | None) -> httpx.Response:
    """POST ``body`` (compact JSON, or bytes as given) with exactly ``content_type`` (None: no header)."""
    content = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    headers = dict(tenant.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.post(path, content=content, headers=headers)


def accepted(response: httpx.Response, status: int = 202) -> dict[str, Any]:
    assert response.status_code == status, response.text
    reply: dict[str, Any] = response.json()
    assert reply["rejected"] == 0, reply
    return reply


def warning(index: int | None, record_id: str | None, path: str, message: str, kind: str) -> dict[str, Any]:
    return {"index": index, "id": record_id, "path": path, "message": message, "kind": kind}


def no_offset(index: int, record_id: str, path: str = "root > timestamp") -> dict[str, Any]:
    field = path.rpartition(" > ")[2]
    return warning(index, record_id, path, f"{field} has no offset; read as UTC", NO_OFFSET)


def emptied(index: int, record_id: str, path: str) -> dict[str, Any]:
    field = path.rpartition(" > ")[2]
    return warning(
        index, record_id, path, f"{field} was an empty array; read as an empty object", EMPTY_ARRAY
    )


def feed(client: Client, tenant: Tenant) -> list[tuple[Any, ...]]:
    """``/v2/push/_errors`` as (severity, kind, index, id, error_path, error_message, record), oldest
    first."""
    return [
        (e["severity"], e["kind"], e["index"], e["id"], e["error_path"], e["error_message"], e["record"])
        for e in reversed(errors(client, tenant))
    ]


def as_fed(warnings: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows ``/v2/push/_errors`` shows for a reply's lenient warnings (a warning keeps no record)."""
    return [("warning", w["kind"], w["index"], w["id"], w["path"], w["message"], None) for w in warnings]


def strict(app: App, tenant: Tenant, state: str) -> None:
    """``patron accounts set-strict``, then wait until the API sees it (keys are cached 3 seconds)."""
    result = run_cli(
        app.data_dir, "accounts", "set-strict", "--account", tenant.hash, state, environment=app.environment
    )
    assert result.stdout.startswith(f"strict {state} for {tenant.hash}"), result.stdout
    wanted = state == "on"
    eventually(lambda: read(app.client, tenant, "/v2/account")["strict"] is wanted, "strict seen", 10)


def strict_tenant(app: App, name: str = "strict shop") -> Tenant:
    """A new account, strict before its key is first used."""
    tenant = app.tenant(name)
    app.store.write_blocking(lambda conn: accounts.set_strict(conn, tenant.hash, True))
    return tenant


# Content-Type -----------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_a_push_under_another_content_type_is_read_as_json(
    client: Client, tenant: Tenant, content_type: str
) -> None:
    header, shown = CONTENT_TYPES[content_type]
    reply = accepted(send(client, tenant, "/v2/push", [minimal("order", "o1", grand_total=10)], header))
    expected = warning(None, None, "Content-Type", f"Content-Type was {shown}; read as JSON", CONTENT_TYPE)
    assert reply["warnings"] == [expected]
    assert reply["accepted"] == 1
    wait_applied(client, tenant, reply["request_id"])
    assert read(client, tenant, "/v2/orders/o1")["grand_total"] == 10
    assert feed(client, tenant) == as_fed([expected])


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_a_product_posted_under_another_content_type_is_read_as_json(
    client: Client, tenant: Tenant, content_type: str
) -> None:
    header, shown = CONTENT_TYPES[content_type]
    reply = accepted(send(client, tenant, "/v2/products/p1", {"title": "Shoe", "price": 5}, header), 201)
    expected = warning(None, None, "Content-Type", f"Content-Type was {shown}; read as JSON", CONTENT_TYPE)
    assert reply["warnings"] == [expected]
    wait_applied(client, tenant, reply["request_id"])
    assert read(client, tenant, "/v2/products/p1")["title"] == "Shoe"
    assert feed(client, tenant) == as_fed([expected])


def test_application_json_gets_no_warning_whatever_its_case_and_charset(
    client: Client, tenant: Tenant
) -> None:
    for header in ("application/json", "Application/JSON; charset=UTF-8", 'application/json;charset="utf-8"'):
        reply = accepted(send(client, tenant, "/v2/push", [minimal("order", "o1")], header))
        assert "warnings" not in reply, header
    assert feed(client, tenant) == []


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize("path", ["/v2/push", "/v2/products/p1"])
def test_a_body_that_is_not_json_is_still_a_400_naming_the_body(
    client: Client, tenant: Tenant, content_type: str, path: str
) -> None:
    header, _ = CONTENT_TYPES[content_type]
    problem = assert_problem(send(client, tenant, path, b"title=Shoe&price=5", header), 400, "body")
    assert "malformed" in problem["detail"], problem


@pytest.mark.parametrize("header", ["text/plain; charset=latin-1", "application/json; charset=utf-16"])
def test_a_charset_other_than_utf_8_is_still_a_415(client: Client, tenant: Tenant, header: str) -> None:
    response = send(client, tenant, "/v2/push", [minimal("order", "o1")], header)
    assert_problem(response, 415, "Content-Type")


def test_other_json_endpoints_accept_another_content_type(client: Client, tenant: Tenant) -> None:
    for path, body, status in [
        ("/v2/lists", {"title": "VIP"}, 201),
        ("/v2/templates", {"subject": "Hi", "html": "<p>Hi</p>"}, 201),
        ("/v2/data-deletion-requests", {"email": "nobody@example.com"}, 202),
    ]:
        for header, _ in CONTENT_TYPES.values():
            response = send(client, tenant, path, body, header)
            assert response.status_code == status, (path, header, response.text)
            assert "warnings" not in response.json()
    assert len(read(client, tenant, "/v2/lists")) == 3


# timestamps -------------------------------------------------------------------------------------


def test_timestamps_without_an_offset_are_read_as_utc_with_a_warning(client: Client, tenant: Tenant) -> None:
    orders = [
        minimal("order", "php", timestamp=PHP_NOW),
        minimal("order", "dotnet", timestamp=DOTNET_NOW),
        minimal("order", "space", timestamp="2019-05-01 10:00:00"),
        minimal("order", "space-offset", timestamp="2019-05-01 11:00:00+01:00"),
        minimal("order", "long-fraction", timestamp="2019-05-01T10:00:00.123456789012Z"),
        minimal("order", "minutes", timestamp="2019-05-01T10:00"),
    ]
    reply = accepted(post(client, tenant, orders))
    assert reply["accepted"] == 6
    expected = [no_offset(0, "php"), no_offset(1, "dotnet"), no_offset(2, "space"), no_offset(5, "minutes")]
    assert reply["warnings"] == expected
    wait_applied(client, tenant, reply["request_id"])
    stored = {o: read(client, tenant, f"/v2/orders/{o}")["timestamp"] for o in [r["id"] for r in orders]}
    assert stored == {
        "php": "2019-05-01T10:00:00+00:00",
        "dotnet": "2019-05-01T10:00:00.123456+00:00",  # cut to microseconds
        "space": "2019-05-01T10:00:00+00:00",
        "space-offset": "2019-05-01T10:00:00+00:00",
        "long-fraction": "2019-05-01T10:00:00.123456+00:00",
        "minutes": "2019-05-01T10:00:00+00:00",
    }
    assert feed(client, tenant) == as_fed(expected)


def test_nested_timestamps_without_an_offset_are_named_by_their_path(client: Client, tenant: Tenant) -> None:
    sms = {"allow_marketing": True, "dt_updated_marketing": DOTNET_NOW}
    contact = minimal("contact", "c1", timestamp_acquired=PHP_NOW, channels={"sms": sms})
    listing = {"store": "uk", "special_price_dt_from": PHP_NOW}
    product = minimal("product", "p1", special_price_dt_to=PHP_NOW, listings=[listing])
    contact_reply = accepted(post(client, tenant, [contact]))
    product_reply = accepted(post(client, tenant, [product]))
    assert contact_reply["warnings"] == [
        no_offset(0, "c1", "root > timestamp_acquired"),
        no_offset(0, "c1", "root > channels > sms > dt_updated_marketing"),
    ]
    assert product_reply["warnings"] == [
        no_offset(0, "p1", "root > special_price_dt_to"),
        no_offset(0, "p1", "root > listings > 0 > special_price_dt_from"),
    ]
    wait_applied(client, tenant, product_reply["request_id"])
    stored_contact = read(client, tenant, "/v2/contacts/default/c1")
    assert stored_contact["timestamp_acquired"] == "2019-05-01T10:00:00+00:00"
    assert stored_contact["channels"]["sms"]["dt_updated_marketing"] == "2019-05-01T10:00:00.123456+00:00"
    stored_product = read(client, tenant, "/v2/products/p1")
    assert stored_product["listings"][0]["special_price_dt_from"] == "2019-05-01T10:00:00+00:00"


@pytest.mark.parametrize(
    "sent", ["yesterday", "2019-05-01", "2019-13-01T10:00:00", "2019-05-01T10:00:00 +00:00"]
)
def test_a_string_that_is_not_a_moment_is_still_refused_with_its_path(
    client: Client, tenant: Tenant, sent: str
) -> None:
    reply = post(client, tenant, [minimal("order", "bad", timestamp=sent)]).json()
    assert (reply["accepted"], reply["rejected"]) == (0, 1)
    [error] = reply["errors"]
    assert (error["index"], error["id"], error["error_path"]) == (0, "bad", "root > timestamp")
    assert "kind" not in error and "warnings" not in reply


def test_a_rejected_record_s_timestamp_warns_about_nothing(client: Client, tenant: Tenant) -> None:
    """A record rejected after its timestamp was read as UTC leaves no warning to its neighbour."""
    bad = minimal("order", "bad", timestamp=PHP_NOW, currency="XYZ")
    reply = post(client, tenant, [bad, minimal("order", "fine")]).json()
    assert (reply["accepted"], reply["rejected"]) == (1, 1)
    assert reply["errors"][0]["error_path"] == "root > currency"
    assert "warnings" not in reply


# empty arrays for objects -----------------------------------------------------------------------


def test_an_empty_array_for_an_order_s_objects_is_read_as_an_empty_object(
    client: Client, tenant: Tenant
) -> None:
    order = minimal(
        "order",
        "php",
        properties=[],
        customer=[],
        shipping_address=[],
        billing_address=[],
        totals=[],
        lineitems=[{"product_id": "sku", "quantity": 1, "properties": [], "totals": []}],
        timestamp=PHP_NOW,
    )
    reply = accepted(post(client, tenant, [order]))
    expected = [
        emptied(0, "php", "root > properties"),
        emptied(0, "php", "root > customer"),
        emptied(0, "php", "root > shipping_address"),
        emptied(0, "php", "root > billing_address"),
        emptied(0, "php", "root > totals"),
        emptied(0, "php", "root > lineitems > 0 > properties"),
        emptied(0, "php", "root > lineitems > 0 > totals"),
        no_offset(0, "php"),
    ]
    assert reply["warnings"] == expected
    wait_applied(client, tenant, reply["request_id"])
    stored = read(client, tenant, "/v2/orders/php")
    assert {
        k: stored[k] for k in ("properties", "customer", "shipping_address", "billing_address", "totals")
    } == {
        "properties": {},
        "customer": {},
        "shipping_address": {},
        "billing_address": {},
        "totals": {},
    }
    assert stored["lineitems"] == [{"product_id": "sku", "quantity": 1, "properties": {}, "totals": {}}]
    assert stored["timestamp"] == "2019-05-01T10:00:00+00:00"
    assert feed(client, tenant) == as_fed(expected)


def test_an_empty_array_for_a_contact_s_objects_is_read_as_an_empty_object(
    client: Client, tenant: Tenant
) -> None:
    contacts = [
        minimal("contact", "c1", properties=[], channels=[]),
        minimal("contact", "c2", channels={"sms": []}, customer=[]),  # a contact has no customer
    ]
    reply = accepted(post(client, tenant, contacts))
    assert reply["warnings"] == [
        emptied(0, "c1", "root > properties"),
        emptied(0, "c1", "root > channels"),
        {"index": 1, "id": "c2", "path": "root > customer", "message": "unknown field; not stored"},
        emptied(1, "c2", "root > channels > sms"),
    ]
    wait_applied(client, tenant, reply["request_id"])
    first = read(client, tenant, "/v2/contacts/default/c1")
    assert (first["properties"], first["channels"]) == ({}, {})
    second = read(client, tenant, "/v2/contacts/default/c2")
    assert second["channels"] == {"sms": {}} and "customer" not in second
    # the unknown field is not a lenient reading: the feed lists only the empty arrays
    assert [row[4] for row in feed(client, tenant)] == [
        "root > properties",
        "root > channels",
        "root > channels > sms",
    ]


def test_an_empty_array_posted_to_a_product_s_url_is_read_as_an_empty_object(
    client: Client, tenant: Tenant
) -> None:
    reply = accepted(send(client, tenant, "/v2/products/p1", {"properties": []}, "text/plain"), 201)
    assert reply["warnings"] == [
        warning(None, None, "Content-Type", "Content-Type was text/plain; read as JSON", CONTENT_TYPE),
        emptied(0, "p1", "root > properties"),
    ]
    wait_applied(client, tenant, reply["request_id"])
    assert read(client, tenant, "/v2/products/p1")["properties"] == {}


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"properties": [1]}, "root > properties"),  # an array that is not empty is no object
        ({"properties": [], "customer": ["x"]}, "root > customer"),
        ({"lineitems": [[]]}, "root > lineitems > 0"),  # an item of a list is not read leniently
        ({"lineitems": {}}, "root > lineitems"),  # nor is an object read as an array
    ],
)
def test_other_arrays_where_an_object_belongs_are_still_refused(
    client: Client, tenant: Tenant, changes: dict[str, Any], path: str
) -> None:
    reply = post(client, tenant, [minimal("order", "bad", **changes)]).json()
    assert (reply["accepted"], reply["rejected"]) == (0, 1)
    assert reply["errors"][0]["error_path"].startswith(path), reply
    assert "warnings" not in reply


# strict accounts --------------------------------------------------------------------------------


def test_a_strict_account_is_refused_each_lenient_reading(shared: App, client: Client) -> None:
    tenant = strict_tenant(shared)
    assert read(client, tenant, "/v2/account")["strict"] is True
    for header, _ in CONTENT_TYPES.values():
        for path in ("/v2/push", "/v2/products/p1", "/v2/lists"):
            body = [minimal("product", "p1")] if path == "/v2/push" else {"title": "VIP"}
            problem = assert_problem(send(client, tenant, path, body, header), 415, "Content-Type")
            assert "strict" in problem["detail"]
    records = [
        minimal("order", "php", timestamp=PHP_NOW),
        minimal("order", "dotnet", timestamp=DOTNET_NOW),
        minimal("order", "empty", properties=[]),
        minimal("order", "nested", lineitems=[{"product_id": "sku", "quantity": 1, "totals": []}]),
        minimal("order", "fine", timestamp="2019-05-01T10:00:00Z", properties={}),
    ]
    reply = post(client, tenant, records).json()
    assert (reply["accepted"], reply["rejected"]) == (1, 4)
    assert "warnings" not in reply
    assert [(e["index"], e["id"], e["error_path"], e["kind"]) for e in reply["errors"]] == [
        (0, "php", "root > timestamp", NO_OFFSET),
        (1, "dotnet", "root > timestamp", NO_OFFSET),
        (2, "empty", "root > properties", EMPTY_ARRAY),
        (3, "nested", "root > lineitems > 0 > totals", EMPTY_ARRAY),
    ]
    assert "strict" in reply["errors"][0]["error_message"] and "offset" in reply["errors"][0]["error_message"]
    assert "strict" in reply["errors"][2]["error_message"] and "array" in reply["errors"][2]["error_message"]
    kept = errors(client, tenant)
    assert [(e["severity"], e["kind"], e["id"]) for e in reversed(kept)] == [
        ("error", NO_OFFSET, "php"),
        ("error", NO_OFFSET, "dotnet"),
        ("error", EMPTY_ARRAY, "empty"),
        ("error", EMPTY_ARRAY, "nested"),
    ]
    assert kept[-1]["record"] == records[0]  # a rejected record is kept as sent
    problem = assert_problem(
        post(client, tenant, {"properties": []}, "/v2/products/p2"), 400, "root > properties"
    )
    assert "strict" in problem["detail"]


def test_strict_turns_on_and_off_with_the_command(shared: App, client: Client) -> None:
    tenant = shared.tenant("toggled")
    assert read(client, tenant, "/v2/account")["strict"] is False
    body = [minimal("order", "o1", timestamp=PHP_NOW)]
    strict(shared, tenant, "on")
    assert_problem(send(client, tenant, "/v2/push", body, "text/plain"), 415, "Content-Type")
    refused = post(client, tenant, body).json()
    assert (refused["accepted"], refused["errors"][0]["kind"]) == (0, NO_OFFSET)
    strict(shared, tenant, "off")
    reply = accepted(send(client, tenant, "/v2/push", body, "text/plain"))
    assert [w["kind"] for w in reply["warnings"]] == [CONTENT_TYPE, NO_OFFSET]
    wait_applied(client, tenant, reply["request_id"])
    assert read(client, tenant, "/v2/orders/o1")["timestamp"] == "2019-05-01T10:00:00+00:00"


def test_set_strict_on_an_unknown_account_is_a_one_line_error(shared: App) -> None:
    result = run_cli(
        shared.data_dir,
        "accounts",
        "set-strict",
        "--account",
        "0000000000000000",
        "on",
        check=False,
        environment=shared.environment,
    )
    assert result.returncode == 1
    assert result.stderr == "Error: no account has the hash '0000000000000000'\n"


def test_accounts_list_shows_strict(shared: App) -> None:
    tenant = strict_tenant(shared, "listed strict")
    relaxed = shared.tenant("listed relaxed")
    listed = run_cli(shared.data_dir, "accounts", "list", "--json", environment=shared.environment)
    by_hash = {a["account_hash"]: a for a in json.loads(listed.stdout)}
    assert (by_hash[tenant.hash]["strict"], by_hash[relaxed.hash]["strict"]) == (True, False)
