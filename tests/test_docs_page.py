"""Swagger UI at /v2/docs, in a real browser (Debian's Chromium driven by Playwright): it renders the
API from the bundled assets, asks no other host for anything, and runs under its Content-Security-Policy
without a violation."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

from playwright.sync_api import sync_playwright

from conftest import Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_swagger_ui_renders_every_operation_from_bundled_assets(server: Server) -> None:
    requested: list[str] = []
    messages: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            # The browser does not trust the generated CA; the test trusts the server it started.
            page = browser.new_page(ignore_https_errors=True)
            page.on("request", lambda request: requested.append(request.url))
            page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
            page.goto(f"{server.url}/v2/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=30_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            title = page.locator(".info .title").inner_text()
        finally:
            browser.close()
    with server.client() as client:
        documented = client.get("/v2/swagger.json").json()["paths"]
    assert "Patron" in title
    shown = {path.replace("\u200b", "").strip() for path in paths}
    assert shown == set(documented)
    hosts = {urlsplit(url).netloc for url in requested}
    assert hosts == {f"localhost:{server.port}"}, requested
    assert not [m for m in messages if "Content Security Policy" in m], messages
