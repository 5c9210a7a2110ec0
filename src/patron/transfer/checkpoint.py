"""Where a run stands, kept in a file so that an interrupted run resumes where it stopped.

The state is written after every answered request (to a temporary file, fsync'd, renamed over the
old one), after the rejects it produced are fsync'd; a run killed at any point resumes from the last
state written: nothing acknowledged is lost or sent again, and the rejects file is cut back to the
length that state knew (so a request answered after it is sent again and its rejects written once).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Final, TypeVar

import msgspec

HEAD: Final = 1 << 16  # the bytes of the source that identify it, with its size
T = TypeVar("T", bound=msgspec.Struct)


class CheckpointError(ValueError):
    """A checkpoint that belongs to another file or target, or cannot be read."""


class Spans(msgspec.Struct, kw_only=True):
    """What is answered of a sequence (a file's bytes, a listing's positions): everything before
    ``done`` (which is at line ``line``), and the spans answered beyond it, out of order."""

    done: int = 0
    line: int = 1
    ahead: list[tuple[int, int, int]] = []  # (start, end, line at end)

    def covers(self, start: int, end: int) -> bool:
        """Whether the span was answered already (what a resumed run skips)."""
        return end <= self.done or any(s <= start and end <= e for s, e, _ in self.ahead)

    def answered(self, start: int, end: int, line: int = 1) -> None:
        """The span from ``start`` to ``end`` (ending at ``line``) is answered."""
        kept = []
        for s, e, at in sorted([*self.ahead, (start, end, line)]):
            if s > self.done:
                kept.append((s, e, at))
            elif e > self.done:
                self.done, self.line = e, at
        self.ahead = kept


class Checkpoint(Spans, kw_only=True):
    """An import's progress through its file (``done`` counts bytes)."""

    source: str
    size: int
    head: str
    target: str
    accepted: int = 0
    rejected: int = 0  # by the server, or before sending (bad lines among them)
    rejects_bytes: int = 0
    finished: bool = False


class Copied(msgspec.Struct, kw_only=True):
    """An export's or a copy's progress: per part (a record type, a collection of contacts), the
    positions of its listing answered (written, or sent and answered), and the output's length."""

    target: str
    parts: dict[str, Spans] = {}
    accepted: int = 0
    rejected: int = 0
    rejects_bytes: int = 0
    output_bytes: int = 0
    finished: bool = False


def identity(path: Path) -> tuple[str, int, str]:
    """The source's path, size and a hash of its head: a checkpoint is for this file only."""
    with path.open("rb") as file:
        head = hashlib.sha256(file.read(HEAD)).hexdigest()
    return str(path.resolve()), path.stat().st_size, head


def fingerprint(*parts: str) -> str:
    """Who a run talks to (URL and key), without keeping the key."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def load(path: Path, kind: type[T]) -> T | None:
    if not path.exists():
        return None
    try:
        return msgspec.json.decode(path.read_bytes(), type=kind)
    except (OSError, msgspec.DecodeError) as exc:
        raise CheckpointError(f"{path}: not a checkpoint ({exc}); remove it or pass --restart") from exc


def save(path: Path, state: msgspec.Struct) -> None:
    """Replace the checkpoint at ``path`` with ``state``, durably."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as file:
        file.write(msgspec.json.encode(state))
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class Appender:
    """A file written only at its end, cut back to a checkpoint's length when a run resumes."""

    def __init__(self, path: Path, keep: int) -> None:
        self.path = path
        with path.open("ab") as file:
            keep = min(keep, file.tell())  # a rejects file removed since: what is left of it
            file.truncate(keep)
        self._file = path.open("ab")
        self.length = keep
        self._unsynced = False

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.length += len(data)
        self._unsynced = True

    def sync(self) -> None:
        """Everything written so far on disk (before a checkpoint that counts it is saved)."""
        if self._unsynced:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._unsynced = False

    def close(self) -> None:
        self.sync()
        self._file.close()
