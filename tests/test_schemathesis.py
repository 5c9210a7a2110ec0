"""Schemathesis over the served OpenAPI document: every operation answers as the document says.

The schema is loaded from the ASGI app, so the cases run against the real app on a real SQLite store.
Schemathesis runs that app's lifespan itself (which starts the store); the app is one of its own
rather than the ``client`` fixture's, because a second lifespan of one app would re-enter its event
emitter while the first still runs.

A few rules the server enforces cannot be stated in an OpenAPI document, so the generated cases are
mapped to keep them (``as_the_server_requires``, a ``map_case`` hook) rather than any check turned off:
a single-record POST's body names the record its URL names; an ``integer`` is written without a
fraction (JSON Schema counts ``2.0`` as one, msgspec does not); a timestamp or a day is a real
moment or date (no 30 February, hour 25 or leap second); a webhook endpoint's URL names a host that
resolves to an address it may reach (generated ones become a closed port of this host, which the
app's settings allow); a replay's range ends after it starts; and a segment's rule is one the server
can evaluate (which operators and values go with which field; generated rules become a fixed valid
one, the rule language having its own tests). Every other rule must be in the document.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pytest
import schemathesis
from hypothesis import given, settings
from schemathesis import APIOperation, BaseSchema, Case, HookContext
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from patron.app import create_app
from patron.config import Settings, Webhooks
from patron.records.fields import DAY_PATTERN, TIMESTAMP_PATTERN, utc_timestamp
from patron.store import Store

if TYPE_CHECKING:
    from conftest import Tenant

AUTH_HEADER = "X-Ometria-Auth"
#: The checks every operation must pass, whatever else Schemathesis runs by default.
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
#: No key, an empty key, and a well-formed key that names no account.
BAD_KEYS = [None, "", "0123456789abcdef" * 2]
FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None)
#: A key's refusal comes before the request is read: a few cases of each operation show it.
FUZZ_KEYS = settings(FUZZ, max_examples=8)
#: How long the worker may take to apply an accepted write before the test stops waiting (it takes ms).
APPLY_TIMEOUT = 30.0
#: The body field a single-record POST must hold equal to each of its path parameters.
BODY_FIELD_OF_PATH_PARAMETER = {
    "collection": "@collection",
    "contact_id": "id",
    "order_id": "id",
    "product_id": "id",
}
#: Strings of the form of a timestamp or a day, each with the server's check that it is a real one, and
#: a real one to put in its place when it is not.
CALENDAR = [
    (re.compile(TIMESTAMP_PATTERN), utc_timestamp, "2024-02-29T23:59:59+00:00"),
    (re.compile(DAY_PATTERN), date.fromisoformat, "2024-02-29"),
]


def is_real(check: Callable[[str], object], value: str) -> bool:
    try:
        check(value)
    except ValueError:
        return False
    return True


def as_the_server_reads(value: Any) -> Any:
    """``value`` (a generated body) with each integral float made an ``int``, and each string of the
    form of a timestamp or a day that is no real one replaced by one that is."""
    if isinstance(value, dict):
        return {name: as_the_server_reads(each) for name, each in value.items()}
    if isinstance(value, list):
        return [as_the_server_reads(each) for each in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        for form, check, real in CALENDAR:
            if form.match(value) and not is_real(check, value):
                return real
    return value


#: What a generated webhook URL becomes (a closed port: nothing is ever delivered), and a replay's range.
WEBHOOK_URL = "https://127.0.0.1:9/hook"
REPLAY_SPAN = {"since": "2024-01-01T00:00:00+00:00", "until": "2024-01-02T00:00:00+00:00"}


#: What a generated segment's rule becomes: the document states each condition's shape, but not which
#: operators and values go with which field (docs/segments.md), which the server checks.
SEGMENT_RULE = {
    "all": [{"field": "stats.orders", "op": "gte", "value": 1}, {"consent": "email", "is": "subscribed"}]
}


def as_the_server_requires(context: HookContext, case: Case) -> Case:
    """Map a generated case to keep the rules the document cannot state (see the module's docstring).

    A single-record POST's body gets the ``@collection`` and ``id`` of its URL, as the server reads the
    URL (Schemathesis percent-encodes generated path parameters)."""
    if isinstance(case.body, dict | list):
        case.body = as_the_server_reads(case.body)
    if isinstance(case.body, dict) and "/segments" in case.operation.path and "rules" in case.body:
        case.body["rules"] = SEGMENT_RULE
    if isinstance(case.body, dict) and "/webhooks" in case.operation.path:
        if "url" in case.body:
            case.body["url"] = WEBHOOK_URL
        if "since" in case.body and "until" in case.body:
            case.body.update(REPLAY_SPAN)
    if isinstance(case.body, dict):
        for parameter, value in (case.path_parameters or {}).items():
            if case.operation.method.upper() == "POST" and parameter in BODY_FIELD_OF_PATH_PARAMETER:
                case.body[BODY_FIELD_OF_PATH_PARAMETER[parameter]] = unquote(value)
    return case


@pytest.fixture
def api_schema(settings: Settings, store: Store) -> Iterator[BaseSchema]:
    loopback = Webhooks(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),))
    app = create_app(replace(settings, webhooks=loopback), store)
    try:
        schema = schemathesis.openapi.from_asgi("/v2/swagger.json", app)
        schema.hook("map_case")(as_the_server_requires)
        yield schema
    finally:
        asgi.shutdown_lifespans()  # the lifespan Schemathesis started for `app`


def for_each_operation(
    schema: BaseSchema, subtests: pytest.Subtests, check: Callable[[Case], None], fuzzing: settings = FUZZ
) -> None:
    """Run ``check`` on generated cases of every operation of ``schema``, one subtest per operation."""
    operations: list[APIOperation] = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the schema has no operation to test"
    for operation in operations:
        with subtests.test(operation.label):
            fuzz(operation, check, fuzzing)


def fuzz(operation: APIOperation, check: Callable[[Case], None], fuzzing: settings) -> None:
    @fuzzing
    @given(case=operation.as_strategy())
    def run(case: Case) -> None:
        check(case)

    run()


def call_with_key(case: Case, key: str | None) -> Response:
    """Call with ``key`` in place of the key Schemathesis generated (with none if ``key`` is None)."""
    case.headers = {
        name: value for name, value in (case.headers or {}).items() if name.lower() != AUTH_HEADER.lower()
    }
    return case.call(headers=None if key is None else {AUTH_HEADER: key})


def applied(schema: BaseSchema, tenant: Tenant, request_id: str) -> dict[str, Any]:
    """The status of push request ``request_id`` once the worker has applied it (read through
    Schemathesis's transport: the app's lifespan is Schemathesis's)."""
    status = schema["/v2/push/{request_id}"]["GET"].Case(path_parameters={"request_id": request_id})
    deadline = time.monotonic() + APPLY_TIMEOUT
    while True:
        found: dict[str, Any] = status.call(headers=tenant.headers).json()
        if found.get("status") == "applied":
            return found
        assert time.monotonic() < deadline, f"push {request_id} was not applied in {APPLY_TIMEOUT} s: {found}"
        time.sleep(0.01)


def latest_push_error(schema: BaseSchema, tenant: Tenant) -> Any:
    errors = schema["/v2/push/_errors"]["GET"].Case(query={"limit": 1})
    return errors.call(headers=tenant.headers).json()


def assert_refused(response: Response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"][0].split(";")[0] == "application/problem+json"
    assert response.json()["detail"] == "API key is not authorised to access this resource"


def test_the_default_checks_include_every_conformance_check(api_schema: BaseSchema) -> None:
    config = api_schema.config.checks_config_for()
    assert [
        check.__name__ for check in CONFORMANCE if not config.get_by_name(name=check.__name__).enabled
    ] == []


def test_every_operation_conforms_with_a_valid_key(
    api_schema: BaseSchema, tenant: Tenant, subtests: pytest.Subtests
) -> None:
    def check(case: Case) -> None:
        response = case.call_and_validate(headers=tenant.headers)  # the default checks
        assert response.status_code not in (403, 429), response.text  # the key and its limits let it through

    for_each_operation(api_schema, subtests, check)


def test_every_record_a_write_accepts_is_applied(
    api_schema: BaseSchema, tenant: Tenant, subtests: pytest.Subtests
) -> None:
    def check(case: Case) -> None:
        response = case.call(headers=tenant.headers)
        if response.status_code not in (201, 202):  # what is refused is the conformance test's
            return
        reply = response.json()
        if "request_id" in reply:  # records, queued
            status = applied(api_schema, tenant, reply["request_id"])
            assert status["applied"] == reply["accepted"], (status, latest_push_error(api_schema, tenant))
        elif case.operation.path == "/v2/merge-profile":  # a job, queued: it ends, one way or the other
            applied(api_schema, tenant, reply["id"])
            job = api_schema["/v2/merge-profile/{job_id}"]["GET"].Case(
                path_parameters={"job_id": reply["id"]}
            )
            assert job.call(headers=tenant.headers).json()["status"] in ("completed", "failed")
        elif case.operation.path == "/v2/data-deletion-requests":  # a request, queued: it completes
            read = api_schema["/v2/data-deletion-requests/{request_id}"]["GET"]
            status = read.Case(path_parameters={"request_id": reply["id"]})
            deadline = time.monotonic() + APPLY_TIMEOUT
            while (found := status.call(headers=tenant.headers).json())["status"] != "completed":
                assert time.monotonic() < deadline, f"not completed in {APPLY_TIMEOUT} s: {found}"
                time.sleep(0.01)
        elif "message_id" in reply:  # an email, in the outbox (no SMTP here: it stays queued)
            read = api_schema["/v2/transactional-email/{message_id}"]["GET"]
            status = read.Case(path_parameters={"message_id": reply["message_id"]}).call(
                headers=tenant.headers
            )
            assert status.json()["status"] in ("queued", "sandbox"), status.text
        else:  # written at once (a list, a template, a segment or its export, a webhook endpoint or a replay)
            written = (
                "/v2/lists",
                "/v2/templates",
                "/v2/segments",
                "/v2/segments/{segment_id}/export",
                "/v2/webhooks",
                "/v2/webhooks/{webhook_id}/replay",
            )
            assert case.operation.path in written, case.operation.path

    for_each_operation(api_schema.include(method="POST"), subtests, check)


@pytest.mark.usefixtures("tenant")  # an account exists, but none of these keys is its key
def test_every_v2_operation_refuses_a_missing_or_wrong_key(
    api_schema: BaseSchema, subtests: pytest.Subtests
) -> None:
    def check(case: Case) -> None:
        generated = case.call()  # Schemathesis fills X-Ometria-Auth with arbitrary strings
        for response in [generated, *(call_with_key(case, key) for key in BAD_KEYS)]:
            case.validate_response(response, checks=CONFORMANCE)
            assert_refused(response)

    for_each_operation(api_schema.include(path_regex="^/v2/"), subtests, check, FUZZ_KEYS)
