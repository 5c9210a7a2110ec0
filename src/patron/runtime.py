"""What the worker process runs, put together: the kinds of queued row each package registers."""

from __future__ import annotations

from patron import gdpr, replays, segments
from patron.model.rounds import Registry
from patron.profiles import link, operations
from patron.tracking import events
from patron.webhooks import outbox


def queue_kinds() -> Registry:
    """Every kind of queued row the worker applies: the record types, the profile operations, tag
    events, anonymisations, segment builds and webhook replays; and, after each round, the segments'
    membership and the webhooks' events of the profiles it changed."""
    kinds = Registry()
    for package in (link, operations, events, gdpr, segments, replays, outbox):
        package.register(kinds)
    return kinds
