"""The layering of the package: no module imports a package above its own.

Read from the source with ``ast`` (imports inside functions count too), so a new upward import fails
here before it tangles the house."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "patron"

#: Lowest first: each part may import its own layer and those below it.
LAYERS: list[set[str]] = [
    {"__init__", "config", "errors", "logs", "memory", "metrics", "tls"},  # (``__init__``: the version)
    {"records", "client"},  # (``client``: the API from Python, with the records' limits)
    {"store"},
    {"accounts", "signing", "ratelimits", "health"},
    {"model", "entities", "operators", "webhooks"},
    {"profiles", "email"},
    {"ingest"},
    {"tracking", "gdpr", "report", "retention", "segments", "replays"},
    {
        "runtime",
        "api",
        "console",
        "app",
        "connections",
        "server",
        "cli",
        "cli_accounts",
        "cli_common",
        "cli_profiles",
        "cli_queue",
        "cli_segments",
        "cli_transfer",
        "cli_webhooks",
        "transfer",
        "__main__",
    },
]
LAYER = {part: level for level, parts in enumerate(LAYERS) for part in parts}


def part_of(path: Path) -> str:
    """The top-level part a source file belongs to: its package, or its own module."""
    return path.relative_to(SOURCE).parts[0].removesuffix(".py")


def imported(source: str, path: Path) -> list[tuple[int, str]]:
    """The parts of ``patron`` the source of the file at ``path`` imports, with the line of each."""
    found = []
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the file's own package, less one level for each dot past one
                package = path.relative_to(SOURCE).parent.parts
                names = [".".join(["patron", *package[: len(package) - node.level + 1], node.module or ""])]
            else:
                names = [node.module or ""]
            if names == ["patron"]:  # from patron import gdpr, ...
                names = [f"patron.{alias.name}" for alias in node.names]
        else:
            continue
        found += [(node.lineno, name.split(".")[1]) for name in names if name.startswith("patron.")]
    return found


SOURCES = sorted(p for p in SOURCE.rglob("*.py") if "migrations" not in p.parts)


def test_every_part_has_a_layer() -> None:
    parts = {part_of(path) for path in SOURCES}
    assert parts - LAYER.keys() == set(), "put each new part of the package in a layer above"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SOURCE)))
def test_no_import_runs_upward(path: Path) -> None:
    own = part_of(path)
    upward = [
        f"line {line}: {own} (layer {LAYER[own]}) imports {part} (layer {LAYER[part]})"
        for line, part in imported(path.read_text(), path)
        if part in LAYER and LAYER[part] > LAYER[own]
    ]
    assert upward == []


def test_the_check_sees_every_form_of_import() -> None:
    """Absolute, ``from patron import``, relative and function-level imports are all read."""
    source = (
        "from patron.ingest import queue\n"
        "from patron import gdpr, config\n"
        "from . import schema\n"
        "def f():\n    import patron.api.auth\n"
    )
    found = [part for _, part in imported(source, SOURCE / "store" / "example.py")]
    assert found == ["ingest", "gdpr", "config", "store", "api"]


def test_only_the_store_speaks_its_dialect() -> None:
    """What differs between SQLite and PostgreSQL is the store's to know (``patron.store``)."""
    speaking = [
        f"{path.relative_to(SOURCE)}:{node.lineno}"
        for path in SOURCES
        if part_of(path) != "store"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
        and node.attr == "name"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "dialect"
    ]
    assert speaking == []
