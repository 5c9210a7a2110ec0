"""What a source reads: a record, or a bad line, and where it lies in the file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

#: A bad line's text kept in the rejects file, at most.
SHOWN: Final = 2_000


@dataclass(frozen=True, slots=True)
class Item:
    """One record read (``record``, and ``raw``, its JSON as read when it can be sent as is), or a bad
    line (``error``), from ``line`` to ``after`` and ``start`` to ``end`` bytes of the file."""

    line: int
    start: int
    end: int
    after: int  # the line number at ``end``
    record: dict[str, Any] | None = None
    raw: bytes | None = None
    error: str | None = None
    text: str | None = None  # a bad line's text (cut to SHOWN)
