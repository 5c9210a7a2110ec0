"""The bodies of the profile operations: ``POST /v2/merge-profile``, ``POST /v2/lists`` and an
operator's unsubscribe. Merges and unsubscribes are queued and applied by the worker in order with the
pushes around them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from patron.errors import FieldInvalid
from patron.records.fields import (
    ID_PATTERN,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TEXT_LENGTH,
    NO_NUL_PATTERN,
    Email,
    Id,
)

#: Ometria: at most 5 customers per merge request.
MAX_TO_MERGE = 5
IdentifierType = Literal["customer_id", "email_address", "phone_number", "profile_hash"]
Value = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)] | int
#: A list's title, and its description.
Title = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NO_NUL_PATTERN)]
Description = Annotated[str, Meta(max_length=MAX_TEXT_LENGTH, pattern=NO_NUL_PATTERN)]


class Identifier(msgspec.Struct, forbid_unknown_fields=True):
    type: IdentifierType
    value: Value


class MergeRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Either form of section 5.11: ``survivor`` with ``customers_to_merge``, or the older ``email``
    (with an optional ``profile_id`` to survive)."""

    survivor: Identifier | UnsetType = UNSET
    customers_to_merge: (
        Annotated[list[Identifier], Meta(min_length=1, max_length=MAX_TO_MERGE)] | UnsetType
    ) = UNSET
    email: Email | UnsetType = UNSET
    profile_id: Id | UnsetType = UNSET

    def __post_init__(self) -> None:
        if self.survivor is not UNSET:
            if self.customers_to_merge is UNSET:
                raise FieldInvalid("customers_to_merge", "is required with survivor")
            if self.email is not UNSET or self.profile_id is not UNSET:
                raise FieldInvalid("email", "give either survivor and customers_to_merge, or email")
        elif self.customers_to_merge is not UNSET:
            raise FieldInvalid("survivor", "is required with customers_to_merge")
        elif self.email is UNSET:
            raise FieldInvalid("survivor", "is required (or, in the older form, email)")
        if isinstance(self.profile_id, int):
            self.profile_id = str(self.profile_id)


def _only(required: list[str], absent: list[str]) -> dict[str, Any]:
    return {"required": required, "not": {"anyOf": [{"required": [name]} for name in absent]}}


#: The body as the OpenAPI document gives it: one form or the other, never a mix.
MergeBody = Annotated[
    MergeRequest,
    Meta(
        extra_json_schema={
            "oneOf": [
                _only(["survivor", "customers_to_merge"], ["email", "profile_id"]),
                _only(["email"], ["survivor", "customers_to_merge"]),
            ]
        }
    ),
]


class Unsubscribe(msgspec.Struct):
    """An unsubscribe recorded outside the API (``patron unsubscribe``)."""

    email: str
    type: str
    reason: str | None = None


class Preferences(msgspec.Struct):
    """What a person changed in their preference centre: a channel's new marketing status (``True``
    subscribes), for the channels they changed only."""

    profile_id: str
    email: bool | None = None
    sms: bool | None = None


class EmailClick(msgspec.Struct):
    """A click on a verified link of a message, for the recipient's profile."""

    message_id: str
    url: str
    recipient: str
    profile: str | None = None


class NewList(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v2/lists``: a static list with a title (an id is chosen when none is given)."""

    title: Title
    id: Id | UnsetType = UNSET
    description: Description | None = None


class ListUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``PUT /v2/lists/{id}``: new details, or archiving (an archived list leaves ``mode=active``)."""

    title: Title | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    archived: bool | UnsetType = UNSET
