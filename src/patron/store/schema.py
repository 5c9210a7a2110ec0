"""The database schema: one SQLAlchemy Core ``MetaData`` for SQLite and PostgreSQL alike.

Alembic migrations in ``store/migrations`` create exactly these tables; a test compares the two.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)

from patron.records.fields import MAX_ID_LENGTH


@lru_cache(maxsize=4096)  # a round's rows share a few moments (each request's time of application)
def _sqlite_text(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    PostgreSQL keeps it as ``timestamptz``. SQLite has no such type: its ``DATETIME`` column holds the
    text SQLAlchemy's own SQLite type writes (``2026-11-27 09:15:00.000000``, in UTC), so text order is
    time order. On SQLite the text is written and read here in one step each, instead of the two of a
    decorated type, which the worker pays for every row (7% of a round, bench/apply.py).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        return lambda value: None if value is None else _sqlite_text(value)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], datetime | None] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        return lambda value: None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


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
    # Whether contacts with the same phone number join one profile (Ometria: off unless enabled).
    Column("match_phone", Boolean, nullable=False, default=False, server_default="0"),
    # The key that signs the account's email links (unsubscribe), made when first needed.
    Column("link_secret", String(64), nullable=True),
    # The hosts tracked email links may lead to (and their subdomains); empty: the sender's domain.
    Column("link_domains", JSON, nullable=False, default=list, server_default="[]"),
    Column("created_at", UTCDateTime(), nullable=False),
    # Whether pushes are refused what Patron otherwise reads leniently (a timestamp without an offset...).
    Column("strict", Boolean, nullable=False, default=False, server_default="0"),
)

#: Records accepted and not yet applied, per account, kept in step by enqueue and by the worker: the sum
#: of the account's slots. A push adds to one slot (``ingest.queue.QUEUE_SLOTS``) picked at random, so that
#: concurrent pushes of one account seldom wait for one another's row (on PostgreSQL a row stays locked
#: until its transaction commits).
queue_counts = Table(
    "queue_counts",
    metadata,
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("slot", Integer, primary_key=True, autoincrement=False),
    Column("records", BigInteger, nullable=False),
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
    Column("last_used_at", UTCDateTime(), nullable=True),  # written at most once a minute
    # the key's first characters, shown to tell keys apart (none for keys made before they were kept)
    Column("prefix", String(8), nullable=True),
    Column("expires_at", UTCDateTime(), nullable=True),  # none: the key never expires
    Column("read_only", Boolean, nullable=False, default=False, server_default="0"),  # GET and HEAD only
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


#: People who sign in to the console (never with an API key): an email, an argon2id password hash, a
#: role (viewer, admin, owner), and the accounts they may see (``operator_accounts``).
operators = Table(
    "operators",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False, unique=True),  # lower case
    Column("password_hash", String(200), nullable=False),
    Column("role", String(8), nullable=False),  # viewer | admin | owner
    Column("disabled_at", UTCDateTime(), nullable=True),
    Column("failed_signins", Integer, nullable=False, default=0, server_default="0"),
    Column("locked_until", UTCDateTime(), nullable=True),  # repeated failed sign-ins lock it a while
    Column("last_signin_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

operator_accounts = Table(
    "operator_accounts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("operator_id", Id, ForeignKey("operators.id", ondelete="CASCADE"), nullable=False),
    _account_id(),
    UniqueConstraint("operator_id", "account_id", name="uq_operator_accounts"),
    Index("ix_operator_accounts_account", "account_id"),
)

#: A signed-in operator's sessions: the SHA-256 of the cookie's random token (never the token), the
#: CSRF token its forms carry, and when it was last used (it ends after a while idle).
operator_sessions = Table(
    "operator_sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("operator_id", Id, ForeignKey("operators.id", ondelete="CASCADE"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Index("ix_operator_sessions_operator", "operator_id"),
)


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
    # the console's records per hour, read from the index alone
    Index(
        "ix_import_batches_account_received",
        "account_id",
        "received_at",
        "record_type",
        "accepted",
        "rejected",
    ),
    Index("ix_import_batches_applied", "applied_at"),  # the applied rows, oldest first, for pruning
)

#: The queue's requests per hour, once their rows are pruned (``patron.retention``): what the
#: console's chart of records per hour and the last push of each record type still read.
import_hours = Table(
    "import_hours",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("hour", UTCDateTime(), nullable=False),  # the hour the requests were received in
    Column("record_type", String(16), nullable=False),
    Column("requests", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("last_received_at", UTCDateTime(), nullable=False),
    UniqueConstraint("account_id", "hour", "record_type", name="uq_import_hours_account_hour_type"),
)

#: Rejected records, for GET /v2/push/_errors: at validation (the request) or when applied (the worker).
push_errors = Table(
    "push_errors",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("request_id", String(36), nullable=False),
    Column("record_type", String(16), nullable=False),
    Column("record_index", Integer, nullable=True),  # null: about the request as a whole
    Column("record_id", String(MAX_ID_LENGTH), nullable=True),
    Column("error_path", Text, nullable=False),
    Column("error_message", Text, nullable=False),
    Column("record", Text, nullable=True),  # the record as sent, when it was not too large to keep
    Column("created_at", UTCDateTime(), nullable=False),
    # "error": the record was rejected; "warning": it was accepted, read leniently.
    Column("severity", String(8), nullable=False, default="error", server_default="error"),
    # The lenient reading's rule (validate.CONTENT_TYPE, NO_OFFSET, EMPTY_ARRAY), warned or refused.
    Column("kind", String(32), nullable=True),
    Index("ix_push_errors_account_id_id", "account_id", "id"),
    Index("ix_push_errors_account_request", "account_id", "request_id"),
)


# entities: the merged document of every record, with the columns reads and joins need ------------


def _entity(name: str, key: Column[str], *columns: Column[Any], scope: tuple[str, ...] = ()) -> Table:
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
        # the entity's number in its account, 1, 2, 3... in creation order: a page at any depth seeks
        Column("seq", BigInteger, nullable=True),
        Index(f"ix_{name}_account_seq", "account_id", "seq", unique=True),
    )


def _profile() -> Column[str]:
    """The profile a record belongs to (``profiles.profile_id``), set by the worker."""
    return Column("profile", String(32), nullable=True)


contacts = _entity(
    "contacts",
    Column("contact_id", String(MAX_ID_LENGTH), nullable=False),
    Column("collection", String(200), nullable=False),
    Column("email", String(254), nullable=True),
    Column("customer_id", String(MAX_ID_LENGTH), nullable=True),
    Column("phone_number", String(16), nullable=True),
    _profile(),
    scope=("collection",),
)
# the customer ids each email came with, read from the index alone (the integration check)
Index("ix_contacts_account_email", contacts.c.account_id, contacts.c.email, contacts.c.customer_id)
Index("ix_contacts_account_customer", contacts.c.account_id, contacts.c.customer_id)
Index("ix_contacts_account_profile", contacts.c.account_id, contacts.c.profile)

orders = _entity(
    "orders",
    Column("order_id", String(MAX_ID_LENGTH), nullable=False),
    Column("customer_id", String(MAX_ID_LENGTH), nullable=True),
    Column("customer_email", String(254), nullable=True),
    _profile(),
    # What the profile's stats take from the order, kept in step with ``data`` by the worker.
    Column("counted", Boolean, nullable=False, default=True, server_default="1"),  # valid, not cancelled
    Column("revenue", Float, nullable=False, default=0, server_default="0"),  # base currency
    Column("items", BigInteger, nullable=False, default=0, server_default="0"),
    Column("placed_at", String(40), nullable=True),  # the order's timestamp, UTC ISO 8601 (sorts as text)
    Column("currency", String(3), nullable=True),
    Column("base_totals", Boolean, nullable=False, default=False, server_default="0"),  # totals.base given
)
# orders by date (the integration check's history and recent orders; the console's orders and revenue
# per day), with, read from the index alone, their currency and revenue
Index(
    "ix_orders_account_placed",
    orders.c.account_id,
    orders.c.placed_at,
    orders.c.currency,
    orders.c.base_totals,
    orders.c.counted,
    orders.c.revenue,
)
# the emails each customer id came with, grouped as the index runs (the integration check)
Index("ix_orders_account_customer", orders.c.account_id, orders.c.customer_id, orders.c.customer_email)
# covering the profile stats, so that they are read from the index alone
Index(
    "ix_orders_account_profile",
    orders.c.account_id,
    orders.c.profile,
    orders.c.counted,
    orders.c.revenue,
    orders.c["items"],
    orders.c.placed_at,
)

products = _entity(
    "products",
    Column("product_id", String(MAX_ID_LENGTH), nullable=False),
    Column("is_active", Boolean, nullable=True),
    Column("is_variant", Boolean, nullable=True),
    Column("parent_id", String(MAX_ID_LENGTH), nullable=True),  # a variant's product (the console's)
)
Index("ix_products_account_parent", products.c.account_id, products.c.parent_id, products.c.product_id)


def _flags(entity: Table) -> Table:
    """What is wrong with each record of ``entity`` on its own (``patron.model.defects``): a row per
    defect, replaced whenever the record is written, gone with it."""
    name = f"{entity.name[:-1]}_flags"
    return Table(
        name,
        metadata,
        Column("id", Id, primary_key=True, autoincrement=True),
        _account_id(),
        Column("row_id", Id, ForeignKey(f"{entity.name}.id", ondelete="CASCADE"), nullable=False),
        Column("rule", String(64), nullable=False),
        Column("ref", String(MAX_ID_LENGTH), nullable=True),  # a product named and never pushed
        Column("value", Text, nullable=True),  # the value at fault, JSON
        Index(f"ix_{name}_account_rule", "account_id", "rule", "row_id"),
        Index(f"ix_{name}_row", "row_id"),
        Index(
            f"ix_{name}_account_ref",
            "account_id",
            "ref",
            sqlite_where=text("ref IS NOT NULL"),
            postgresql_where=text("ref IS NOT NULL"),
        ),
    )


contact_flags = _flags(contacts)
order_flags = _flags(orders)
product_flags = _flags(products)

custom_events = _entity(
    "custom_events",
    Column("event_id", String(MAX_ID_LENGTH), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("identity_email", String(254), nullable=True),
    Column("identity_account_id", String(MAX_ID_LENGTH), nullable=True),
    Column("profile_id", String(MAX_ID_LENGTH), nullable=True),
    _profile(),
)
Index("ix_custom_events_account_type", custom_events.c.account_id, custom_events.c.event_type)
Index("ix_custom_events_account_profile", custom_events.c.account_id, custom_events.c.profile)


# the single customer view --------------------------------------------------------------------------

#: Profiles: one person, built by the worker from the contacts, orders and events linked to it.
#: The profile documents' counts and dates kept in typed columns of ``profiles``.
PROFILE_COUNTS = ("orders", "orders_attempted", "total_items", "visits", "email_clicks")
PROFILE_DATES = ("acquired", "first_purchase", "last_purchase", "first_seen", "last_seen", "last_email_click")

profiles = Table(
    "profiles",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("profile_id", String(32), nullable=False),  # public id, e.g. 2695-c473e2-4aaf58
    Column("email", String(254), nullable=True),  # the shown email, lower case (GET /profiles?email=)
    Column("merged_into", String(32), nullable=True),  # the surviving profile, once merged away
    Column("anonymised_at", UTCDateTime(), nullable=True),  # GDPR: nothing links to it any more
    Column("data", Text, nullable=False),  # the profile document, JSON
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # Fields of the document kept beside it, typed, for segments (``profiles.build.TYPED``): stats,
    # country, consent, and the dates as the document writes them (UTC ISO 8601, sorting as text).
    *(Column(name, BigInteger, nullable=True) for name in PROFILE_COUNTS),
    Column("revenue", Float, nullable=True),
    Column("aov", Float, nullable=True),
    Column("country_id", String(2), nullable=True),
    Column("marketing_optin", Boolean, nullable=True),
    Column("sms_status", String(16), nullable=True),
    *(Column(name, String(40), nullable=True) for name in PROFILE_DATES),
    UniqueConstraint("account_id", "profile_id", name="uq_profiles_account_key"),
    Index("ix_profiles_account_updated", "account_id", "updated_at", "id"),
    Index("ix_profiles_account_email", "account_id", "email"),
    Index("ix_profiles_account_created", "account_id", "created_at"),  # the console's new profiles per day
    Index("ix_profiles_account_id", "account_id", "id"),  # an account's profiles in steps (segments' builds)
    Index(  # the profiles merged into one (a merge moves them on to its survivor)
        "ix_profiles_account_merged_into",
        "account_id",
        "merged_into",
        sqlite_where=text("merged_into IS NOT NULL"),
        postgresql_where=text("merged_into IS NOT NULL"),
    ),
    # who crossed a relative date's line since a segment was last checked (a range of one date)
    *(Index(f"ix_profiles_account_{name}", "account_id", name) for name in PROFILE_DATES),
)

#: Identifiers (customer id, email, phone) and the one profile each belongs to.
identities = Table(
    "identities",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("kind", String(16), nullable=False),  # customer_id | email | phone_number
    Column("value", String(MAX_ID_LENGTH), nullable=False),  # normalised: emails in lower case
    Column("profile", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("account_id", "kind", "value", name="uq_identities_account_key"),
    Index("ix_identities_account_profile", "account_id", "profile"),
)

#: Every change of a profile's consent, per channel, in the order it happened.
consents = Table(
    "consents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("profile", String(32), nullable=False),
    Column("channel", String(8), nullable=False),  # email | sms
    Column("status", String(16), nullable=False),  # subscribed | unsubscribed | not_specified | pending
    Column("source", String(32), nullable=False),  # api | app | preferences_centre | list_unsubscribe ...
    Column("address", String(254), nullable=True),  # the email address or phone number it was about
    Column("collection", String(200), nullable=True),  # the contact that changed, when one did
    Column("contact_id", String(MAX_ID_LENGTH), nullable=True),
    Column("reason", Text, nullable=True),
    Column("occurred_at", UTCDateTime(), nullable=False),  # the timestamp sent, or when applied
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_consents_account_profile", "account_id", "profile", "channel", "id"),
    Index("ix_consents_account_occurred", "account_id", "occurred_at"),
)

#: Lists (Ometria's segments). Patron's lists are static: filled by ``@add_to_lists``.
lists = Table(
    "lists",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("list_id", String(MAX_ID_LENGTH), nullable=False),
    Column("title", String(200), nullable=True),
    Column("description", Text, nullable=True),
    Column("archived", Boolean, nullable=False, default=False, server_default="0"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),  # membership or details last changed
    # the sums of the live members' profile documents, kept by the worker as it rewrites them
    Column("size", BigInteger, nullable=False, default=0, server_default="0"),
    Column("total_orders", BigInteger, nullable=False, default=0, server_default="0"),
    Column("total_revenue", Float, nullable=False, default=0, server_default="0"),
    Column("stats_at", UTCDateTime(), nullable=True),  # when the sums last changed
    UniqueConstraint("account_id", "list_id", name="uq_lists_account_key"),
    Index("ix_lists_account_archived", "account_id", "archived", "id"),
)

list_members = Table(
    "list_members",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("list_id", String(MAX_ID_LENGTH), nullable=False),
    Column("profile", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("account_id", "list_id", "profile", name="uq_list_members_account_key"),
    # (the list as well: the index covers a read of a few profiles' lists, so SQLite prefers it)
    Index("ix_list_members_account_profile", "account_id", "profile", "list_id"),
)

#: ``list_enter`` / ``list_exit`` events, for ``GET /v2/lists/{id}/changes``.
list_changes = Table(
    "list_changes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("list_id", String(MAX_ID_LENGTH), nullable=False),
    Column("profile", String(32), nullable=False),
    Column("event", String(16), nullable=False),  # list_enter | list_exit
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_list_changes_account_list", "account_id", "list_id", "created_at"),
    Index("ix_list_changes_account_profile", "account_id", "profile"),  # a person's (GDPR)
)

#: Merge jobs (``POST /v2/merge-profile``) once the worker has run them.
merge_jobs = Table(
    "merge_jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("job_id", String(36), nullable=False, unique=True),  # the request id of its queued batch
    Column("status", String(16), nullable=False),  # completed | failed
    Column("survivor", String(32), nullable=True),
    Column("merged", Text, nullable=False),  # JSON array of the profile ids merged into the survivor
    Column("error", Text, nullable=True),
    Column("completed_at", UTCDateTime(), nullable=False),
    # when the merge was received: kept here once its queued row is pruned (``patron.retention``)
    Column("received_at", UTCDateTime(), nullable=True),
)

#: Rate-limit counters when several processes share a PostgreSQL database and no Redis: one row per
#: account, endpoint class and fixed window.
rate_windows = Table(
    "rate_windows",
    metadata,
    Column("key", String(80), primary_key=True),  # <account hash>/<endpoint class>/<limit>
    Column("window_start", BigInteger, primary_key=True),  # unix seconds
    Column("count", Integer, nullable=False),
)

#: GDPR anonymisation requests (``POST /v2/data-deletion-requests``). The identities are kept only
#: hashed; the queued operation that carries them is scrubbed when it is done.
deletion_requests = Table(
    "deletion_requests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("request_id", String(36), nullable=False, unique=True),  # also its queued batch's
    Column("identities", Text, nullable=False),  # JSON: [{"hashed_email": ...} | {"type", "hashed_value"}]
    Column("comment", Text, nullable=True),
    Column("status", String(16), nullable=False),  # queued | completed
    Column("summary", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("completed_at", UTCDateTime(), nullable=True),
    Index("ix_deletion_requests_account_id", "account_id", "id"),
)


# transactional email -------------------------------------------------------------------------------

#: Email templates (Ometria keeps them in its app; here ``POST /v2/templates``): Jinja2 sources.
templates = Table(
    "templates",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("template_id", Integer, nullable=False),  # the API's id: 1, 2, 3 ... per account
    Column("name", String(200), nullable=True),
    Column("subject", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("account_id", "template_id", name="uq_templates_account_key"),
)

#: The outbox: every transactional email, rendered, from acceptance to delivery (or failure).
messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("message_id", String(36), nullable=False, unique=True),
    # queued | sending (an attempt under way) | sent | failed | sandbox (rendered, never delivered)
    Column("status", String(16), nullable=False),
    Column("profile", String(32), nullable=True),
    Column("stream", String(200), nullable=True),
    Column("sender", Text, nullable=False),  # the From header
    Column("reply_to", Text, nullable=True),
    Column("recipient", String(254), nullable=False),  # the address delivered to
    Column("recipient_name", Text, nullable=True),
    Column("subject", Text, nullable=False),
    Column("html", Text, nullable=True),
    Column("text", Text, nullable=True),
    Column("attachments", Text, nullable=False),  # JSON: [{"filename", "content" (base64)}]
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("error", Text, nullable=True),  # the last failure: the SMTP server's answer, or why
    Column("unsubscribe_url", Text, nullable=True),  # List-Unsubscribe: a signed one-click link
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    Index("ix_messages_status_next", "status", "next_attempt_at"),
    Index("ix_messages_account_profile", "account_id", "profile", "id"),
    Index("ix_messages_account_id", "account_id", "id"),  # an account's outbox, newest first
    Index("ix_messages_account_recipient", "account_id", "recipient"),  # those sent to a person (GDPR)
)

#: Clicks on the verified links of transactional emails, each on the profile of its recipient.
email_clicks = Table(
    "email_clicks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("message_id", String(36), nullable=False),
    Column("profile", String(32), nullable=True),  # none when the address belongs to no profile
    Column("url", Text, nullable=False),
    Column("clicked_at", UTCDateTime(), nullable=False),
    Index("ix_email_clicks_account_profile", "account_id", "profile"),
)


# on-site tracking (the website tag) ----------------------------------------------------------------

#: Visitors: a browser, known by the tag's cookie id (``cid``), linked to a profile once identified.
visitors = Table(
    "visitors",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("cid", String(64), nullable=False),
    Column("profile", String(32), nullable=True),
    Column("first_source", Text, nullable=True),  # JSON: the visitor's first traffic source (osrc)
    Column("first_seen", UTCDateTime(), nullable=False),
    Column("last_seen", UTCDateTime(), nullable=False),
    UniqueConstraint("account_id", "cid", name="uq_visitors_account_cid"),
    Index("ix_visitors_account_profile", "account_id", "profile"),
)

#: Sessions, as the tag numbers them (``sid``), with what happened in them.
tracking_sessions = Table(
    "tracking_sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("session_id", String(128), nullable=False),
    Column("cid", String(64), nullable=False),
    Column("profile", String(32), nullable=True),
    Column("site", String(200), nullable=True),
    Column("source", Text, nullable=True),  # JSON: the traffic source the session began with (src)
    Column("page_views", Integer, nullable=False, default=0),
    Column("product_views", Integer, nullable=False, default=0),
    Column("basket_adds", Integer, nullable=False, default=0),
    Column("basket", Text, nullable=True),  # JSON: the latest basket set
    Column("checkout_stage", Text, nullable=True),
    Column("transactions", Text, nullable=False, default="[]"),  # JSON: order ids
    # null while open; abandoned_basket | browse_abandoned | converted | ended, once idle
    Column("outcome", String(32), nullable=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("last_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime(), nullable=True),
    # a session is its visitor's: another browser sending the same id does not join it
    UniqueConstraint("account_id", "cid", "session_id", name="uq_tracking_sessions_account_session"),
    Index("ix_tracking_sessions_account_profile", "account_id", "profile"),
    Index("ix_tracking_sessions_open", "ended_at", "last_at"),
    Index(
        "ix_tracking_sessions_account_started", "account_id", "started_at"
    ),  # the console's sessions per day
)

#: Every event the tag sent that decoded: page views, product views, baskets, checkout steps,
#: transactions, identifies and custom tag events.
tracking_events = Table(
    "tracking_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("session_id", String(128), nullable=False),
    Column("cid", String(64), nullable=False),
    Column("kind", String(100), nullable=False),  # pageview | viewproduct | ... | a custom type
    Column("channel", String(16), nullable=False),  # system | custom
    Column("url", Text, nullable=True),
    Column("page_type", String(200), nullable=True),
    Column("data", Text, nullable=False),  # JSON: the event's d
    Column("occurred_at", UTCDateTime(), nullable=False),
    Index("ix_tracking_events_account_session", "account_id", "cid", "session_id", "id"),
)

#: Orders the tag saw confirmed (``trackTransaction``), with the sources they came from.
order_sources = Table(
    "order_sources",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("order_id", String(MAX_ID_LENGTH), nullable=False),
    Column("session_id", String(128), nullable=False),
    Column("cid", String(64), nullable=False),
    Column("first_touch", Text, nullable=True),  # JSON source
    Column("last_touch", Text, nullable=True),  # JSON source
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("account_id", "order_id", name="uq_order_sources_account_order"),
)


# dynamic segments ----------------------------------------------------------------------------------

#: Segments: a rule over the customer view (``profiles.segments.rules``), kept current by the worker.
segments = Table(
    "segments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),  # also its public id
    _account_id(),
    Column("name", String(200), nullable=False),
    Column("rules", Text, nullable=False),  # JSON: the rule tree
    Column("relative", Boolean, nullable=False, default=False, server_default="0"),  # reads "now"
    Column("version", Integer, nullable=False, default=1, server_default="1"),  # each new rules: one more
    Column("status", String(16), nullable=False),  # building | ready
    Column("cursor", BigInteger, nullable=False, default=0, server_default="0"),  # profiles.id built up to
    Column("size", BigInteger, nullable=False, default=0, server_default="0"),
    Column("checked_at", UTCDateTime(), nullable=True),  # relative rules: last evaluated in full
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_segments_account", "account_id", "id"),
)

#: A segment's members, keyed by the segment and the profile (on SQLite the rows are that key's
#: b-tree: the members of a segment are read in profile id order, a page at any depth found by the
#: key alone, and an entry writes two b-trees, not a table and two indexes).
segment_members = Table(
    "segment_members",
    metadata,
    _account_id(),
    Column("segment_id", BigInteger, nullable=False),
    Column("profile", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("account_id", "segment_id", "profile"),
    Index("ix_segment_members_account_profile", "account_id", "profile", "segment_id"),
    sqlite_with_rowid=False,
)

#: ``segment_enter`` / ``segment_exit`` events, for ``GET /v2/segments/{id}/changes`` and the timeline.
segment_changes = Table(
    "segment_changes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("segment_id", BigInteger, nullable=False),
    Column("profile", String(32), nullable=False),
    Column("event", String(16), nullable=False),  # segment_enter | segment_exit
    Column("created_at", UTCDateTime(), nullable=False),
    # a segment's feed in time order (then by id: on SQLite, every index ends with the row id)
    Index("ix_segment_changes_account_segment", "account_id", "segment_id", "created_at"),
    Index("ix_segment_changes_account_profile", "account_id", "profile"),
)

# outbound webhooks -------------------------------------------------------------------------------

#: An account's webhook endpoints: where its events are delivered, signed with the endpoint's secret.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("endpoint_id", String(32), nullable=False, unique=True),  # the API's id: ep_...
    Column("url", Text, nullable=False),
    Column("event_types", JSON, nullable=False),  # the event types it is subscribed to
    Column("secret", String(64), nullable=False),  # whsec_...: shown once, when made
    Column("description", String(200), nullable=True),
    Column("enabled", Boolean, nullable=False, default=True, server_default="1"),
    Column("disabled_reason", Text, nullable=True),
    Column("disabled_at", UTCDateTime(), nullable=True),
    Column("max_concurrency", Integer, nullable=False, default=4, server_default="4"),
    # failed attempts since its last delivery, and when the first of them was
    Column("failures", Integer, nullable=False, default=0, server_default="0"),
    Column("failing_since", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_webhook_endpoints_account_id", "account_id", "id"),
)

#: The webhooks' outbox: each event once, written in the transaction of the change it tells of, until
#: the deliverer fans it out to the endpoints subscribed to it (``webhook_events``) and deletes it. A
#: row holds the events of one account and time a unit of work emitted together (a round's, in one
#: row), in the order emitted.
webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("events", Integer, nullable=False, default=1, server_default="1"),  # how many it holds
    # JSON: [[event id (the webhook-id header: msg_...), type, the profile it is about or null, data]]
    Column("payload", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),  # when the change happened
)

#: Each event of the outbox for each endpoint subscribed to it, until delivered or failed (kept for
#: replay).
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("endpoint", Id, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", String(40), nullable=False),  # the webhook-id header: msg_...
    Column("type", String(40), nullable=False),
    Column("profile", String(32), nullable=True),  # the profile it is about: its events go in order
    Column("payload", Text, nullable=False),  # JSON: {"type", "timestamp", "data"}
    # pending: the first undelivered event of its profile for its endpoint; waiting: behind one
    # (shown as pending); delivered | failed
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("leased_until", UTCDateTime(), nullable=True),  # an attempt is under way until then
    Column("retry_until", UTCDateTime(), nullable=False),  # no attempt starts after it
    Column("created_at", UTCDateTime(), nullable=False),  # when the change happened
    Column("delivered_at", UTCDateTime(), nullable=True),
    Index("ix_webhook_events_due", "status", "next_attempt_at"),
    # each endpoint's events due first (a claim reads a few of each enabled endpoint's, whatever waits)
    Index("ix_webhook_events_endpoint_due", "endpoint", "status", "next_attempt_at"),
    # the attempts under way, by endpoint (its concurrency)
    Index(
        "ix_webhook_events_endpoint_leased",
        "endpoint",
        "leased_until",
        sqlite_where=text("leased_until IS NOT NULL"),
        postgresql_where=text("leased_until IS NOT NULL"),
    ),
    Index("ix_webhook_events_endpoint_profile", "endpoint", "profile", "status", "id"),
    Index("ix_webhook_events_endpoint_created", "endpoint", "created_at"),
    Index("ix_webhook_events_account_profile", "account_id", "profile"),
)

#: Every attempt to deliver an event: when, the answer's status code, how long it took, what failed.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _account_id(),
    Column("endpoint", Id, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False),
    Column("event", Id, ForeignKey("webhook_events.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("attempted_at", UTCDateTime(), nullable=False),
    Column("status_code", Integer, nullable=True),  # none: no answer
    Column("latency_ms", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("response", Text, nullable=True),  # the answer's body, its first 4 KiB
    Index("ix_webhook_attempts_endpoint_id", "endpoint", "id"),
)
