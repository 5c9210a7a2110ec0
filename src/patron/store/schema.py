"""The database schema: one SQLAlchemy Core ``MetaData`` for SQLite and PostgreSQL alike.

Alembic migrations in ``store/migrations`` create exactly these tables; a test compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: SQLite only auto-increments an ``INTEGER PRIMARY KEY``; PostgreSQL gets a 64-bit identity.
Id = BigInteger().with_variant(Integer(), "sqlite")

accounts = Table(
    "accounts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("hash", String(16), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("environment", String(16), nullable=False),
    # Per-account overrides of the rate limits, {"push": "8/second", ...}; absent classes use the defaults.
    Column("limits", JSON, nullable=False, default=dict),
    # The most records this account may have queued before a push gets 429 (Ometria: 50,000).
    Column("queue_limit", Integer, nullable=False, default=50_000, server_default="50000"),
    # Records accepted and not yet applied, kept in step by enqueue and by the worker.
    Column("queued_records", Integer, nullable=False, default=0, server_default="0"),
    Column("created_at", UTCDateTime(), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("public_id", String(32), nullable=False, unique=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    # SHA-256 of the key, hex. The key itself is never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("label", String(200), nullable=False, default=""),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
)

#: A single row rewritten by the readiness probe: a real write proves the store accepts writes.
heartbeat = Table(
    "heartbeat",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
)


def _account_id() -> Column[int]:
    return Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False)


# the import queue: one row per accepted push request ---------------------------------------------

import_batches = Table(
    "import_batches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),  # arrival order
    Column("request_id", String(36), nullable=False, unique=True),
    _account_id(),
    Column("record_type", String(16), nullable=False),
    Column("records", LargeBinary, nullable=False),  # JSON array of the accepted, normalised records
    Column("accepted", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("status", String(8), nullable=False),  # queued | applied
    Column("applied", Integer, nullable=True),  # records applied (accepted minus apply failures)
    Column("received_at", UTCDateTime(), nullable=False),
    Column("applied_at", UTCDateTime(), nullable=True),
    Index("ix_import_batches_status_id", "status", "id"),
    Index("ix_import_batches_account_status", "account_id", "status"),
)

#: Rejected records, for GET /v2/push/_errors: at validation (the request) or when applied (the worker).
push_errors = Table(
    "push_errors",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("request_id", String(36), nullable=False),
    Column("record_type", String(16), nullable=False),
    Column("record_index", Integer, nullable=False),
    Column("record_id", String(512), nullable=True),
    Column("error_path", Text, nullable=False),
    Column("error_message", Text, nullable=False),
    Column("record", Text, nullable=True),  # the record as sent, when it was not too large to keep
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_push_errors_account_id_id", "account_id", "id"),
)


# entities: the merged document of every record, with the columns reads and joins need ------------


def _entity(name: str, key: Column[str], *columns: Column[object], scope: tuple[str, ...] = ()) -> Table:
    return Table(
        name,
        metadata,
        Column("id", Id, primary_key=True, autoincrement=True),  # internal id: creation order
        _account_id(),
        key,
        *columns,
        Column("data", Text, nullable=False),  # the merged record, JSON
        Column("created_at", UTCDateTime(), nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
        UniqueConstraint("account_id", *scope, key.name, name=f"uq_{name}_account_key"),
        Index(f"ix_{name}_account_updated", "account_id", "updated_at", "id"),
    )


contacts = _entity(
    "contacts",
    Column("contact_id", String(512), nullable=False),
    Column("collection", String(200), nullable=False),
    Column("email", String(254), nullable=True),
    Column("customer_id", String(512), nullable=True),
    Column("phone_number", String(16), nullable=True),
    scope=("collection",),
)
Index("ix_contacts_account_email", contacts.c.account_id, contacts.c.email)
Index("ix_contacts_account_customer", contacts.c.account_id, contacts.c.customer_id)

orders = _entity(
    "orders",
    Column("order_id", String(512), nullable=False),
    Column("customer_id", String(512), nullable=True),
    Column("customer_email", String(254), nullable=True),
)

products = _entity(
    "products",
    Column("product_id", String(512), nullable=False),
    Column("is_active", Boolean, nullable=True),
    Column("is_variant", Boolean, nullable=True),
)

custom_events = _entity(
    "custom_events",
    Column("event_id", String(512), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("identity_email", String(254), nullable=True),
    Column("identity_account_id", String(512), nullable=True),
    Column("profile_id", String(512), nullable=True),
)
Index("ix_custom_events_account_type", custom_events.c.account_id, custom_events.c.event_type)

#: Rate-limit counters when several processes share a PostgreSQL database and no Redis: one row per
#: account, endpoint class and fixed window.
rate_windows = Table(
    "rate_windows",
    metadata,
    Column("key", String(80), primary_key=True),  # <account hash>/<endpoint class>/<limit>
    Column("window_start", BigInteger, primary_key=True),  # unix seconds
    Column("count", Integer, nullable=False),
)
