"""The ``patron`` command against a real store in a temporary data directory.

Most commands run through click's ``CliRunner`` (the same code path as the console script, in this
process); those whose exit status, stream separation or tracebacks matter run as real subprocesses.
Every test reads the outcome back from the store rather than trusting the command's own output.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from conftest import PATRON, free_port, run_cli
from patron import __version__, accounts
from patron.cli import main
from patron.config import DEFAULT_PORT, Settings
from patron.ratelimits import DEFAULT_LIMITS
from patron.store import Store
from patron.store.migrate import head_revision

Cli = Callable[..., Result]
HASH = re.compile(r"[0-9a-f]{16}")
KEY = re.compile(r"[0-9a-f]{32}")
ANY_KEY = re.compile(r"\b[0-9a-f]{32}\b")
DATE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")
UNKNOWN_HASH = "0000000000000000"


@pytest.fixture
def new_database_url() -> Callable[[], str | None]:
    """The CLI runs on SQLite here; on PostgreSQL it is the same code behind PATRON_DATABASE_URL."""
    return lambda: None


@pytest.fixture
def cli(settings: Settings) -> Cli:
    """``patron --data-dir <tmp> ARGS...`` in this process, untouched by the caller's environment."""
    runner = CliRunner(env={"PATRON_DATA_DIR": None, "PATRON_DATABASE_URL": None, "COLUMNS": "200"})

    def invoke(*args: str) -> Result:
        return runner.invoke(main, ["--data-dir", str(settings.data_dir), *args])

    return invoke


# helpers -----------------------------------------------------------------------------------------


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def assert_clean_error(
    result: Result | subprocess.CompletedProcess[str], message: str, status: int = 1
) -> None:
    """Failed with ``status`` and ``Error: message`` on stderr, and no exception escaped the command."""
    code = result.returncode if isinstance(result, subprocess.CompletedProcess) else result.exit_code
    assert code == status, result.stdout + result.stderr
    assert f"Error: {message}" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    if isinstance(result, Result):
        assert isinstance(result.exception, SystemExit), result.exception


def create(cli: Cli, name: str = "shop", env: str = "staging") -> dict[str, str]:
    return json.loads(ok(cli("accounts", "create", "--name", name, "--env", env, "--json")))


def listed(cli: Cli) -> dict[str, dict[str, Any]]:
    """Every account, by hash, as ``accounts list --json`` shows it."""
    return {a["account_hash"]: a for a in json.loads(ok(cli("accounts", "list", "--json")))}


def keys_of(cli: Cli, account_hash: str) -> dict[str, dict[str, Any]]:
    """The account's keys, by id, as ``keys list --json`` shows them."""
    return {k["id"]: k for k in json.loads(ok(cli("keys", "list", "--account", account_hash, "--json")))}


def owner(store: Store, key: str) -> accounts.Account | None:
    return store.read_blocking(lambda conn: accounts.account_for_key(conn, key))


def stored_limits(store: Store, account_hash: str) -> dict[str, str]:
    """The overrides the database holds (not the effective limits)."""
    return store.read_blocking(lambda conn: accounts.get_account(conn, account_hash)).limits


def labelled(lines: str, prefix: str) -> str:
    """The value of the line ``prefix   value`` in a command's output."""
    (value,) = [line.removeprefix(prefix).strip() for line in lines.splitlines() if line.startswith(prefix)]
    return value


def database_bytes(settings: Settings) -> bytes:
    """The raw bytes of the SQLite database and its write-ahead log."""
    return b"".join(path.read_bytes() for path in sorted(settings.data_dir.glob("patron.db*")))


# accounts create --------------------------------------------------------------------------------


def test_accounts_create_prints_the_hash_and_the_key_once(settings: Settings, store: Store) -> None:
    result = run_cli(settings.data_dir, "accounts", "create", "--name", "shop", "--env", "staging")
    account_hash = labelled(result.stdout, "account hash:")
    key = labelled(result.stdout, "api key:")
    assert HASH.fullmatch(account_hash)
    assert KEY.fullmatch(key)
    assert labelled(result.stdout, "account:") == "shop (staging)"
    assert (result.stdout + result.stderr).count(key) == 1
    assert "shown only now" in result.stderr
    account = owner(store, key)
    assert account is not None
    assert (account.hash, account.name, account.environment) == (account_hash, "shop", "staging")


def test_accounts_create_json(cli: Cli, store: Store) -> None:
    created = create(cli, "big shop", "live")
    assert set(created) >= {"name", "environment", "account_hash", "api_key"}
    assert HASH.fullmatch(created["account_hash"])
    assert KEY.fullmatch(created["api_key"])
    account = owner(store, created["api_key"])
    assert account is not None
    assert (account.hash, account.name, account.environment) == (created["account_hash"], "big shop", "live")


def test_accounts_create_rejects_an_unknown_environment(cli: Cli) -> None:
    result = cli("accounts", "create", "--name", "shop", "--env", "production")
    assert_clean_error(result, "Invalid value for '--env'", status=2)
    assert listed(cli) == {}


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_accounts_create_rejects_an_empty_or_overlong_name(settings: Settings, cli: Cli, name: str) -> None:
    result = run_cli(settings.data_dir, "accounts", "create", "--name", name, check=False)
    assert_clean_error(result, "the account name must be 1 to 200 characters")
    assert listed(cli) == {}


# accounts list and set-limits -------------------------------------------------------------------


def test_accounts_list_json_shows_every_account_with_its_effective_limits(cli: Cli) -> None:
    shop, other = create(cli, "shop"), create(cli, "other", "live")
    found = listed(cli)
    assert list(found) == [shop["account_hash"], other["account_hash"]]
    assert [(a["name"], a["environment"]) for a in found.values()] == [("shop", "staging"), ("other", "live")]
    assert all(a["limits"] == DEFAULT_LIMITS for a in found.values())
    assert all(datetime.fromisoformat(a["created_at"]).tzinfo is not None for a in found.values())


def test_accounts_list_table_shows_the_limits_set(
    settings: Settings, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    account_hash = create(cli)["account_hash"]
    run_cli(
        settings.data_dir,
        "accounts",
        "set-limits",
        account_hash,
        "--push",
        "100/second",
        "--data",
        "unlimited",
    )
    table = run_cli(settings.data_dir, "accounts", "list").stdout
    (row,) = [line for line in table.splitlines() if account_hash in line]
    assert "shop" in row
    assert "staging" in row
    assert "data unlimited, push 100/second, email 30/second, gdpr 6/minute, merge 1/minute" in row


def test_set_limits_changes_one_account_and_default_resets(cli: Cli, store: Store) -> None:
    shop, other = create(cli, "shop")["account_hash"], create(cli, "other")["account_hash"]
    printed = ok(cli("accounts", "set-limits", shop, "--push", "100/second", "--data", "unlimited"))
    expected = {**DEFAULT_LIMITS, "push": "100/second", "data": "unlimited"}
    shown = dict(line.split(None, 1) for line in printed.splitlines())
    assert {name: shown[name] for name in DEFAULT_LIMITS} == expected
    assert listed(cli)[shop]["limits"] == expected
    assert listed(cli)[other]["limits"] == DEFAULT_LIMITS

    ok(cli("accounts", "set-limits", shop, "--push", "default"))
    assert listed(cli)[shop]["limits"] == {**DEFAULT_LIMITS, "data": "unlimited"}
    assert stored_limits(store, shop) == {"data": "unlimited"}  # reset removes the override


@pytest.mark.parametrize(
    ("target", "options", "message"),
    [
        ("known", ["--push", "banana"], "'banana' is not a rate such as 8/second or 6/minute"),
        ("known", ["--data", "unlimited", "--push", "banana"], "'banana' is not a rate"),
        ("known", ["--gdpr", "0/minute"], "'0/minute' allows no request at all"),
        ("unknown", ["--push", "1/second"], f"no account has the hash '{UNKNOWN_HASH}'"),
    ],
)
def test_set_limits_refuses_bad_input_and_changes_nothing(
    cli: Cli, store: Store, target: str, options: list[str], message: str
) -> None:
    account_hash = create(cli)["account_hash"]
    ok(cli("accounts", "set-limits", account_hash, "--merge", "2/minute"))
    before = listed(cli)
    result = cli("accounts", "set-limits", account_hash if target == "known" else UNKNOWN_HASH, *options)
    assert_clean_error(result, message)
    assert listed(cli) == before
    assert stored_limits(store, account_hash) == {"merge": "2/minute"}


def test_set_limits_without_a_limit_is_a_usage_error(cli: Cli) -> None:
    account_hash = create(cli)["account_hash"]
    assert_clean_error(cli("accounts", "set-limits", account_hash), "give at least one of", status=2)


# keys -------------------------------------------------------------------------------------------


def test_keys_create_adds_a_working_key(cli: Cli, store: Store) -> None:
    created = create(cli)
    account_hash = created["account_hash"]
    printed = ok(cli("keys", "create", "--account", account_hash, "--label", "ci"))
    key_id, key = labelled(printed, "key id:"), labelled(printed, "api key:")
    as_json = json.loads(ok(cli("keys", "create", "--account", account_hash, "--label", "etl", "--json")))
    assert KEY.fullmatch(key)
    assert as_json["account_hash"] == account_hash
    assert as_json["label"] == "etl"
    for each in (key, as_json["api_key"], created["api_key"]):  # the new keys, and the first one still
        account = owner(store, each)
        assert account is not None
        assert account.hash == account_hash
    labels = {k: v["label"] for k, v in keys_of(cli, account_hash).items()}
    assert labels[key_id] == "ci"
    assert labels[as_json["id"]] == "etl"
    assert sorted(labels.values()) == ["ci", "etl", "first key"]


def test_keys_create_for_an_unknown_account_is_a_clean_error(cli: Cli) -> None:
    result = cli("keys", "create", "--account", UNKNOWN_HASH)
    assert_clean_error(result, f"no account has the hash '{UNKNOWN_HASH}'")


def test_keys_are_listed_by_id_and_label_and_stored_only_as_sha256(
    cli: Cli, settings: Settings, store: Store
) -> None:
    created = create(cli)
    account_hash = created["account_hash"]
    second = json.loads(ok(cli("keys", "create", "--account", account_hash, "--label", "ci", "--json")))
    keys = [created["api_key"], second["api_key"]]
    table = ok(cli("keys", "list", "--account", account_hash))
    as_json = ok(cli("keys", "list", "--account", account_hash, "--json"))
    ids = keys_of(cli, account_hash)
    assert second["id"] in ids
    assert {v["label"] for v in ids.values()} == {"first key", "ci"}
    assert all(v["revoked_at"] is None for v in ids.values())
    for key_id, key in zip(ids, keys, strict=True):
        assert key_id in table
        assert key not in table + as_json
    assert ANY_KEY.search(table + as_json) is None
    raw = database_bytes(settings)
    for key in keys:
        assert key.encode() not in raw
        assert hashlib.sha256(key.encode()).hexdigest().encode() in raw


def test_keys_revoke_stops_only_that_key(cli: Cli, store: Store) -> None:
    created = create(cli)
    account_hash, first_key = created["account_hash"], created["api_key"]
    second = json.loads(ok(cli("keys", "create", "--account", account_hash, "--json")))
    (first_id,) = [k for k, v in keys_of(cli, account_hash).items() if v["label"] == "first key"]

    assert ok(cli("keys", "revoke", first_id)).strip() == f"revoked {first_id} of account {account_hash}"
    assert owner(store, first_key) is None
    assert owner(store, second["api_key"]) is not None
    listing = keys_of(cli, account_hash)
    assert listing[first_id]["revoked_at"] is not None
    assert listing[second["id"]]["revoked_at"] is None
    table = ok(cli("keys", "list", "--account", account_hash)).splitlines()
    (revoked_row,) = [line for line in table if first_id in line]
    (live_row,) = [line for line in table if second["id"] in line]
    assert (len(DATE.findall(revoked_row)), len(DATE.findall(live_row))) == (2, 1)


def test_keys_revoke_an_unknown_id_is_a_clean_error(cli: Cli, store: Store) -> None:
    created = create(cli)
    before = keys_of(cli, created["account_hash"])
    assert_clean_error(cli("keys", "revoke", "key_000000000000"), "no API key has the id 'key_000000000000'")
    assert keys_of(cli, created["account_hash"]) == before
    assert owner(store, created["api_key"]) is not None


# demo, migrate, serve, version ------------------------------------------------------------------


def test_demo_creates_one_account_and_prints_its_key_only_the_first_time(
    cli: Cli, settings: Settings, store: Store
) -> None:
    first = ok(cli("demo"))
    account_hash = labelled(first, "  account hash:")
    key = labelled(first, "  api key:").split()[0]
    ca = (settings.data_dir / "tls" / "ca.pem").resolve()
    curl = f"curl --cacert {ca} -H 'X-Ometria-Auth: {key}' https://localhost:{DEFAULT_PORT}/v2/account"
    assert curl in [line.strip() for line in first.splitlines()]
    # the console's hint: the command it prints makes an operator
    hint = next(line.split("patron ", 1)[1] for line in first.splitlines() if "operators create" in line)
    assert "password:" in ok(cli(*hint.split()))
    assert f"https://localhost:{DEFAULT_PORT}/console" in first
    account = owner(store, key)
    assert account is not None
    assert (account.hash, account.name, account.environment) == (account_hash, "demo", "staging")

    second = ok(cli("demo"))
    assert account_hash in second
    assert ANY_KEY.search(second) is None
    assert list(listed(cli)) == [account_hash]
    assert len(keys_of(cli, account_hash)) == 1


def _revisions(database: Path) -> list[tuple[str]]:
    with closing(sqlite3.connect(database)) as db:
        return db.execute("select version_num from alembic_version").fetchall()


def test_migrate_prints_the_revision_and_is_idempotent(cli: Cli, settings: Settings) -> None:
    expected = f"database at revision {head_revision()}\n"
    assert ok(cli("migrate")) == expected
    account_hash = create(cli)["account_hash"]
    assert ok(cli("migrate")) == expected
    assert _revisions(settings.data_dir / "patron.db") == [(head_revision(),)]
    assert list(listed(cli)) == [account_hash]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tls-cert", "{cert}"], "give both --tls-cert and --tls-key, or neither"),
        (["--tls-key", "{key}"], "give both --tls-cert and --tls-key, or neither"),
        (
            ["--behind-proxy", "--tls-cert", "{cert}", "--tls-key", "{key}"],
            "--behind-proxy serves plain HTTP; it takes no certificate",
        ),
    ],
)
def test_serve_with_inconsistent_tls_flags_is_a_usage_error(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    files = {"cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem"}
    for path in files.values():
        path.write_text("not used\n")
    args = [flag.format(**files) for flag in flags]
    data_dir = tmp_path / "data"
    result = run_cli(data_dir, "serve", "--port", str(free_port()), *args, check=False)
    assert_clean_error(result, message, status=2)
    assert not data_dir.exists()  # it stopped before touching the store or making certificates


def test_version(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "--version").stdout == f"patron, version {__version__}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--port", "99999"], "Invalid value for '--port': 99999 is not in the range 1<=x<=65535"),
        (["serve", "--port", "0"], "Invalid value for '--port'"),
        (["serve", "--log-level", "LOUD"], "Invalid value for '--log-level': 'LOUD' is not one of"),
        (["worker", "--log-level", "LOUD"], "Invalid value for '--log-level'"),
    ],
)
def test_a_bad_port_or_log_level_is_a_usage_error(tmp_path: Path, args: list[str], message: str) -> None:
    done = run_cli(tmp_path / "data", *args, check=False)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # nothing was served or created


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://shop@localhost/patron", "unsupported database URL scheme 'mysql'"),
        ("postgresql://nobody@127.0.0.1:1/patron", "Connection refused"),  # nothing listens on port 1
    ],
)
@pytest.mark.parametrize("command", [["accounts", "list"], ["serve"], ["worker"]])
def test_a_database_that_cannot_be_opened_is_a_one_line_error(
    tmp_path: Path, url: str, message: str, command: list[str]
) -> None:
    done = run_cli(tmp_path / "data", *command, check=False, environment={"PATRON_DATABASE_URL": url})
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Error: cannot open the database: ") and message in line


def test_tables_never_cut_an_account_hash(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    created = json.loads(
        run_cli(data_dir, "accounts", "create", "--name", "a long shop name", "--json").stdout
    )
    narrow = {"COLUMNS": "40"}
    listed = subprocess.run(
        [*PATRON, "accounts", "list"],
        env={**os.environ, "PATRON_DATA_DIR": str(data_dir), **narrow},
        capture_output=True,
        text=True,
        check=True,
    )
    assert created["account_hash"] in listed.stdout
