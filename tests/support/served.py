"""A real ``patron serve`` shared by a module (on the session's backend), with accounts made through
the CLI: for tests of what talks to the server from outside (the client, the import tools)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from conftest import Server, Tenant, create_tenant_cli, set_limits, start_server
from patron.client import Client


@dataclass
class Served:
    server: Server
    environment: dict[str, str]

    def tenant(self, *limits: str) -> Tenant:
        """A new account; its data and push limits lifted unless ``limits`` (set-limits options) say."""
        data_dir = self.server.data_dir
        tenant = create_tenant_cli(data_dir, environment=self.environment)
        given = limits or ("--data", "unlimited", "--push", "unlimited")
        set_limits(data_dir, tenant.hash, *given, environment=self.environment)
        return tenant

    def client(self, tenant: Tenant, **options: Any) -> Client:
        return Client(self.server.url, tenant.key, verify=str(self.server.ca), **options)


def served_fixture() -> Any:
    """The fixture ``served``: one server for the module (installed with ``served = served_fixture()``)."""

    @pytest.fixture(scope="module")
    def served(
        tmp_path_factory: pytest.TempPathFactory, new_database_url: Callable[[], str | None]
    ) -> Iterator[Served]:
        url = new_database_url()
        environment = {} if url is None else {"PATRON_DATABASE_URL": url}
        server = start_server(tmp_path_factory.mktemp("served") / "data", environment=environment)
        yield Served(server, environment)
        server.stop()

    return served
