"""The console under test: a served Patron with two accounts and operators of every role, and a
Chromium page signed in as one of them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, Page

from conftest import Server, Tenant, create_tenant_cli, run_cli, start_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"


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


def create_operator(data_dir: Path, email: str, role: str, *hashes: str, password: str = PASSWORD) -> None:
    grants = [arg for h in hashes for arg in ("--account", h)]
    args = ["operators", "create", "--email", email, "--role", role, *grants, "--password-stdin"]
    run_cli(data_dir, *args, stdin=password + "\n")


@contextmanager
def serving(directory: Path) -> Iterator[Console]:
    data_dir = directory / "data"
    run_cli(data_dir, "migrate")
    shop, other = create_tenant_cli(data_dir, "Shop"), create_tenant_cli(data_dir, "Other shop")
    create_operator(data_dir, "owner@example.com", "owner")
    create_operator(data_dir, "admin@example.com", "admin", shop.hash)
    create_operator(data_dir, "viewer@example.com", "viewer", shop.hash)
    create_operator(data_dir, "other@example.com", "admin", other.hash)
    server = start_server(data_dir)
    try:
        yield Console(server, shop, other)
    finally:
        server.stop()


def sign_in(browser: Browser, console: Console, email: str, password: str = PASSWORD) -> Page:
    """A new browser context (its own cookies), signed in as ``email``, on the accounts page."""
    page = browser.new_context(ignore_https_errors=True).new_page()
    page.goto(f"{console.url}/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{console.url}/")
    return page
