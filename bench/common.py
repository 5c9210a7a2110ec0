"""What the benchmarks share: a fresh store with a benchmark account, the queue's backlog, the
machine's description, and the marked section of docs/performance.md each writes."""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from conftest import Tenant, create_tenant_cli, run_cli, set_limits

ROOT = Path(__file__).parent.parent
HEADER = "| Figure | Result | Beside | Ratio | Target |\n|---|---|---|---|---|"


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in lines if "model name" in line), platform.processor()
    )
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def write_section(name: str, preamble: str, rows: list[tuple[str, ...]]) -> None:
    """Replace the ``<!-- name-bench -->`` section of docs/performance.md (appended when missing)."""
    table = "\n".join("| " + " | ".join(row) + " |" for row in rows)
    start_mark, end_mark = f"<!-- {name}-bench -->", f"<!-- /{name}-bench -->"
    section = f"{start_mark}\n{preamble}\n\n{HEADER}\n{table}\n{end_mark}"
    path = ROOT / "docs" / "performance.md"
    text = path.read_text()
    start, end = text.find(start_mark), text.find(end_mark)
    if start == -1 or end == -1:
        text = text.rstrip() + f"\n\n## {name.capitalize()}\n\n" + section + "\n"
    else:
        text = text[:start] + section + text[end + len(end_mark) :]
    path.write_text(text)


def fresh(prefix: str, *limits: str, environment: dict[str, str] | None = None) -> tuple[Path, Path, Tenant]:
    """A work directory, its migrated SQLite data directory (or the database ``environment`` names in
    ``PATRON_DATABASE_URL``), and an account with ``limits`` (``set-limits`` options) lifted."""
    work = Path(tempfile.mkdtemp(prefix=f"patron-bench-{prefix}-"))
    data_dir = work / "data"
    run_cli(data_dir, "migrate", environment=environment)
    tenant = create_tenant_cli(data_dir, "bench", environment=environment)
    if limits:
        set_limits(data_dir, tenant.hash, *limits, environment=environment)
    return work, data_dir, tenant


def queued(data_dir: Path) -> int:
    """Records accepted and not yet applied."""
    db = sqlite3.connect(f"file:{data_dir / 'patron.db'}?mode=ro", uri=True)
    try:
        query = "select coalesce(sum(accepted), 0) from import_batches where status = 'queued'"
        return int(db.execute(query).fetchone()[0])
    finally:
        db.close()
