"""The documents records become, and Ometria's merge rules.

A record is upserted by ``(account, @type, id)`` (contacts by ``(account, @collection, id)``). Its
fields merge into the stored document: a field replaces the stored one, JSON ``null`` deletes it, the
string ``"null"`` is an ordinary string, ``properties`` merge key by key, and arrays (``lineitems``,
``listings``, ``attributes``, ``variant_options``) replace whole. ``"@merge": false`` replaces the
whole stored document instead.
"""

from __future__ import annotations

from typing import Any, NamedTuple

Document = dict[str, Any]
#: Keys that instruct the import and are not part of the stored record.
DIRECTIVES = frozenset({"@merge", "@force_optin", "@add_to_lists", "@remove_from_lists", "@profile_id"})


def merge(stored: Document | None, incoming: Document) -> Document:
    """The stored document after ``incoming`` is applied to it."""
    replace = incoming.get("@merge") is False
    doc = {} if stored is None or replace else dict(stored)
    for key, value in incoming.items():
        if key in DIRECTIVES:
            continue
        if value is None:
            doc.pop(key, None)
        elif key == "properties":
            properties = dict(doc.get(key) or {})
            for name, item in value.items():
                if item is None:
                    properties.pop(name, None)
                else:
                    properties[name] = item
            doc[key] = properties
        else:
            doc[key] = value
    return doc


Key = tuple[str, ...]


class Step(NamedTuple):
    """One record applied: its key, the stored document before it and the document after it."""

    key: Key
    before: Document | None
    after: Document
