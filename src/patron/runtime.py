"""What the worker process runs, put together: the kinds of queued row each package registers."""

from __future__ import annotations

from patron import gdpr, segments
from patron.model.rounds import Registry
from patron.profiles import link, operations
from patron.tracking import events


def queue_kinds() -> Registry:
    """Every kind of queued row the worker applies: the record types, the profile operations, tag
    events, anonymisations and segment builds (and the segments' round hook)."""
    kinds = Registry()
    for package in (link, operations, events, gdpr, segments):
        package.register(kinds)
    return kinds
