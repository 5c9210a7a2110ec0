"""The console under test: a served Patron with two accounts and operators of every role, and a
Chromium page signed in as one of them."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import Connection

from conftest import Server, Tenant, run_cli, start_server
from patron import accounts, operators
from patron.config import Settings
from patron.console.render import VENDOR
from patron.store import open_store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"
AXE = VENDOR / "axe-core" / "axe.min.js"


@dataclass
class Console:
    server: Server
    shop: Tenant  # granted to admin@ and viewer@
    other: Tenant  # granted to other@ only

    @property
    def url(self) -> str:
        return f"{self.server.url}/console"

    def account(self, tenant: Tenant, path: str = "") -> str:
        return f"{self.url}/accounts/{tenant.hash}{path}"


def create_operator(
    data_dir: Path,
    email: str,
    role: str,
    *hashes: str,
    password: str = PASSWORD,
    environment: dict[str, str] | None = None,
) -> None:
    grants = [arg for h in hashes for arg in ("--account", h)]
    args = ["operators", "create", "--email", email, "--role", role, *grants, "--password-stdin"]
    run_cli(data_dir, *args, stdin=password + "\n", environment=environment)


def _accounts_and_operators(data_dir: Path, database_url: str | None) -> tuple[Tenant, Tenant]:
    """The console's two accounts and its operators of every role, made through the Python API in
    this process (``patron operators create`` is tested on its own)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(replace(Settings(), data_dir=data_dir, database_url=database_url, redis_url=None))
    store.start()  # migrated
    hashed = operators.hash_password(PASSWORD)

    def seed(conn: Connection) -> tuple[Tenant, Tenant]:
        made = []
        for name in ("Shop", "Other shop"):
            account, key = accounts.create_account(conn, name, "staging")
            made.append(Tenant(account.hash, key, name))
        shop, other = made
        for email, role, grants in [
            ("owner@example.com", "owner", []),
            ("admin@example.com", "admin", [shop.hash]),
            ("viewer@example.com", "viewer", [shop.hash]),
            ("other@example.com", "admin", [other.hash]),
        ]:
            operators.create_operator(conn, email, role, hashed, grants)
        return shop, other

    try:
        return store.write_blocking(seed)
    finally:
        store.close()


@contextmanager
def serving(directory: Path, environment: dict[str, str] | None = None) -> Iterator[Console]:
    """A served console on SQLite in ``directory``, or on the store ``environment`` names
    (``PATRON_DATABASE_URL``), with its settings (``PATRON_WEBHOOK_...``)."""
    data_dir = directory / "data"
    shop, other = _accounts_and_operators(data_dir, (environment or {}).get("PATRON_DATABASE_URL"))
    server = start_server(data_dir, environment=environment)
    try:
        yield Console(server, shop, other)
    finally:
        server.stop()


def sign_in(
    browser: Browser, console: Console, email: str, password: str = PASSWORD, *, for_axe: bool = False
) -> Page:
    """A new browser context (its own cookies), signed in as ``email``, on the accounts page;
    ``for_axe``: the pages' CSP bypassed, so that :func:`axe` can inject its script."""
    page = browser.new_context(ignore_https_errors=True, bypass_csp=for_axe).new_page()
    page.goto(f"{console.url}/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{console.url}/")
    return page


def browser_fixture() -> Callable[[], Iterator[Browser]]:
    """A module's Chromium (``browser = browser_fixture()`` at a test module's top)."""

    @pytest.fixture(scope="module")
    def browser() -> Iterator[Browser]:
        with sync_playwright() as p:
            launched = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            yield launched
            launched.close()

    return browser


def axe(page: Page) -> list[dict[str, Any]]:
    """The serious and critical accessibility violations axe-core (from npm) finds on the page; the
    page's context must bypass its CSP to let the script in."""
    page.add_script_tag(content=AXE.read_text())
    found: list[dict[str, Any]] = page.evaluate("async () => (await axe.run()).violations")
    return [v for v in found if v["impact"] in ("serious", "critical")]


def signed_in_client(console: Console, clients: list[httpx.Client], email: str) -> tuple[httpx.Client, str]:
    """An HTTP client with a session cookie, and the session's CSRF token (read from a page)."""
    client = console.server.client(follow_redirects=False)
    clients.append(client)
    answer = client.post("/console/sign-in", data={"email": email, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/").text)
    assert found is not None
    return client, found.group(1)


def api(console: Console, clients: list[httpx.Client]) -> httpx.Client:
    client = console.server.client()
    clients.append(client)
    return client
