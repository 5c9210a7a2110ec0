"""Where the benchmarks write their figures: a marked section of docs/performance.md each."""

from __future__ import annotations

import os
import platform
from pathlib import Path

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
