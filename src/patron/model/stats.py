"""What a profile's stats take from an order: whether it counts, its revenue, items and date.

An order counts unless ``is_valid`` is false or its status says it was cancelled. Revenue is the base
currency ``totals.base.grand_total`` where the order gives one, else ``grand_total``.
"""

from __future__ import annotations

from typing import Any, Final

CANCELLED: Final = frozenset({"cancelled", "canceled"})
#: The largest revenue (either sign) and item count one order adds to its profile's stats: a bound far
#: beyond any real order, so that sums over many orders stay exact numbers in either database.
LIMIT: Final = 10**12


def counted(order: dict[str, Any]) -> bool:
    status = order.get("status")
    cancelled = isinstance(status, str) and status.strip().lower() in CANCELLED
    return order.get("is_valid") is not False and not cancelled


def revenue(order: dict[str, Any]) -> float:
    base = (order.get("totals") or {}).get("base") or {}
    value = base.get("grand_total")
    if value is None:  # not given (a null base total gives none either)
        value = order.get("grand_total")
    if not isinstance(value, float | int) or isinstance(value, bool):
        return 0.0
    return float(max(-LIMIT, min(LIMIT, value)))


def items(order: dict[str, Any]) -> int:
    return min(LIMIT, sum(int(line.get("quantity") or 0) for line in order.get("lineitems") or ()))


def placed_at(order: dict[str, Any]) -> str | None:
    value = order.get("timestamp")
    return value if isinstance(value, str) else None
