"""What Patron refuses, or cannot do: one hierarchy, at the bottom of the package (it imports nothing
from ``patron``), so that every layer can raise it.

Each class says what kind of failure it is; the HTTP edge (``api/problems.py``) is the one place that
answers each kind, with its status and an RFC 9457 problem document. An error names the fields or
parameters at fault as :class:`FieldError` objects (``errors``); the problem's ``detail`` is made
from them (``path: message``, joined by ``; ``), or is the error's text when it names none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar, Self

import msgspec

#: Seconds a client is told to wait before it tries again after a refusal it can outlast.
RETRY_AFTER = 5


class FieldError(msgspec.Struct, frozen=True, rename={"path": "field", "message": "detail"}):
    """One offending field or parameter: where it is (a body path such as ``root > lineitems > 0 >
    quantity``, or a parameter's name) and what is wrong with it. In a problem document it is
    ``{"field": path, "detail": message}``."""

    path: str
    message: str


class PatronError(Exception):
    """Something Patron refuses or cannot do. ``errors``: the fields at fault; ``headers``: what the
    answer carries besides the problem (the queue's size after a push, say)."""

    def __init__(
        self,
        message: str,
        *,
        errors: Iterable[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.errors: list[FieldError] = list(errors)
        self.headers: dict[str, str] = dict(headers or {})

    @classmethod
    def at(cls, path: str, message: str) -> Self:
        """The error of one field: ``path: message``."""
        return cls(f"{path}: {message}", errors=[FieldError(path, message)])

    @property
    def detail(self) -> str:
        """What the client is told: the fields at fault, or the error's text when it names none."""
        if self.errors:
            return "; ".join(f"{e.path}: {e.message}" for e in self.errors)
        return str(self)


class Invalid(PatronError, ValueError):
    """The request (or a value in it) is not valid; nothing was done. A ``ValueError`` too, as the
    checks that raise it always were."""


class FieldInvalid(Invalid):
    """A field failed a check in a Struct's ``__post_init__``.

    msgspec turns a ``ValueError`` raised there into a ``msgspec.ValidationError`` that keeps only
    the error's text (with `` - at `$.path` `` added): no object survives the trip. So the field
    error travels as text, written here (``str`` of this error: ``path :: message``) and read back by
    :meth:`read` (``records.validate.split_error`` calls it), the one pair of places that know the
    form. Raised outside a decoding, it is an :class:`Invalid` like any other.
    """

    SEPARATOR: ClassVar[str] = " :: "

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}{self.SEPARATOR}{message}", errors=[FieldError(path, message)])

    @classmethod
    def read(cls, text: str) -> FieldError | None:
        """The field error in the text msgspec kept of a :class:`FieldInvalid` (its message, without
        msgspec's `` - at ...``), or None when the text is not one."""
        path, separator, message = text.partition(cls.SEPARATOR)
        return FieldError(path, message) if separator else None


class Forbidden(PatronError):
    """Refused whatever the request holds: it may not be made from where it was made."""


class NotFound(PatronError):
    """The request names something the account does not have."""


class Conflict(PatronError):
    """The request cannot be carried out as things stand (an id taken, a limit on what an account
    holds reached); nothing was done."""


class Later(PatronError):
    """Refused for now: nothing was done, and the same request may succeed after ``retry_after``
    seconds."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: int = RETRY_AFTER,
        errors: Iterable[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, errors=errors, headers=headers)
        self.retry_after = retry_after


class TooMany(Later):
    """Over a limit that time lifts: a rate, or a backlog of queued records."""


class Unavailable(Later):
    """Patron cannot do it now: storage is down, or a read ran out of time."""
