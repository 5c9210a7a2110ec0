"""Alembic, driven from code: ``upgrade`` brings a database to the schema this version of Patron needs.

Whether it needs to is read without Alembic: each migration's revision is its file's four-digit number
and follows the one before it (tests/test_store.py holds the scripts to that), so the newest file names
the head, and the database's revision is a row of ``alembic_version``. A process that finds its
database current (every start but the first after an upgrade) loads neither Alembic nor the scripts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

#: The migration scripts: ``NNNN_what.py``, revision ``"NNNN"``.
VERSIONS: Final = Path(__file__).with_name("migrations") / "versions"


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "patron.store:migrations")
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection) -> None:
    """Apply every migration the database has not had yet, on ``connection``."""
    from alembic import command

    command.upgrade(_config(connection), "head")


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None: not made yet)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    found = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(found) > 1:
        raise RuntimeError(f"the database is at several revisions: {sorted(found)}")
    return found[0] if found else None


def head_revision() -> str:
    """The newest migration's revision."""
    return max(path.name[:4] for path in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))


def is_current(connection: Connection) -> bool:
    """Whether the database is at the newest migration."""
    return current_revision(connection) == head_revision()
