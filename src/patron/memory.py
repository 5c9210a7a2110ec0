"""How Patron's long-running processes set Python's garbage collector up.

A push of 100 orders makes tens of thousands of objects that die young, and a worker round many more;
with CPython's default thresholds (a collection every 700 allocations) the collector ran over and over
within each push and each round: 12% of the API's CPU, about a quarter of the worker's (py-spy,
bench/apply.py; docs/performance.md). Reference counting frees these objects anyway: the collector
is only there for cycles, which Patron's hot paths do not make, so it runs far less often, and never
again looks at what startup built (the app, the schema, the modules).
"""

from __future__ import annotations

import gc

#: Allocations between two young collections (CPython: 700), and the older generations' multipliers.
THRESHOLDS = (50_000, 20, 100)


def settle() -> None:
    """Call once a process has started up: raise the thresholds and freeze what exists now."""
    gc.collect()
    gc.set_threshold(*THRESHOLDS)
    gc.freeze()
