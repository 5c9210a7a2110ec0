"""The integration check (an extension): rules over an account's stored data, each finding how many
records break it and a few of them, and a verdict on whether the account is ready to go live.

``rules`` holds the structs, the registry and the verdict; each other module holds the rules of one
area and registers them. Every rule reads the stored data on the connection it is given (a read
transaction: one snapshot) with set-based SQL, or by streaming its rows in bounded chunks
(:func:`rules.scan`), never an account's whole data at once. Most rules count the defects
found when each record was written (:mod:`patron.model.defects`)."""

from patron.report import contacts, history, orders, products, tracking, warnings
from patron.report.rules import (
    BUDGET,
    MAX_SAMPLES,
    READY,
    RULES,
    SAMPLES,
    TOLERANCE,
    Finding,
    Report,
    Sample,
    UnknownRule,
    one,
    report,
)

__all__ = [
    "BUDGET",
    "MAX_SAMPLES",
    "READY",
    "RULES",
    "SAMPLES",
    "TOLERANCE",
    "Finding",
    "Report",
    "Sample",
    "UnknownRule",
    "contacts",
    "history",
    "one",
    "orders",
    "products",
    "report",
    "tracking",
    "warnings",
]
