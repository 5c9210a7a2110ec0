"""``AsyncClient``: the API from asyncio, pushes several requests in flight."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterable
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

Sent = tuple[Batch, list[Outcome]]


class AsyncClient:
    """The Data API v2 of Patron, or of any Ometria-compatible server, from asyncio.

    ``push`` splits records into requests (100 records of one type, 60,000 bytes a record) and sends
    up to ``concurrency`` at once, never two that write the same record; requests keep to the rate the
    server announces (or ``push_rate`` / ``read_rate`` requests per second), slow down as the account's
    backlog fills, and are retried through 429s (after ``Retry-After``), 5xx and failed connections
    with exponential backoff and jitter, as ``retries`` says.
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
        concurrency: int = 4,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=api_root(base_url),
            headers={AUTH_HEADER: key, "User-Agent": USER_AGENT},
            verify=tls(verify),
            timeout=timeout,
            transport=transport,
        )
        self.retries = retries or Retries()
        self.pacers = {"push": Pacer(push_rate), "data": Pacer(read_rate)}
        self.concurrency = max(1, concurrency)
        self.max_request_bytes = max_request_bytes
        self.stats = Stats()
        self.contacts = AsyncContacts(self, Listing("/contacts"))
        self.orders = AsyncRecords(self, Listing("/orders"))
        self.products = AsyncRecords(self, Listing("/products"))
        self.custom_events = AsyncRecords(self, Listing("/custom-events"))
        self.profiles = AsyncProfiles(self, Listing("/profiles", since="updateSince"))
        self.errors = AsyncRecords(self, Listing("/push/_errors", page_size=ERRORS_PAGE_SIZE))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, content: bytes | None = None
    ) -> httpx.Response:
        """One request, paced and retried; raises a ``ClientError`` when it fails for good."""
        pacer = self.pacers["push" if path == "/push" else "data"]
        headers = {"Content-Type": "application/json"} if content is not None else None
        attempts = Attempts(self.retries)
        while True:
            while wait := pacer.slot():
                await asyncio.sleep(wait)
            try:
                response = await self._http.request(
                    method, path, params=params, content=content, headers=headers
                )
            except httpx.TransportError as exc:
                self.stats.connection_failures += 1
                pacer.lost()
                await asyncio.sleep(attempts.again(None, ConnectionFailed(f"{method} {path}: {exc!r}")))
                continue
            self.stats.answered(response.status_code)
            pacer.learn(response.headers)
            found = verdict(response.status_code, response.headers, response.content)
            if found is None:
                return response
            wait_for, error = found
            if response.status_code == 429:
                pacer.refused(wait_for or 1.0)
            await asyncio.sleep(attempts.again(wait_for, error))

    async def get(self, path: str, **params: Any) -> Any:
        return (await self.request("GET", path, params=params or None)).json()

    async def account(self) -> dict[str, Any]:
        found: dict[str, Any] = await self.get("/account")
        return found

    async def push_status(self, request_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.get(f"/push/{item_path(request_id)}")
        return found

    async def push(self, records: Iterable[Any]) -> PushResult:
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
        async for _, sent in self.send(split(ready, max_bytes=self.max_request_bytes)):
            found += sent
        return PushResult(sorted(found, key=lambda o: o.index))

    async def send_batch(self, batch: Batch) -> list[Outcome]:
        """One push request; the outcome of each of its records (all rejected when the server refuses
        the request as a whole)."""
        try:
            response = await self.request("POST", "/push", content=batch.body)
        except InvalidRequest as exc:
            return refused(batch, (exc.fields or ["body"])[0], exc.detail)
        return outcomes(batch, response.json())

    async def send(self, batches: Iterable[Batch]) -> AsyncIterator[Sent]:
        """Send ``batches`` with up to ``concurrency`` in flight, a batch writing a record that one in
        flight writes waiting for it; yields each batch with its outcomes as it is answered. If one
        fails for good, those already answered are yielded, the others cancelled, and its error raised."""
        running: Running = {}
        try:
            for batch in batches:
                keys = batch.keys
                while len(running) >= self.concurrency or any(keys & k for _, k in running.values()):
                    async for sent in _answered(running):
                        yield sent
                running[asyncio.create_task(self.send_batch(batch))] = (batch, keys)
            while running:
                async for sent in _answered(running):
                    yield sent
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)


Running = dict[asyncio.Task[list[Outcome]], tuple[Batch, set[tuple[str, ...]]]]


async def _answered(running: Running) -> AsyncIterator[Sent]:
    """The batches answered, once at least one is; the first failure among them is raised after the
    others are yielded."""
    done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
    failure: BaseException | None = None
    for task in sorted(done, key=lambda t: running[t][0].records[0].index):
        batch, _ = running.pop(task)
        if (exc := task.exception()) is not None:
            failure = failure or exc
        else:
            yield batch, task.result()
    if failure is not None:
        raise failure


class AsyncRecords:
    """A listing of records, paged through; and one record by its id."""

    def __init__(self, client: AsyncClient, listing: Listing) -> None:
        self._client = client
        self._listing = listing

    async def page(
        self,
        offset: int = 0,
        limit: int = 250,
        *,
        since: Any = None,
        orderby: str | None = None,
        **filters: Any,
    ) -> list[dict[str, Any]]:
        query = self._listing.query(offset, limit, since, orderby, filters)
        found: list[dict[str, Any]] = await self._client.get(self._listing.path, **query)
        return found

    async def iter(
        self, *, since: Any = None, orderby: str | None = None, offset: int = 0, **filters: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Every record from ``offset`` on, a page at a time (``since``: updated at or after it)."""
        size = self._listing.page_size
        while True:
            page = await self.page(offset, size, since=since, orderby=orderby, **filters)
            for record in page:
                yield record
            if len(page) < size:
                return
            offset += len(page)

    async def get(self, *key: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._client.get(f"{self._listing.path}/{item_path(*key)}")
        return found


class AsyncContacts(AsyncRecords):
    """Contacts are listed per collection (``iter(collection="default")``) and read by collection and id."""

    async def page(
        self, offset: int = 0, limit: int = 250, *, collection: str = "default", **query: Any
    ) -> list[dict[str, Any]]:
        listing = Listing(f"/contacts/{item_path(collection)}")
        return await AsyncRecords(self._client, listing).page(offset, limit, **query)

    async def by_email(self, email: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._client.get("/contacts", email=email)
        return found


class AsyncProfiles(AsyncRecords):
    """Profiles: listed (``since`` a day), read by id, or found by email."""

    async def by_email(self, email: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._client.get("/profiles", email=email)
        return found
