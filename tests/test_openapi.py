"""The OpenAPI 3.1 document at ``/v2/swagger.json`` and the Swagger UI at ``/v2/docs``.

The document is what clients and Schemathesis rely on: it must be valid OpenAPI 3.1, say that every
``/v2`` operation needs the ``X-Ometria-Auth`` key (and that ``/health`` and ``/ready`` do not), and
document the problems every ``/v2`` operation may answer with. The docs page must work offline.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema_rs
import pytest
from litestar.testing import TestClient
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from patron.app import create_app
from patron.config import Settings
from patron.store import Store

Document = dict[str, Any]
Operation = tuple[str, str, dict[str, Any]]  # method, path, operation object

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
JSON_SCHEMA_2020_12 = "https://json-schema.org/draft/2020-12/schema"
#: The content type each kind of asset the docs page references must be served with.
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip()


@pytest.fixture
def document(client: TestClient) -> Document:
    response = client.get("/v2/swagger.json")
    assert response.status_code == 200, response.text
    document: Document = response.json()
    return document


def operations(document: Document) -> list[Operation]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def v2_operations(document: Document) -> list[Operation]:
    found = [op for op in operations(document) if op[1].startswith("/v2/")]
    assert found, "the document describes no /v2 operation at all"
    return found


def security(document: Document, operation: dict[str, Any]) -> list[dict[str, list[str]]]:
    """The operation's security requirements: alternatives, any one of which suffices."""
    requirements: list[dict[str, list[str]]] = operation.get("security", document.get("security", []))
    return requirements


def needs_no_key(document: Document, operation: dict[str, Any]) -> bool:
    requirements = security(document, operation)
    return not requirements or {} in requirements


def needs_the_api_key(document: Document, operation: dict[str, Any]) -> bool:
    requirements = security(document, operation)
    return bool(requirements) and all("apikey" in requirement for requirement in requirements)


def response_schema(operation: dict[str, Any], status: str, media_type: str) -> object:
    content = operation["responses"].get(status, {}).get("content", {})
    return content.get(media_type, {}).get("schema")


# the document ------------------------------------------------------------------------------------


def test_the_document_needs_no_key_and_is_valid_openapi_3_1(client: TestClient) -> None:
    response = client.get("/v2/swagger.json")
    assert response.status_code == 200
    assert media_type(response) == "application/json"
    document = response.json()
    assert document["openapi"].startswith("3.1")
    # The OpenAPI 3.1 meta-schema (the one Schemathesis bundles) checks the document's structure...
    assert [f"{e.instance_path}: {e.message}" for e in OPENAPI_31_VALIDATOR.iter_errors(document)] == []
    # ...but not its schemas, which must each be valid JSON Schema 2020-12.
    invalid = [
        name
        for name, schema in document["components"]["schemas"].items()
        if not jsonschema_rs.meta.is_valid({"$schema": JSON_SCHEMA_2020_12, **schema})
    ]
    assert invalid == []


def test_the_apikey_scheme_is_the_ometria_auth_header(document: Document) -> None:
    scheme = document["components"]["securitySchemes"]["apikey"]
    assert {field: scheme.get(field) for field in ("type", "in", "name")} == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Ometria-Auth",
    }


def test_every_v2_operation_requires_the_api_key(document: Document) -> None:
    open_operations = [
        f"{method} {path}"
        for method, path, operation in v2_operations(document)
        if not needs_the_api_key(document, operation)
    ]
    assert open_operations == []


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_health_and_ready_need_no_key(document: Document, client: TestClient, path: str) -> None:
    assert needs_no_key(document, document["paths"][path]["get"])
    assert client.get(path).status_code == 200  # and indeed they answer without one


@pytest.mark.parametrize("status", ["403", "429"])
def test_every_v2_operation_documents_the_problem_it_answers_with(document: Document, status: str) -> None:
    undocumented = [
        f"{method} {path}"
        for method, path, operation in v2_operations(document)
        if response_schema(operation, status, PROBLEM_JSON) != PROBLEM_REF
    ]
    assert undocumented == []


def test_the_problem_schema_is_an_rfc_9457_problem(document: Document) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert {"title", "status", "detail"} <= set(problem["required"])
    assert problem["properties"]["status"]["type"] == "integer"
    assert {problem["properties"][field]["type"] for field in ("title", "detail", "type")} == {"string"}


def test_the_document_is_the_same_every_time_it_is_built(settings: Settings, store: Store) -> None:
    # Litestar fills a schema's `examples` with random values unless told not to (generate_examples).
    first, second = (create_app(settings, store).openapi_schema.to_schema() for _ in range(2))
    assert first == second


# the Swagger UI page -----------------------------------------------------------------------------


class _References(HTMLParser):
    """Collects the value of every ``src`` and ``href`` attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def referenced_urls(page: str) -> list[str]:
    parser = _References()
    parser.feed(page)
    parser.close()
    return parser.urls


def is_remote(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") or bool(parts.netloc)


def served(client: TestClient, url: str) -> tuple[str, int, str]:
    response = client.get(url)
    return url, response.status_code, media_type(response)


@pytest.fixture
def docs_page(client: TestClient) -> httpx.Response:
    return client.get("/v2/docs")


def test_the_docs_page_is_swagger_ui_without_a_key(client: TestClient, docs_page: httpx.Response) -> None:
    assert docs_page.status_code == 200
    assert media_type(docs_page) == "text/html"
    assert "swagger-ui-bundle.js" in docs_page.text
    assert "SwaggerUIBundle(" in client.get("/v2/docs/init.js").text  # no inline script: a file starts it


def test_the_docs_page_loads_nothing_from_another_host(docs_page: httpx.Response) -> None:
    urls = referenced_urls(docs_page.text)
    assert urls, "the page references no asset at all; the parser no longer sees them"
    assert [url for url in urls if is_remote(url)] == []


def test_every_asset_the_docs_page_references_is_served(
    client: TestClient, docs_page: httpx.Response
) -> None:
    urls = referenced_urls(docs_page.text)
    expected = [(url, 200, ASSET_TYPES.get(PurePosixPath(urlsplit(url).path).suffix)) for url in urls]
    assert [served(client, url) for url in urls] == expected
