"""``Client``: the API from ordinary code, one request at a time."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Self

import httpx

from patron.client.batching import (
    MAX_REQUEST_BYTES,
    Batch,
    Encoded,
    Outcome,
    PushResult,
    encode,
    outcomes,
    refused,
    split,
)
from patron.client.core import (
    AUTH_HEADER,
    ERRORS_PAGE_SIZE,
    USER_AGENT,
    Attempts,
    Listing,
    Stats,
    api_root,
    item_path,
    tls,
    verdict,
)
from patron.client.errors import ConnectionFailed, InvalidRequest
from patron.client.pacing import Pacer, Retries


class Client:
    """The Data API v2 of Patron, or of any Ometria-compatible server.

    ``push`` splits records into requests (100 records of one type, 60,000 bytes a record) and sends
    them one after another; requests keep to the rate the server announces (or ``push_rate`` /
    ``read_rate`` requests per second), slow down as the account's backlog fills, and are retried
    through 429s (after ``Retry-After``), 5xx and failed connections with exponential backoff and
    jitter, as ``retries`` says. ``AsyncClient`` sends several pushes at once.
    """

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        verify: bool | str | ssl.SSLContext = True,
        timeout: float = 30.0,
        retries: Retries | None = None,
        push_rate: float | None = None,
        read_rate: float | None = None,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=api_root(base_url),
            headers={AUTH_HEADER: key, "User-Agent": USER_AGENT},
            verify=tls(verify),
            timeout=timeout,
            transport=transport,
        )
        self.retries = retries or Retries()
        self.pacers = {"push": Pacer(push_rate), "data": Pacer(read_rate)}
        self.max_request_bytes = max_request_bytes
        self.stats = Stats()
        self.contacts = Contacts(self, Listing("/contacts"))
        self.orders = Records(self, Listing("/orders"))
        self.products = Records(self, Listing("/products"))
        self.custom_events = Records(self, Listing("/custom-events"))
        self.profiles = Profiles(self, Listing("/profiles", since="updateSince"))
        self.errors = Records(self, Listing("/push/_errors", page_size=ERRORS_PAGE_SIZE))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, content: bytes | None = None
    ) -> httpx.Response:
        """One request, paced and retried; raises a ``ClientError`` when it fails for good."""
        pacer = self.pacers["push" if path == "/push" else "data"]
        headers = {"Content-Type": "application/json"} if content is not None else None
        attempts = Attempts(self.retries)
        while True:
            while wait := pacer.slot():
                time.sleep(wait)
            try:
                response = self._http.request(method, path, params=params, content=content, headers=headers)
            except httpx.TransportError as exc:
                self.stats.connection_failures += 1
                pacer.lost()
                time.sleep(attempts.again(None, ConnectionFailed(f"{method} {path}: {exc!r}")))
                continue
            self.stats.answered(response.status_code)
            pacer.learn(response.headers)
            found = verdict(response.status_code, response.headers, response.content)
            if found is None:
                return response
            wait_for, error = found
            if response.status_code == 429:
                pacer.refused(wait_for or 1.0)
            time.sleep(attempts.again(wait_for, error))

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None).json()

    def account(self) -> dict[str, Any]:
        found: dict[str, Any] = self.get("/account")
        return found

    def push_status(self, request_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.get(f"/push/{item_path(request_id)}")
        return found

    def push(self, records: Iterable[Any]) -> PushResult:
        """Push ``records`` (dicts, or ``patron.records.types`` Structs) and return what became of each,
        in their order."""
        found: list[Outcome] = []
        ready: list[Encoded] = []
        for index, record in enumerate(records):
            encoded = encode(index, record)
            if isinstance(encoded, Outcome):
                found.append(encoded)
            else:
                ready.append(encoded)
        for batch in split(ready, max_bytes=self.max_request_bytes):
            found += self.send_batch(batch)
        return PushResult(sorted(found, key=lambda o: o.index))

    def send_batch(self, batch: Batch) -> list[Outcome]:
        """One push request; the outcome of each of its records (all rejected when the server refuses
        the request as a whole)."""
        try:
            response = self.request("POST", "/push", content=batch.body)
        except InvalidRequest as exc:
            return refused(batch, (exc.fields or ["body"])[0], exc.detail)
        return outcomes(batch, response.json())


class Records:
    """A listing of records, paged through; and one record by its id."""

    def __init__(self, client: Client, listing: Listing) -> None:
        self._client = client
        self._listing = listing

    def page(
        self,
        offset: int = 0,
        limit: int = 250,
        *,
        since: Any = None,
        orderby: str | None = None,
        **filters: Any,
    ) -> list[dict[str, Any]]:
        query = self._listing.query(offset, limit, since, orderby, filters)
        found: list[dict[str, Any]] = self._client.get(self._listing.path, **query)
        return found

    def iter(
        self, *, since: Any = None, orderby: str | None = None, offset: int = 0, **filters: Any
    ) -> Iterator[dict[str, Any]]:
        """Every record from ``offset`` on, a page at a time (``since``: updated at or after it)."""
        size = self._listing.page_size
        while True:
            page = self.page(offset, size, since=since, orderby=orderby, **filters)
            yield from page
            if len(page) < size:
                return
            offset += len(page)

    def get(self, *key: str) -> dict[str, Any]:
        found: dict[str, Any] = self._client.get(f"{self._listing.path}/{item_path(*key)}")
        return found


class Contacts(Records):
    """Contacts are listed per collection (``iter(collection="default")``) and read by collection and id."""

    def page(
        self, offset: int = 0, limit: int = 250, *, collection: str = "default", **query: Any
    ) -> list[dict[str, Any]]:
        return Records(self._client, Listing(f"/contacts/{item_path(collection)}")).page(
            offset, limit, **query
        )

    def by_email(self, email: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._client.get("/contacts", email=email)
        return found


class Profiles(Records):
    """Profiles: listed (``since`` a day), read by id, or found by email."""

    def by_email(self, email: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._client.get("/profiles", email=email)
        return found
