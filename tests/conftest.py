"""Fixtures shared by the whole suite: a real store in a temporary directory, the app, accounts, and a
real ``patron serve`` subprocess speaking HTTPS."""

from __future__ import annotations

import inspect
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from patron import accounts
from patron.app import create_app
from patron.config import Settings
from patron.store import Store, open_store

# The helpers in tests/support/ (imported as ``support.*``): their asserts are rewritten as a test's
# are, and the fixtures of ``support.app`` (``isolated``) are found in every module.
pytest.register_assert_rewrite("support")
pytest_plugins = ["support.app"]

PATRON = [sys.executable, "-m", "patron"]


@dataclass(frozen=True)
class Tenant:
    """An account as a client sees it: its hash and a working API key."""

    hash: str
    key: str
    name: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Ometria-Auth": self.key}


# what `make test-fast` leaves out -----------------------------------------------------------------


#: What a test's code calls when it drives Chromium (Playwright, or the tracking tests' helper).
BROWSER_WORDS = ("sync_playwright", "browser_page(", "CHROMIUM")


#: Fixtures that start a store, an app or a server (``backend`` is under every store and app).
NOT_UNIT = frozenset({"backend", "postgres", "redis_url", "server"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "unit: a table of cases for a pure function, needing no app, no store and no server (its module "
        "says pytestmark = pytest.mark.unit); pytest -m unit runs them alone, in seconds",
    )


#: The files that take longest (``make test`` lists the slowest tests), run first: the parallel
#: processes take files in the order collected, so a long file started last would keep one of them
#: busy long after the others are done.
LONG_FILES = (
    "test_schemathesis.py",
    "test_bench_scripts.py",
    "test_crash.py",
    "test_segments.py",
    "test_webhooks.py",
    "test_transfer.py",
    "test_metrics.py",
    "test_console_webhooks.py",
    "test_console_segments.py",
    "test_list_reads.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``browser`` every test that drives Chromium (its code, or a fixture of its, opens one), so
    that ``make test-fast`` can leave them out (``-m "not browser"``); ``make test`` runs them all.
    A ``unit`` test that asks for a store, an app or a server is a mistake, refused here. The
    :data:`LONG_FILES` come first, longest first."""
    first = {name: n for n, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: first.get(item.path.name, len(LONG_FILES)))
    for item in items:
        function = getattr(item, "function", None)
        fixtures = getattr(item, "fixturenames", ())
        code = inspect.getsource(function) if function is not None else ""
        if any("browser" in name for name in fixtures) or any(word in code for word in BROWSER_WORDS):
            item.add_marker(pytest.mark.browser)
        if item.get_closest_marker("unit") is not None and NOT_UNIT.intersection(fixtures):
            uses = ", ".join(sorted(NOT_UNIT.intersection(fixtures)))
            raise pytest.UsageError(f"{item.nodeid} is marked unit but uses {uses}: it is not a unit test")


# the two stores --------------------------------------------------------------------------------
#
# Every test that asks for ``settings`` (and so ``store``, ``client``, ``make_tenant``...) runs on
# SQLite and on PostgreSQL: ``backend`` is a session-wide parameter. A module that is about one store
# only, or that has not been taught the other yet, overrides ``backend`` with a plain fixture.

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class PostgresCluster:
    """A throwaway PostgreSQL cluster (``initdb`` into a temporary directory, a free port, the server's
    defaults but for ``settings``), and a migrated template that every test's database is copied from."""

    TEMPLATE = "patron_template"

    def __init__(self, directory: Path, settings: dict[str, str] | None = None) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            raise RuntimeError("PostgreSQL is not installed: `make test` installs it (Debian: postgresql)")
        self.bin = bins[-1]
        self.directory = directory
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}"
        self._counter = 0
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self._run = lambda *args: subprocess.run(
            [*as_postgres, *args], check=True, capture_output=True, text=True, timeout=120
        )
        if as_postgres:
            shutil.chown(directory, "postgres")
        data = directory / "data"
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--locale=C",
            "-E",
            "UTF8",
        )
        options = f"-p {self.port} -k {directory} -c listen_addresses=127.0.0.1 -c max_connections=300"
        options += "".join(f" -c {name}={value}" for name, value in (settings or {}).items())
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(directory / "log"),
            "-w",
            "start",
        )
        self._sql(f"CREATE DATABASE {self.TEMPLATE}")
        template = open_store(replace(Settings(), database_url=f"{self.url}/{self.TEMPLATE}"))
        template.migrate()

    def _sql(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(f"{self.url}/postgres", autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def new_database(self) -> str:
        """The URL of a new, migrated, empty database."""
        self._counter += 1
        name = f"test_{os.getpid()}_{self._counter}"
        self._sql(f"CREATE DATABASE {name} TEMPLATE {self.TEMPLATE}")
        return f"{self.url}/{name}"

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate", "stop")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    # Not under pytest's temporary directory, which only root may enter: the cluster runs as postgres.
    directory = Path(tempfile.mkdtemp(prefix="patron-postgres-"))
    try:
        cluster = PostgresCluster(directory)
        yield cluster
        cluster.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def new_database_url(backend: str, request: pytest.FixtureRequest) -> Callable[[], str | None]:
    """Makes the database URL of a fresh store of the session's backend (None: SQLite in the data dir)."""
    if backend == "sqlite":
        return lambda: None
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.new_database


@pytest.fixture
def patron_environment(new_database_url: Callable[[], str | None]) -> dict[str, str]:
    """The environment that puts ``patron`` subprocesses on a fresh store of the session's backend."""
    url = new_database_url()
    return {} if url is None else {"PATRON_DATABASE_URL": url}


@pytest.fixture
def settings(tmp_path: Path, new_database_url: Callable[[], str | None]) -> Settings:
    return replace(Settings(), data_dir=tmp_path / "data", database_url=new_database_url(), redis_url=None)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    store = open_store(settings)
    store.start()
    yield store
    store.close()


@pytest.fixture
def make_tenant(store: Store) -> Callable[..., Tenant]:
    """Create an account (with every rate limit lifted unless ``limits`` are given)."""

    def make(
        name: str = "shop", environment: str = "staging", limits: dict[str, str] | None = None
    ) -> Tenant:
        account, key = store.write_blocking(lambda conn: accounts.create_account(conn, name, environment))
        changes: dict[str, str | None] = (
            dict(limits) if limits is not None else dict.fromkeys(account.effective_limits, "unlimited")
        )
        if changes:
            store.write_blocking(lambda conn: accounts.set_limits(conn, account.hash, changes))
        return Tenant(account.hash, key, name)

    return make


@pytest.fixture
def tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant("shop")


@pytest.fixture
def client(settings: Settings, store: Store) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(settings, store)) as client:
        yield client


# a real server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _environment(data_dir: Path, extra: dict[str, str] | None) -> dict[str, str]:
    """The environment of a patron subprocess: this one's, on ``data_dir``'s SQLite unless ``extra``
    names a database (``PATRON_DATABASE_URL``) or a Redis (``PATRON_REDIS_URL``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PATRON_DATABASE_URL", "PATRON_REDIS_URL")}
    return {**env, "PATRON_DATA_DIR": str(data_dir), **(extra or {})}


def run_cli(
    data_dir: Path,
    *args: str,
    check: bool = True,
    environment: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    env = _environment(data_dir, environment)
    return subprocess.run(
        [*PATRON, *args], env=env, input=stdin, capture_output=True, text=True, check=check, timeout=120
    )


def set_limits(
    data_dir: Path, account_hash: str, *limits: str, environment: dict[str, str] | None = None
) -> None:
    """``patron accounts set-limits --account HASH`` with ``limits`` (``"--push", "unlimited"``...)."""
    run_cli(data_dir, "accounts", "set-limits", "--account", account_hash, *limits, environment=environment)


def migrated(data_dir: Path, environment: dict[str, str] | None = None) -> Path:
    """``data_dir``, with a database made by ``patron migrate`` if it has none: every other command
    refuses a data directory without a database (a PostgreSQL test database is made migrated)."""
    if "PATRON_DATABASE_URL" not in (environment or {}) and not (data_dir / "patron.db").exists():
        run_cli(data_dir, "migrate", environment=environment)
    return data_dir


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    port: int
    ca: Path | None
    data_dir: Path
    log_path: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        """An HTTPS client trusting the server's generated CA (or ``verify=...`` as given)."""
        kwargs.setdefault("verify", ssl.create_default_context(cafile=self.ca) if self.ca else True)
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def log_lines(self) -> list[str]:
        return self.log_path.read_text().splitlines()

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[Any], timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


def start_server(
    data_dir: Path,
    *extra: str,
    scheme: str = "https",
    port: int | None = None,
    environment: dict[str, str] | None = None,
) -> Server:
    port = port or free_port()
    migrated(data_dir, environment)
    log_path = data_dir.parent / f"server-{port}.log"
    env = _environment(data_dir, environment)
    with log_path.open("a") as log:  # the child keeps its own descriptor; a restart appends
        process = subprocess.Popen(
            [*PATRON, "serve", "--port", str(port), *extra],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    ca = data_dir / "tls" / "ca.pem" if scheme == "https" and "--tls-cert" not in extra else None
    server = Server(process, f"{scheme}://localhost:{port}", port, ca, data_dir, log_path)
    try:
        _wait_until_up(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_up(server: Server) -> None:
    process, ca, log_path = server.process, server.ca, server.log_path
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"patron serve exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if ca is None or ca.exists():
                with server.client(verify=False) if ca is None else server.client() as c:
                    if c.get("/health").status_code == 200:
                        return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"patron serve did not come up:\n{log_path.read_text()}")
        time.sleep(0.1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path / "served")
    yield server
    server.stop()


def eventually(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Poll ``check`` until it returns something true (what it returns), for at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)
    return found


@contextmanager
def served_account(tmp_path: Path, environment: dict[str, str]) -> Iterator[tuple[Server, Tenant]]:
    """A real ``patron serve`` (for a browser) with an account whose data and push limits are lifted."""
    data_dir = tmp_path / "data"
    tenant = create_tenant_cli(data_dir, environment=environment)
    unlimited = ["--data", "unlimited", "--push", "unlimited"]
    set_limits(data_dir, tenant.hash, *unlimited, environment=environment)
    server = start_server(data_dir, environment=environment)
    try:
        yield server, tenant
    finally:
        server.stop()


def create_tenant_cli(
    data_dir: Path, name: str = "shop", environment: dict[str, str] | None = None
) -> Tenant:
    import json

    migrated(data_dir, environment)
    result = run_cli(data_dir, "accounts", "create", "--name", name, "--json", environment=environment)
    created = json.loads(result.stdout)
    return Tenant(created["account_hash"], created["api_key"], name)


# pushing ----------------------------------------------------------------------------------------


def wait_applied(client: Any, tenant: Tenant, request_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll ``GET /v2/push/{request_id}`` until the worker has applied the request; its status."""
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = client.get(f"/v2/push/{request_id}", headers=tenant.headers).json()
        if status.get("status") == "applied":
            return status
        assert time.monotonic() < deadline, f"push {request_id} was not applied in {timeout} s: {status}"
        time.sleep(0.02)


def push(client: Any, tenant: Tenant, records: list[dict[str, Any]], *, wait: bool = True) -> dict[str, Any]:
    """Push ``records``, assert the 202, and (by default) wait until they are applied; the reply."""
    response = client.post("/v2/push", json=records, headers=tenant.headers)
    assert response.status_code == 202, response.text
    reply: dict[str, Any] = response.json()
    if wait:
        wait_applied(client, tenant, reply["request_id"])
    return reply


# redis ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port, keeping nothing on disk."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def clients() -> Iterator[list[httpx.Client]]:
    """HTTP clients a test opens (it appends them), closed at its end."""
    made: list[httpx.Client] = []
    yield made
    for client in made:
        client.close()
