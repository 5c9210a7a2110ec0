"""A worker that applies one round at a time, slowly, with an anonymisation's sweeps reading
:data:`WINDOW` ids of each table a step: what the GDPR kill test stops with SIGKILL in the middle of a
sweep. ``python tests/support/sweeping.py DATA_DIR [DATABASE_URL]``; prints the number of each round
that applied something, once it is committed."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

from patron import gdpr
from patron.config import Settings
from patron.ingest.worker import apply_round
from patron.runtime import queue_kinds
from patron.store import open_store

WINDOW = 2


def main() -> None:
    data_dir, database_url = Path(sys.argv[1]), (sys.argv[2] if len(sys.argv) > 2 else None)
    gdpr.SWEEPS = [(table, WINDOW, sweep) for table, _, sweep in gdpr.SWEEPS]
    settings = replace(Settings(), data_dir=data_dir, database_url=database_url, redis_url=None)
    store = open_store(settings)
    store.start()
    kinds, rounds = queue_kinds(), 0
    while True:
        if apply_round(store, kinds):
            rounds += 1
            print(rounds, flush=True)
        time.sleep(0.2)


if __name__ == "__main__":
    main()
