"""One running app (server and worker) on a real store, shared by a module or owned by a test.

A module whose tests share one app (each on fresh accounts: accounts are sealed) installs
:func:`app_fixtures`; its ``client`` and ``make_tenant`` override conftest's, so conftest's ``tenant``
is a fresh account of the shared app. A test that stops the worker takes an app of its own,
``isolated`` (registered for every module by ``conftest.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from conftest import Tenant
from patron import accounts
from patron.app import create_app
from patron.config import Settings
from patron.store import Store, open_store

Client = TestClient[Any]


@dataclass
class App:
    client: Client
    store: Store
    data_dir: Path
    environment: dict[
        str, str
    ]  # for the CLI on the same store (``run_cli(app.data_dir, ..., environment=)``)

    def tenant(self, name: str = "shop", limits: dict[str, str] | None = None) -> Tenant:
        """A new account and key (every rate limit lifted unless ``limits`` are given), as conftest's."""
        account, key = self.store.write_blocking(lambda conn: accounts.create_account(conn, name, "staging"))
        changes = dict(limits) if limits is not None else dict.fromkeys(account.effective_limits, "unlimited")
        self.store.write_blocking(lambda conn: accounts.set_limits(conn, account.hash, dict(changes)))
        return Tenant(account.hash, key, name)


@contextmanager
def running_app(directory: Path, database_url: str | None, **settings_given: Any) -> Iterator[App]:
    """The real app, with its worker, on a real store: SQLite in ``directory``, or ``database_url``
    (and any other ``Settings`` given)."""
    settings = replace(
        Settings(), data_dir=directory / "data", database_url=database_url, redis_url=None, **settings_given
    )
    store = open_store(settings)
    store.start()
    try:
        with TestClient(create_app(settings, store)) as client:
            yield App(
                client,
                store,
                settings.data_dir,
                {"PATRON_DATABASE_URL": database_url} if database_url else {},
            )
    finally:
        store.close()


def app_fixtures(**settings: Any) -> tuple[Any, Any, Any]:
    """The fixtures of a module sharing one app (with ``settings``): ``shared``, and ``client`` and
    ``make_tenant``, which override conftest's (so conftest's ``tenant`` is a fresh account of the
    shared app). A module installs them with ``shared, client, make_tenant = app_fixtures()``."""

    @pytest.fixture(scope="module")
    def shared(
        tmp_path_factory: pytest.TempPathFactory, new_database_url: Callable[[], str | None]
    ) -> Iterator[App]:
        with running_app(tmp_path_factory.mktemp("app"), new_database_url(), **settings) as app:
            yield app

    @pytest.fixture(scope="module")
    def client(shared: App) -> Client:
        return shared.client

    @pytest.fixture(scope="module")
    def make_tenant(shared: App) -> Callable[..., Tenant]:
        return shared.tenant

    return shared, client, make_tenant


@pytest.fixture
def isolated(tmp_path: Path, new_database_url: Callable[[], str | None]) -> Iterator[App]:
    """An app of the test's own (for a test that stops its worker)."""
    with running_app(tmp_path, new_database_url()) as app:
        yield app
