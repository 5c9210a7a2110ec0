"""``patron import``: a file of records into an account, at the pace the API allows, resumable.

The file is read an item at a time; records go out in requests through ``AsyncClient.send`` (several
in flight, never two writing one record); each answer's rejects are appended to the rejects file and
the checkpoint saved before the next answer is taken. Bad lines (not JSON, a CSV row without a mapped
column) and records the client refuses before sending go to the rejects file with their line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from patron.client import AsyncClient
from patron.client.batching import Encoded, Outcome, encode, split
from patron.transfer.checkpoint import (
    Appender,
    Checkpoint,
    CheckpointError,
    fingerprint,
    identity,
    load,
    save,
)
from patron.transfer.items import Item
from patron.transfer.sources import Source

_encode = msgspec.json.Encoder().encode


@dataclass
class Tally:
    """What a run has done so far, for its progress bar and summary."""

    total_bytes: int
    read_bytes: int = 0
    accepted: int = 0
    rejected: int = 0
    started: float = field(default_factory=time.monotonic)
    resumed_from: int = 0  # records answered before this run

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def this_run(self) -> int:
        """Records answered by this run (not before it was interrupted)."""
        return self.accepted + self.rejected - self.resumed_from

    @property
    def rate(self) -> float:
        return self.this_run / self.seconds if self.seconds > 0 else 0.0


Report = Callable[[Tally], None]


@dataclass
class _Span:
    """Where a record sent lies in the file, with the bad lines read just before it."""

    item: Item
    start: int
    line: int
    bad: list[bytes]


def reject_line(item: Item, path: str, message: str, outcome: Outcome | None = None) -> bytes:
    """A line of the rejects file: the record's line, where and why, and the record (or the line's text)."""
    entry: dict[str, Any] = {"line": item.line, "path": path, "message": message}
    if outcome is not None:
        entry |= {"id": outcome.id, "request_id": outcome.request_id}
    if item.record is not None:
        entry["record"] = item.record
    elif item.text is not None:
        entry["text"] = item.text
    return _encode(entry) + b"\n"


class Import:
    """One import of ``source`` through ``client``: its checkpoint, its rejects, its tally."""

    def __init__(
        self, source: Source, client: AsyncClient, key: str, checkpoint: Path, rejects: Path, restart: bool
    ) -> None:
        self.source = source
        self.client = client
        self.checkpoint_path = checkpoint
        path, size, head = identity(source.path)
        found = None if restart else load(checkpoint, Checkpoint)
        fresh = Checkpoint(source=path, size=size, head=head, target=fingerprint(key))
        if found is not None and (found.source, found.size, found.head) != (path, size, head):
            raise CheckpointError(
                f"{checkpoint} is the checkpoint of another file (or of this one before it changed);"
                " pass --restart to import from the start"
            )
        if found is not None and found.target != fresh.target:
            raise CheckpointError(
                f"{checkpoint} is the checkpoint of an import into another account (another key);"
                " give this one its own --checkpoint and --rejects, or pass --restart"
            )
        self.state = found or fresh
        self.resumed = found is not None
        self.tally = Tally(size, self.state.done, self.state.accepted, self.state.rejected)
        self.tally.resumed_from = self.state.accepted + self.state.rejected
        self.rejects = Appender(rejects, self.state.rejects_bytes if found else 0)
        self._spans: dict[int, _Span] = {}
        self._bad: list[tuple[Item, bytes]] = []

    def _records(self) -> Iterator[Encoded]:
        """The items not answered yet, as records to send; bad ones kept for the next record's span."""
        for number, item in enumerate(self.source.read(self.state.done, self.state.line)):
            if self.state.covers(item.start, item.end):
                continue
            if item.error is not None:
                self._bad.append((item, reject_line(item, "line", item.error)))
                continue
            encoded = encode(number, item.record, item.raw)
            if isinstance(encoded, Outcome):
                self._bad.append((item, reject_line(item, encoded.path or "root", encoded.message or "")))
                continue
            first = self._bad[0][0] if self._bad else item
            self._spans[number] = _Span(item, first.start, first.line, [line for _, line in self._bad])
            self._bad = []
            yield encoded

    async def run(self, report: Report | None = None) -> Tally:
        if self.state.finished:
            return self.tally
        batches = split(self._records(), max_bytes=self.client.max_request_bytes)
        async for batch, outcomes in self.client.send(batches):
            spans = [self._spans.pop(record.index) for record in batch.records]
            for span in spans:
                for line in span.bad:
                    self.rejects.write(line)
                self.state.rejected += len(span.bad)
            for span, outcome in zip(spans, outcomes, strict=True):
                if outcome.accepted:
                    self.state.accepted += 1
                else:
                    self.state.rejected += 1
                    self.rejects.write(
                        reject_line(span.item, outcome.path or "", outcome.message or "", outcome)
                    )
            # saved off the event loop: the requests in flight go on meanwhile
            await asyncio.to_thread(self._answered, spans[0].start, spans[-1].item.end, spans[-1].item.after)
            if report:
                report(self.tally)
        if self._bad:  # bad lines after the last record
            for _, line in self._bad:
                self.rejects.write(line)
            self.state.rejected += len(self._bad)
            first, last = self._bad[0][0], self._bad[-1][0]
            self._answered(first.start, last.end, last.after)
        self.state.finished = True
        self._save()
        self.rejects.close()
        return self.tally

    def _answered(self, start: int, end: int, line: int) -> None:
        self.state.answered(start, end, line)
        self._save()
        self.tally.read_bytes = max(self.tally.read_bytes, end)
        self.tally.accepted, self.tally.rejected = self.state.accepted, self.state.rejected

    def _save(self) -> None:
        self.rejects.sync()
        self.state.rejects_bytes = self.rejects.length
        save(self.checkpoint_path, self.state)
