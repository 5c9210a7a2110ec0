"""The bodies of ``POST /v2/webhooks`` and ``PUT /v2/webhooks/{id}``, and of a replay."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args

import msgspec
from msgspec import UNSET, Meta, UnsetType

from patron.errors import FieldInvalid
from patron.webhooks.network import MAX_URL_LENGTH

#: The most endpoints an account may have, and the most attempts at once one may ask for.
MAX_ENDPOINTS = 10
MAX_CONCURRENCY = 20
EventType = Literal[
    "profile.created",
    "profile.updated",
    "profile.merged",
    "profile.anonymised",
    "contact.unsubscribed",
    "contact.resubscribed",
    "order.applied",
    "custom_event.created",
    "segment.entered",
    "segment.exited",
    "basket.abandoned",
    "browse.abandoned",
    "email.sent",
    "email.failed",
    "email.clicked",
]
Url = Annotated[
    str,
    Meta(
        min_length=9,
        max_length=MAX_URL_LENGTH,
        pattern=r"^https://[^\s/?#@]+",
        description="An https:// URL whose host resolves only to addresses Patron may deliver to",
    ),
]
EventTypes = Annotated[list[EventType], Meta(min_length=1, max_length=len(get_args(EventType)))]
Description = Annotated[str, Meta(max_length=200, pattern=r"^[^\x00]*$")]
Concurrency = Annotated[int, Meta(ge=1, le=MAX_CONCURRENCY)]


class NewEndpoint(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    url: Url
    event_types: EventTypes
    description: Description | UnsetType = UNSET
    max_concurrency: Concurrency = 4

    def __post_init__(self) -> None:
        self.event_types = list(dict.fromkeys(self.event_types))


class EndpointUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    url: Url | UnsetType = UNSET
    event_types: EventTypes | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    max_concurrency: Concurrency | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET

    def __post_init__(self) -> None:
        if self.event_types is not UNSET:
            self.event_types = list(dict.fromkeys(self.event_types))


class Replay(msgspec.Struct, forbid_unknown_fields=True):
    """Events written in [since, until) are delivered again, whatever became of them."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            if getattr(self, name).tzinfo is None:
                raise FieldInvalid(name, "must carry a time zone offset")
        if self.until <= self.since:
            raise FieldInvalid("until", "must be after since")
