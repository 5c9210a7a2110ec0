"""Operators through the Python API, on both stores: passwords, the lock after failed sign-ins,
sessions that end when idle, when the operator is disabled or their password reset, roles and grants."""

from __future__ import annotations

from datetime import timedelta

import pytest

from patron import accounts, errors, operators
from patron.store import Store

PASSWORD = "correct horse battery staple"


@pytest.fixture
def hashed() -> str:
    return operators.hash_password(PASSWORD)


def make(store: Store, email: str, role: str, hashed: str, *hashes: str) -> operators.Operator:
    return store.write_blocking(
        lambda conn: operators.create_operator(conn, email, role, hashed, list(hashes))
    )


def sign_in(
    store: Store, email: str, password: str, at: object = None
) -> tuple[str, operators.Session] | None:
    stored = store.read_blocking(lambda conn: operators.password_hash_of(conn, email))
    verified = operators.verify(stored, password)
    return store.write_blocking(lambda conn: operators.sign_in(conn, email, verified, at))  # type: ignore[arg-type]


def test_a_password_is_kept_as_an_argon2id_hash_and_checked(store: Store, hashed: str) -> None:
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed
    make(store, "Ann@Example.com", "viewer", hashed)
    assert sign_in(store, "ann@example.com", PASSWORD) is not None  # emails are kept in lower case
    assert sign_in(store, "ann@example.com", PASSWORD + "!") is None
    assert sign_in(store, "nobody@example.com", PASSWORD) is None
    with pytest.raises(errors.Invalid, match="password"):
        operators.hash_password("short")


def test_failed_sign_ins_lock_the_operator_for_a_while(store: Store, hashed: str) -> None:
    make(store, "ann@example.com", "viewer", hashed)
    for _ in range(operators.LOCK_AFTER):
        assert sign_in(store, "ann@example.com", "wrong password!") is None
    assert sign_in(store, "ann@example.com", PASSWORD) is None  # locked
    later = accounts.now() + operators.LOCKED_FOR + timedelta(seconds=1)
    assert sign_in(store, "ann@example.com", PASSWORD, later) is not None


def test_a_session_ends_when_idle_disabled_or_reset(store: Store, hashed: str) -> None:
    make(store, "ann@example.com", "admin", hashed)
    signed = sign_in(store, "ann@example.com", PASSWORD)
    assert signed is not None
    token, session = signed
    live = store.read_blocking(lambda conn: operators.session(conn, token))
    assert live is not None and live[0].operator.email == "ann@example.com" and live[0].csrf == session.csrf
    idle = accounts.now() + operators.IDLE + timedelta(seconds=1)
    assert store.read_blocking(lambda conn: operators.session(conn, token, idle)) is None
    store.write_blocking(
        lambda conn: operators.set_password(
            conn, "ann@example.com", operators.hash_password("a new password!")
        )
    )
    assert store.read_blocking(lambda conn: operators.session(conn, token)) is None
    again = sign_in(store, "ann@example.com", "a new password!")
    assert again is not None
    store.write_blocking(lambda conn: operators.disable_operator(conn, "ann@example.com"))
    assert store.read_blocking(lambda conn: operators.session(conn, again[0])) is None
    assert sign_in(store, "ann@example.com", "a new password!") is None


def test_roles_and_the_accounts_an_operator_sees(store: Store, hashed: str) -> None:
    shop, _ = store.write_blocking(lambda conn: accounts.create_account(conn, "shop", "staging"))
    other, _ = store.write_blocking(lambda conn: accounts.create_account(conn, "other", "staging"))
    viewer = make(store, "v@example.com", "viewer", hashed, shop.hash)
    owner = make(store, "o@example.com", "owner", hashed)
    assert viewer.accounts == (shop.hash,) and set(owner.accounts) == {shop.hash, other.hash}
    assert not viewer.may("admin") and viewer.may("viewer") and owner.may("admin")
    with pytest.raises(errors.NotFound):
        store.read_blocking(lambda conn: operators.account_for(viewer, conn, other.hash))
    with pytest.raises(errors.Conflict):
        make(store, "V@example.com", "viewer", hashed)
    with pytest.raises(errors.Invalid, match="role"):
        make(store, "x@example.com", "root", hashed)
    with pytest.raises(errors.NotFound):
        make(store, "y@example.com", "viewer", hashed, "0000000000000000")
