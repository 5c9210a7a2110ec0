"""Record builders: the smallest valid record of each type, to change what a test is about."""

from __future__ import annotations

from typing import Any


def minimal(record_type: str, record_id: str, **fields: Any) -> dict[str, Any]:
    """A small valid record of ``record_type`` (``fields`` added or replacing its own)."""
    base: dict[str, Any] = {"@type": record_type, "id": record_id}
    if record_type == "contact":
        base["email"] = f"{record_id}@example.com"
    elif record_type == "custom_event":
        base.update(event_type="signup", identity_email=f"{record_id}@example.com")
    return {**base, **fields}
