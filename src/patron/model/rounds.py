"""The worker's round, as the code that applies queued rows sees it.

A round applies the oldest queued rows of the import queue, in arrival order, in one transaction.
Each row has a kind (a record type, an operation, a beacon): a :class:`QueueKind`, registered in a
:class:`Registry` by the package that owns it, says how it applies and whether it runs alone. The
worker knows the kinds only through the registry. Every handler is given the :class:`Round` of the
account it applies to: the connection, the account, the round's clock, the profiles it touched, the
product attributes it changed and the failures it recorded, and :class:`Links`, identity
resolution's narrow interface.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Connection

from patron.model.documents import Document, Step
from patron.model.storage import KINDS, Kind


class Op(NamedTuple):
    """One queued record (with its merge step) or operation, as the worker applies it."""

    record_type: str
    record: Document  # as sent: directives included
    step: Step | None  # the merge, for records
    at: datetime
    request_id: str
    position: int  # the record's index in its request


class Failure(NamedTuple):
    """A queued row that could not apply: it becomes a push error of its request."""

    request_id: str
    record_type: str
    position: int  # the record's index in its request
    message: str
    record: Document


class Links(Protocol):
    """Identity resolution, as the round's handlers use it (``profiles.link.Linker``)."""

    def link(self, op: Op) -> None:
        """Link a record to its profile (its ``step`` says what it was and is)."""

    def live(self, profile_id: Any) -> str | None:
        """The live profile an id names: itself, or the profile it was merged into."""

    def owner(self, kind: str, value: str) -> str | None:
        """The profile holding an identifier, if any."""

    def customer(self, customer_id: Any, email: Any, at: datetime) -> str | None:
        """The profile of a customer known by id and/or email, made when none matches."""

    def moved(self, merged: str, survivor: str) -> None:
        """The records this round linked to ``merged`` now belong to ``survivor``."""


@dataclass
class Round:
    """One account's part of a round: what every handler is given and may add to."""

    conn: Connection
    account_id: int
    at: datetime  # the round's clock: when its last row applies
    touched: set[str] = field(default_factory=set)  # profiles to recompute when the round is written
    created: set[str] = field(default_factory=set)  # profiles the round made (once written)
    updated: set[str] = field(default_factory=set)  # other profiles whose documents it changed
    merged: set[str] = field(default_factory=set)  # profiles it merged away (no longer live)
    # product attributes ((type, id)) a product of the round gained or lost: its buyers may move
    attributes: set[tuple[str, str]] = field(default_factory=set)
    failures: list[Failure] = field(default_factory=list)
    links: Links = field(init=False)  # given once made: identity resolution works within the round

    def touch(self, *profiles: str | None) -> None:
        self.touched.update(p for p in profiles if p is not None)

    def fail(self, op: Op, message: str) -> None:
        """``op`` did not apply: its request reports ``message`` for it."""
        self.failures.append(Failure(op.request_id, op.record_type, op.position, message, op.record))


#: How one kind of queued row applies, given its round.
Apply = Callable[[Round, Op], None]
#: What runs at the end of each account's part of a round, in its transaction, once its records are
#: written and its profiles recomputed (``Round.created``, ``Round.updated``).
Hook = Callable[[Round], None]


@dataclass(frozen=True)
class QueueKind:
    """A kind of queued row, named by the queue's ``record_type``."""

    name: str
    apply: Apply
    #: Runs in a round of its own, after everything queued before it is written (a merge reads and
    #: moves what the records before it made).
    alone: bool = False
    #: Erases personal data: the store's files lose the old bytes after its round.
    erases: bool = False

    @property
    def storage(self) -> Kind | None:
        """How the records of this kind are stored, for a record type; None for the others."""
        return KINDS.get(self.name)


class Registry:
    """The kinds of queued row the worker applies, by name."""

    def __init__(self) -> None:
        self._kinds: dict[str, QueueKind] = {}
        self._hooks: list[Hook] = []

    def after(self, hook: Hook) -> None:
        """Run ``hook`` at the end of every account's part of every round, after those added before."""
        self._hooks.append(hook)

    @property
    def hooks(self) -> tuple[Hook, ...]:
        return tuple(self._hooks)

    def add(self, kind: QueueKind) -> None:
        if kind.name in self._kinds:
            raise ValueError(f"the queue kind {kind.name!r} is registered twice")
        self._kinds[kind.name] = kind

    def __getitem__(self, name: str) -> QueueKind:
        try:
            return self._kinds[name]
        except KeyError:
            raise LookupError(f"no queue kind {name!r} is registered") from None
