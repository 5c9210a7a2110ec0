"""``patron export`` (an account's records or profiles into a file) and ``patron copy`` (an account's
records into another account), paging through the API, resumable from a checkpoint.

Listings are read in their stable order (internal id: records only ever join the end), so a position
in a listing is a place to resume from. A copy pushes what it reads through ``AsyncClient.send``; the
checkpoint keeps, per part, the positions answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from patron.client import AsyncClient
from patron.client.batching import Outcome, encode, split
from patron.client.core import PAGE_SIZE, item_path
from patron.transfer.checkpoint import Appender, CheckpointError, Copied, Spans, fingerprint, load, save
from patron.transfer.importer import Report, Tally
from patron.transfer.tables import Table

#: What each ``--type`` lists, and its listing's path.
TYPES: Final = {
    "contacts": ("contact", "/contacts"),
    "orders": ("order", "/orders"),
    "products": ("product", "/products"),
    "custom-events": ("custom_event", "/custom-events"),
    "profiles": ("profile", "/profiles"),
}
#: What ``copy`` copies, in this order (products before the orders that name them).
COPIED: Final = ("products", "contacts", "orders", "custom-events")
#: Fields the API adds to a document that a push does not take.
ADDED: Final = frozenset({"@attribution"})
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Part:
    """One listing: a type, or one collection of contacts."""

    name: str  # "orders", "contacts/default"
    record_type: str
    path: str
    params: dict[str, Any]


async def parts(client: AsyncClient, kind: str, since: str | None) -> list[Part]:
    """The listings that make up ``kind``: contacts have one per collection."""
    record_type, path = TYPES[kind]
    params: dict[str, Any] = {}
    if since:
        params["updateSince" if kind == "profiles" else "since"] = since
    if kind == "products":
        params["includeVariants"] = "true"
    if kind != "contacts":
        return [Part(kind, record_type, path, params)]
    names, offset = [], 0
    while page := await client.get(path, limit=PAGE_SIZE, offset=offset):
        names += [str(found["collection"]) for found in page]
        offset += len(page)
        if len(page) < PAGE_SIZE:
            break
    return [Part(f"contacts/{n}", record_type, f"{path}/{item_path(n)}", params) for n in names]


async def pages(client: AsyncClient, part: Part, spans: Spans) -> AsyncIterator[list[tuple[int, Any]]]:
    """The part's documents not answered yet, a page at a time, each with its position."""
    offset = spans.done
    while True:
        page = await client.get(part.path, limit=PAGE_SIZE, offset=offset, **part.params)
        yield [(p, doc) for p, doc in enumerate(page, offset) if not spans.covers(p, p + 1)]
        if len(page) < PAGE_SIZE:
            return
        offset += len(page)


def _state(checkpoint: Path, target: str, restart: bool) -> tuple[Copied, bool]:
    found = None if restart else load(checkpoint, Copied)
    if found is not None and found.target != target:
        raise CheckpointError(
            f"{checkpoint} is the checkpoint of another run (other accounts, type or options)"
        )
    return found or Copied(target=target), found is not None


class Export:
    """``kind``'s documents into ``output``, JSON Lines or CSV."""

    def __init__(
        self,
        client: AsyncClient,
        url: str,
        key: str,
        kind: str,
        output: Path,
        file_format: str,
        since: str | None,
        checkpoint: Path,
        restart: bool,
    ) -> None:
        self.client = client
        self.kind = kind
        self.since = since
        self.checkpoint = checkpoint
        self.state, self.resumed = _state(
            checkpoint, fingerprint(url, key, kind, file_format, since or ""), restart
        )
        self.output = Appender(output, self.state.output_bytes)
        self.table = Table(TYPES[kind][0]) if file_format == "csv" else None
        self.tally = Tally(0, accepted=self.state.accepted)

    async def run(self, report: Report | None = None) -> Tally:
        if self.state.finished:
            return self.tally
        if self.table is not None and self.output.length == 0:
            self.output.write(self.table.header())
        for part in await parts(self.client, self.kind, self.since):
            spans = self.state.parts.setdefault(part.name, Spans())
            async for page in pages(self.client, part, spans):
                for position, document in page:
                    self.output.write(self.table.rows(document) if self.table else _encode(document) + b"\n")
                    spans.answered(position, position + 1)
                self.state.accepted += len(page)
                self._save(report)
        self.state.finished = True
        self._save(report)
        self.output.close()
        return self.tally

    def _save(self, report: Report | None) -> None:
        self.output.sync()
        self.state.output_bytes = self.output.length
        save(self.checkpoint, self.state)
        self.tally.accepted = self.state.accepted
        if report:
            report(self.tally)


def pushable(document: dict[str, Any]) -> dict[str, Any]:
    """A document read from the API as a record to push (without what the API adds)."""
    return {k: v for k, v in document.items() if k not in ADDED}


class Copy:
    """An account's records (``COPIED``, or the kinds given) into another account."""

    def __init__(
        self,
        source: AsyncClient,
        target: AsyncClient,
        run_id: str,
        kinds: tuple[str, ...],
        since: str | None,
        checkpoint: Path,
        rejects: Path,
        restart: bool,
    ) -> None:
        self.source, self.target = source, target
        self.kinds = kinds
        self.since = since
        self.checkpoint = checkpoint
        self.state, self.resumed = _state(checkpoint, run_id, restart)
        self.rejects = Appender(rejects, self.state.rejects_bytes)
        self.tally = Tally(0, accepted=self.state.accepted, rejected=self.state.rejected)

    async def run(self, report: Report | None = None) -> Tally:
        if self.state.finished:
            return self.tally
        for kind in self.kinds:
            for part in await parts(self.source, kind, self.since):
                await self._copy(part, self.state.parts.setdefault(part.name, Spans()), report)
        self.state.finished = True
        self._save(report)
        self.rejects.close()
        return self.tally

    async def _copy(self, part: Part, spans: Spans, report: Report | None) -> None:
        async for page in pages(self.source, part, spans):
            ready, documents = [], dict(page)
            for position, document in page:
                encoded = encode(position, pushable(document))
                if isinstance(encoded, Outcome):
                    self._answered(part, spans, encoded, document)
                else:
                    ready.append(encoded)
            async for _, outcomes in self.target.send(split(ready, max_bytes=self.target.max_request_bytes)):
                for outcome in outcomes:
                    self._answered(part, spans, outcome, documents[outcome.index])
                self._save(report)
            self._save(report)

    def _answered(self, part: Part, spans: Spans, outcome: Outcome, document: dict[str, Any]) -> None:
        spans.answered(outcome.index, outcome.index + 1)
        if outcome.accepted:
            self.state.accepted += 1
            return
        self.state.rejected += 1
        entry = {"part": part.name, "position": outcome.index, "id": outcome.id, "path": outcome.path}
        entry |= {"message": outcome.message, "record": document}
        self.rejects.write(_encode(entry) + b"\n")

    def _save(self, report: Report | None) -> None:
        self.rejects.sync()
        self.state.rejects_bytes = self.rejects.length
        save(self.checkpoint, self.state)
        self.tally.accepted, self.tally.rejected = self.state.accepted, self.state.rejected
        if report:
            report(self.tally)
