"""The people who sign in to the console: operators, what they may see and do, and their sessions.

An operator signs in with an email and a password, hashed with argon2id (``argon2-cffi``); never with
an API key. Their role says what they may do: a ``viewer`` reads, an ``admin`` also changes an
account's keys, templates, unsubscribes and GDPR requests, an ``owner`` also manages operators and
sees every account; viewers and admins see only the accounts granted to them.

A session is a random 256-bit token in a cookie; only its SHA-256 is stored, with the CSRF token the
session's forms carry and when it was last used: it ends after :data:`IDLE` without use, when the
operator signs out, is disabled or has their password reset. :data:`LOCK_AFTER` failed sign-ins in a
row lock the operator for :data:`LOCKED_FOR`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from functools import cache
from typing import Final, Literal

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, insert, select, update

from patron import errors
from patron.accounts import Account, get_account, list_accounts, now
from patron.store.schema import accounts, operator_accounts, operator_sessions, operators

Role = Literal["viewer", "admin", "owner"]
ROLES: Final[tuple[Role, ...]] = ("viewer", "admin", "owner")
#: A session unused for this long has ended.
IDLE: Final = timedelta(hours=8)
#: How often a session's last use is written (not on every page: reads stay reads).
SEEN_EVERY: Final = timedelta(minutes=1)
LOCK_AFTER: Final = 5
LOCKED_FOR: Final = timedelta(minutes=15)
MIN_PASSWORD: Final = 12
MAX_PASSWORD: Final = 1024
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$")

_hasher = PasswordHasher()  # argon2id, the library's current parameters


@cache
def _dummy() -> str:
    """Verified when the email is unknown, so that a wrong email takes as long as a wrong password
    (made at its first use: hashing takes a fifth of a second, which every command would pay)."""
    return _hasher.hash(secrets.token_urlsafe(16))


class OperatorError(errors.Invalid):
    """A request about operators that cannot be carried out (a bad email, role or password)."""


class UnknownOperator(errors.NotFound, OperatorError):
    """No operator has that email."""


class Operator(msgspec.Struct, frozen=True):
    id: int
    email: str
    role: Role
    disabled: bool
    created_at: datetime
    last_signin_at: datetime | None
    locked_until: datetime | None
    #: The hashes of the accounts granted (every account, for an owner).
    accounts: tuple[str, ...] = ()

    def may(self, role: Role) -> bool:
        """Whether this operator's role is ``role`` or above."""
        return ROLES.index(self.role) >= ROLES.index(role)


class Session(msgspec.Struct, frozen=True):
    operator: Operator
    csrf: str


def _check_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise OperatorError.at("email", f"{email!r} is not an email address")
    return email


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise OperatorError.at(
            "password", f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters, not {len(password)}"
        )
    return password


def _role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise OperatorError.at("role", f"{role!r} is not a role; the roles are {', '.join(ROLES)}")


def new_password() -> str:
    """A random password for an operator to change (20 URL-safe characters, 120 bits)."""
    return secrets.token_urlsafe(15)


def hash_password(password: str) -> str:
    """argon2id: slow on purpose (tens of milliseconds); callers on an event loop use a thread."""
    return _hasher.hash(check_password(password))


def _granted(conn: Connection, operator_id: int, role: str) -> tuple[str, ...]:
    if role == "owner":
        return tuple(a.hash for a in list_accounts(conn))
    g, a = operator_accounts.c, accounts.c
    query = select(a.hash).join(operator_accounts, g.account_id == a.id).where(g.operator_id == operator_id)
    return tuple(sorted(conn.execute(query).scalars()))


def _operator(conn: Connection, row: object) -> Operator:
    m = row._mapping  # type: ignore[attr-defined]
    return Operator(
        id=m["id"],
        email=m["email"],
        role=_role(m["role"]),
        disabled=m["disabled_at"] is not None,
        created_at=m["created_at"],
        last_signin_at=m["last_signin_at"],
        locked_until=m["locked_until"],
        accounts=_granted(conn, m["id"], m["role"]),
    )


def _row(conn: Connection, email: str) -> object:
    found = conn.execute(select(operators).where(operators.c.email == _check_email(email))).first()
    if found is None:
        raise UnknownOperator.at("email", f"no operator has the email {email!r}")
    return found


def get_operator(conn: Connection, email: str) -> Operator:
    return _operator(conn, _row(conn, email))


def create_operator(
    conn: Connection, email: str, role: str, password_hash: str, account_hashes: list[str]
) -> Operator:
    """A new operator with the accounts ``account_hashes`` granted (a password hashed beforehand)."""
    email, checked = _check_email(email), _role(role)
    if conn.execute(select(operators.c.id).where(operators.c.email == email)).first() is not None:
        raise errors.Conflict.at("email", f"an operator has the email {email!r} already")
    granted = [get_account(conn, h) for h in account_hashes]
    operator_id = conn.execute(
        insert(operators)
        .values(email=email, password_hash=password_hash, role=checked, created_at=now())
        .returning(operators.c.id)
    ).scalar_one()
    if granted:
        conn.execute(
            insert(operator_accounts), [{"operator_id": operator_id, "account_id": a.id} for a in granted]
        )
    return get_operator(conn, email)


def list_operators(conn: Connection) -> list[Operator]:
    rows = conn.execute(select(operators).order_by(operators.c.email)).all()
    return [_operator(conn, row) for row in rows]


def _end_sessions(conn: Connection, operator_id: int) -> None:
    conn.execute(delete(operator_sessions).where(operator_sessions.c.operator_id == operator_id))


def disable_operator(conn: Connection, email: str) -> Operator:
    """The operator may no longer sign in; their sessions end now."""
    row = _row(conn, email)
    operator_id = row._mapping["id"]  # type: ignore[attr-defined]
    conn.execute(update(operators).where(operators.c.id == operator_id).values(disabled_at=now()))
    _end_sessions(conn, operator_id)
    return get_operator(conn, email)


def set_password(conn: Connection, email: str, password_hash: str) -> Operator:
    """A new password (hashed beforehand): their sessions end, and a lock is lifted."""
    row = _row(conn, email)
    operator_id = row._mapping["id"]  # type: ignore[attr-defined]
    conn.execute(
        update(operators)
        .where(operators.c.id == operator_id)
        .values(password_hash=password_hash, failed_signins=0, locked_until=None)
    )
    _end_sessions(conn, operator_id)
    return get_operator(conn, email)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def verify(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` is the one hashed (argon2id; against a dummy hash when there is none, so
    that an unknown email costs the same time)."""
    try:
        return _hasher.verify(stored_hash or _dummy(), password[:MAX_PASSWORD]) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def password_hash_of(conn: Connection, email: str) -> str | None:
    """The stored hash of the operator ``email`` (None: no such operator, or not an email)."""
    email = email.strip().lower()
    return conn.execute(select(operators.c.password_hash).where(operators.c.email == email)).scalar()


def sign_in(
    conn: Connection, email: str, verified: bool, at: datetime | None = None
) -> tuple[str, Session] | None:
    """After the password was checked (``verified``, off the writer: argon2 is slow): a new session
    (its cookie token, and the session), or None when refused (a wrong email or password, a disabled
    or locked operator). A failure counts towards the lock, and is kept: nothing is raised inside the
    transaction. A success resets the count."""
    at = at or now()
    email = email.strip().lower()
    row = conn.execute(select(operators).where(operators.c.email == email)).first()
    if row is None:
        return None
    m = row._mapping
    locked = m["locked_until"] is not None and m["locked_until"] > at
    if not verified or locked or m["disabled_at"] is not None:
        if not verified:
            failures = m["failed_signins"] + 1
            values: dict[str, object] = {"failed_signins": failures}
            if failures >= LOCK_AFTER:
                values.update(failed_signins=0, locked_until=at + LOCKED_FOR)
            conn.execute(update(operators).where(operators.c.id == m["id"]).values(**values))
        return None
    conn.execute(
        update(operators)
        .where(operators.c.id == m["id"])
        .values(failed_signins=0, locked_until=None, last_signin_at=at)
    )
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    conn.execute(
        insert(operator_sessions).values(
            token_hash=_token_hash(token), operator_id=m["id"], csrf=csrf, created_at=at, last_seen_at=at
        )
    )
    return token, Session(_operator(conn, row), csrf)


def session(conn: Connection, token: str, at: datetime | None = None) -> tuple[Session, bool] | None:
    """The live session of ``token`` (None: unknown, ended, idle too long, or its operator disabled),
    and whether its last use should be written now (:func:`seen`)."""
    at = at or now()
    s, o = operator_sessions.c, operators.c
    row = conn.execute(
        select(operators, s.csrf, s.last_seen_at)
        .join(operator_sessions, s.operator_id == o.id)
        .where(s.token_hash == _token_hash(token))
    ).first()
    if row is None or row.disabled_at is not None or row.last_seen_at + IDLE < at:
        return None
    return Session(_operator(conn, row), row.csrf), row.last_seen_at + SEEN_EVERY < at


def seen(conn: Connection, token: str, at: datetime | None = None) -> None:
    """The session was used now; one idle too long is removed instead."""
    at = at or now()
    s = operator_sessions.c
    conn.execute(update(operator_sessions).where(s.token_hash == _token_hash(token)).values(last_seen_at=at))
    conn.execute(delete(operator_sessions).where(s.last_seen_at < at - IDLE))


def sign_out(conn: Connection, token: str) -> None:
    conn.execute(delete(operator_sessions).where(operator_sessions.c.token_hash == _token_hash(token)))


def same_csrf(given: str | None, expected: str) -> bool:
    """Whether a form's CSRF token is the session's (constant time)."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def account_for(operator: Operator, conn: Connection, account_hash: str) -> Account:
    """The account ``account_hash`` if the operator may see it; otherwise it does not exist for them."""
    if account_hash not in operator.accounts:
        raise errors.NotFound.at("account", f"no account {account_hash!r}")
    return get_account(conn, account_hash)
