"""The ``patron`` command against a real store in a temporary data directory.

Most commands run through click's ``CliRunner`` (the same code path as the console script, in this
process); those whose exit status, stream separation or tracebacks matter run as real subprocesses.
Every test reads the outcome back from the store rather than trusting the command's own output.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from conftest import PATRON, free_port, migrated, run_cli, set_limits
from patron import __version__, accounts
from patron.cli import main
from patron.config import DEFAULT_PORT, Settings
from patron.ingest.worker import apply_round
from patron.ratelimits import DEFAULT_LIMITS
from patron.runtime import queue_kinds
from patron.store import Store
from patron.store.migrate import head_revision
from patron.store.schema import import_batches
from support.app import App, running_app

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
def cli(settings: Settings, store: Store) -> Cli:
    """``patron --data-dir <tmp> ARGS...`` in this process, untouched by the caller's environment, on
    the data directory of ``store`` (which made its database)."""
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
    set_limits(settings.data_dir, account_hash, "--push", "100/second", "--data", "unlimited")
    table = run_cli(settings.data_dir, "accounts", "list").stdout
    (row,) = [line for line in table.splitlines() if account_hash in line]
    assert "shop" in row
    assert "staging" in row
    assert "data unlimited, push 100/second, email 30/second, gdpr 6/minute, merge 1/minute" in row


def test_set_limits_changes_one_account_and_default_resets(cli: Cli, store: Store) -> None:
    shop, other = create(cli, "shop")["account_hash"], create(cli, "other")["account_hash"]
    printed = ok(
        cli("accounts", "set-limits", "--account", shop, "--push", "100/second", "--data", "unlimited")
    )
    expected = {**DEFAULT_LIMITS, "push": "100/second", "data": "unlimited"}
    shown = dict(line.split(None, 1) for line in printed.splitlines())
    assert {name: shown[name] for name in DEFAULT_LIMITS} == expected
    assert listed(cli)[shop]["limits"] == expected
    assert listed(cli)[other]["limits"] == DEFAULT_LIMITS

    ok(cli("accounts", "set-limits", "--account", shop, "--push", "default"))
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
    ok(cli("accounts", "set-limits", "--account", account_hash, "--merge", "2/minute"))
    before = listed(cli)
    result = cli(
        "accounts", "set-limits", "--account", account_hash if target == "known" else UNKNOWN_HASH, *options
    )
    assert_clean_error(result, message)
    assert listed(cli) == before
    assert stored_limits(store, account_hash) == {"merge": "2/minute"}


def test_set_limits_without_a_limit_is_a_usage_error(cli: Cli) -> None:
    account_hash = create(cli)["account_hash"]
    assert_clean_error(
        cli("accounts", "set-limits", "--account", account_hash), "give at least one of", status=2
    )


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
    assert second["prefix"] == second["api_key"][: accounts.KEY_PREFIX_LENGTH]
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

    revoked = ok(cli("keys", "revoke", "--account", account_hash, first_id))
    assert revoked.strip() == f"revoked {first_id} of account {account_hash}"
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
    missing = cli("keys", "revoke", "--account", created["account_hash"], "key_000000000000")
    assert_clean_error(missing, "no API key has the id 'key_000000000000'")
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
    data_dir = migrated(tmp_path / "data")
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


# a data directory without a database ------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["accounts", "list"],
        ["accounts", "create", "--name", "shop"],
        ["keys", "list", "--account", UNKNOWN_HASH],
        ["queue", "--account", UNKNOWN_HASH],
        ["demo"],
        ["serve", "--port", "{port}"],
        ["worker"],
    ],
    ids=" ".join,
)
def test_a_data_dir_without_a_database_is_refused_with_the_command_that_makes_one(
    tmp_path: Path, command: list[str]
) -> None:
    data_dir = tmp_path / "data"
    args = [arg.format(port=free_port()) for arg in command]
    done = run_cli(data_dir, *args, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    database = (data_dir / "patron.db").resolve()
    assert line == (
        f"Error: no database at {database}: create it with 'patron migrate'"
        " (given the same --data-dir or --database-url), then run this command again"
    )
    assert not data_dir.exists()  # nothing was created, not even the directory


def test_migrate_creates_the_database_of_a_fresh_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert run_cli(data_dir, "migrate").stdout == f"database at revision {head_revision()}\n"
    assert _revisions(data_dir / "patron.db") == [(head_revision(),)]
    assert json.loads(run_cli(data_dir, "accounts", "list", "--json").stdout) == []


# --account, never a positional hash ---------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["accounts", "set-limits", "{hash}", "--push", "1/second"],
        ["accounts", "set-matching", "{hash}", "--phone", "on"],
        ["accounts", "set-link-domains", "{hash}", "shop.example.com"],
        ["accounts", "set-strict", "on"],
        ["accounts", "show"],
        ["accounts", "rename", "--name", "other"],
        ["keys", "revoke", "{key_id}"],
        ["keys", "list"],
        ["queue"],
        ["errors"],
    ],
    ids=" ".join,
)
def test_every_account_command_needs_account_and_takes_no_positional_hash(
    cli: Cli, store: Store, command: list[str]
) -> None:
    created = create(cli)
    (key_id,) = keys_of(cli, created["account_hash"])
    before = (listed(cli), keys_of(cli, created["account_hash"]))
    args = [arg.format(hash=created["account_hash"], key_id=key_id) for arg in command]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert "Missing option '--account'" in result.stderr
    assert (listed(cli), keys_of(cli, created["account_hash"])) == before
    assert owner(store, created["api_key"]) is not None


# accounts show and rename ------------------------------------------------------------------------


def test_accounts_show_says_everything_about_one_account(cli: Cli, store: Store) -> None:
    created = create(cli, "big shop", "live")
    account_hash = created["account_hash"]
    ok(cli("accounts", "set-limits", "--account", account_hash, "--push", "100/second", "--queue", "9000"))
    ok(cli("accounts", "set-matching", "--account", account_hash, "--phone", "on"))
    ok(cli("accounts", "set-strict", "--account", account_hash, "on"))
    ok(cli("accounts", "set-link-domains", "--account", account_hash, "shop.example.com", "blog.example.com"))
    (first_id,) = keys_of(cli, account_hash)
    ok(cli("keys", "create", "--account", account_hash))
    ok(cli("keys", "create", "--account", account_hash))
    ok(cli("keys", "revoke", "--account", account_hash, first_id))
    other = create(cli, "other")

    shown = json.loads(ok(cli("accounts", "show", "--account", account_hash, "--json")))
    created_at = store.read_blocking(lambda conn: accounts.get_account(conn, account_hash)).created_at
    assert shown == {
        "account_hash": account_hash,
        "name": "big shop",
        "environment": "live",
        "limits": {**DEFAULT_LIMITS, "push": "100/second"},
        "queue_limit": 9000,
        "matching": ["customer id", "email", "phone"],
        "strict": True,
        "link_domains": ["blog.example.com", "shop.example.com"],
        "keys": 2,  # the revoked one is not counted
        "created_at": created_at.isoformat(),
    }
    text = ok(cli("accounts", "show", "--account", account_hash))
    assert labelled(text, "account hash:") == account_hash
    assert labelled(text, "name:") == "big shop"
    assert labelled(text, "environment:") == "live"
    assert labelled(text, "limits:").startswith(f"data {DEFAULT_LIMITS['data']}, push 100/second")
    assert labelled(text, "limits:").endswith("; queue 9000 records")
    assert labelled(text, "matching:") == "customer id, email, phone"
    assert labelled(text, "strict:") == "on"
    assert labelled(text, "link domains:") == "blog.example.com, shop.example.com"
    assert labelled(text, "keys:") == "2 working"
    assert labelled(text, "created:") == f"{created_at:%Y-%m-%d %H:%M} UTC"
    plain = json.loads(ok(cli("accounts", "show", "--account", other["account_hash"], "--json")))
    assert (plain["matching"], plain["strict"], plain["link_domains"], plain["keys"]) == (
        ["customer id", "email"],
        False,
        [],
        1,
    )


def test_accounts_show_of_an_unknown_account_is_a_clean_error(cli: Cli) -> None:
    assert_clean_error(
        cli("accounts", "show", "--account", UNKNOWN_HASH), f"no account has the hash '{UNKNOWN_HASH}'"
    )


def test_accounts_rename_changes_the_name_alone(cli: Cli, store: Store) -> None:
    created = create(cli, "shop")
    account_hash = created["account_hash"]
    printed = ok(cli("accounts", "rename", "--account", account_hash, "--name", "  Shop & Co  "))
    assert printed.strip() == f"{account_hash} is now named Shop & Co"
    account = store.read_blocking(lambda conn: accounts.get_account(conn, account_hash))
    assert (account.name, account.environment) == ("Shop & Co", "staging")
    assert listed(cli)[account_hash]["name"] == "Shop & Co"
    assert owner(store, created["api_key"]) == account  # its key still opens it


@pytest.mark.parametrize(
    ("target", "name", "message"),
    [
        ("known", "   ", "the account name must be 1 to 200 characters"),
        ("known", "x" * 201, "the account name must be 1 to 200 characters"),
        ("unknown", "other", f"no account has the hash '{UNKNOWN_HASH}'"),
    ],
)
def test_accounts_rename_refuses_bad_input_and_changes_nothing(
    cli: Cli, target: str, name: str, message: str
) -> None:
    account_hash = create(cli)["account_hash"]
    before = listed(cli)
    chosen = account_hash if target == "known" else UNKNOWN_HASH
    assert_clean_error(cli("accounts", "rename", "--account", chosen, "--name", name), message)
    assert listed(cli) == before


# keys: prefix, last use, expiry, scope -----------------------------------------------------------


def test_keys_list_shows_each_keys_first_characters_and_last_use(cli: Cli, store: Store) -> None:
    created = create(cli)
    account_hash, key = created["account_hash"], created["api_key"]
    ((key_id, listed_key),) = keys_of(cli, account_hash).items()
    assert listed_key["prefix"] == key[: accounts.KEY_PREFIX_LENGTH]
    assert (listed_key["last_used_at"], listed_key["scope"], listed_key["state"]) == (
        None,
        "read-write",
        "working",
    )
    table = ok(cli("keys", "list", "--account", account_hash))
    (row,) = [line for line in table.splitlines() if key_id in line]
    assert f"{key[: accounts.KEY_PREFIX_LENGTH]}..." in row
    assert key[: accounts.KEY_PREFIX_LENGTH + 1] not in table  # never more than the prefix
    assert len(DATE.findall(row)) == 1 and row.count("never") == 2  # created; never expires, never used

    async def use() -> None:
        resolver = accounts.KeyResolver(store)
        await resolver.resolve(key)
        await resolver.settled()

    asyncio.run(use())
    [stored] = store.read_blocking(lambda conn: accounts.list_keys(conn, account_hash))
    assert stored.last_used_at is not None
    assert keys_of(cli, account_hash)[key_id]["last_used_at"] == stored.last_used_at.isoformat()
    (row,) = [
        line for line in ok(cli("keys", "list", "--account", account_hash)).splitlines() if key_id in line
    ]
    assert f"{stored.last_used_at:%Y-%m-%d %H:%M}" in row and row.count("never") == 1


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("2030-01-31", datetime(2030, 1, 31, tzinfo=UTC)),
        ("2030-01-31T12:30:00+02:00", datetime(2030, 1, 31, 10, 30, tzinfo=UTC)),
        ("2030-01-31T12:30", datetime(2030, 1, 31, 12, 30, tzinfo=UTC)),
    ],
)
def test_keys_create_with_an_expiry(cli: Cli, store: Store, given: str, expected: Any) -> None:
    account_hash = create(cli)["account_hash"]
    before = accounts.now()
    made = json.loads(ok(cli("keys", "create", "--account", account_hash, "--expires", given, "--json")))
    after = accounts.now()
    [_, stored] = store.read_blocking(lambda conn: accounts.list_keys(conn, account_hash))
    assert stored.id == made["id"]
    assert stored.expires_at is not None
    if isinstance(expected, timedelta):
        assert before + expected <= stored.expires_at <= after + expected
    else:
        assert stored.expires_at == expected
    assert made["expires_at"] == stored.expires_at.isoformat()
    assert keys_of(cli, account_hash)[made["id"]]["expires_at"] == stored.expires_at.isoformat()
    assert owner(store, made["api_key"]) is not None  # it works until then


@pytest.mark.parametrize(
    ("given", "message", "status"),
    [
        ("soon", "Invalid value for '--expires': 'soon' is neither a duration", 2),
        ("0d", "Invalid value for '--expires': '0d' is no time at all", 2),
        ("2020-01-01", "a key's expiry must be in the future, at most 3660 days ahead", 1),
        ("9999d", "a key's expiry must be in the future, at most 3660 days ahead", 1),
    ],
)
def test_keys_create_refuses_a_bad_expiry_and_creates_nothing(
    cli: Cli, given: str, message: str, status: int
) -> None:
    account_hash = create(cli)["account_hash"]
    before = keys_of(cli, account_hash)
    assert_clean_error(cli("keys", "create", "--account", account_hash, "--expires", given), message, status)
    assert keys_of(cli, account_hash) == before


def test_keys_create_read_only(cli: Cli, store: Store) -> None:
    account_hash = create(cli)["account_hash"]
    printed = ok(cli("keys", "create", "--account", account_hash, "--read-only", "--label", "reports"))
    assert labelled(printed, "scope:") == "read-only"
    assert labelled(printed, "expires:") == "never"
    key = labelled(printed, "api key:")
    access = store.read_blocking(lambda conn: accounts.key_access(conn, key))
    assert access is not None and access.read_only and access.account.hash == account_hash
    scopes = {k["label"]: k["scope"] for k in keys_of(cli, account_hash).values()}
    assert scopes == {"first key": "read-write", "reports": "read-only"}


def test_keys_revoke_refuses_a_key_of_another_account(cli: Cli, store: Store) -> None:
    shop, other = create(cli, "shop"), create(cli, "other")
    (key_id,) = keys_of(cli, shop["account_hash"])
    result = cli("keys", "revoke", "--account", other["account_hash"], key_id)
    assert_clean_error(result, f"no API key has the id '{key_id}'")
    assert keys_of(cli, shop["account_hash"])[key_id]["revoked_at"] is None
    assert owner(store, shop["api_key"]) is not None


# queue and errors --------------------------------------------------------------------------------


@pytest.fixture
def queued_app(tmp_path: Path) -> Iterator[App]:
    """An app whose worker does not run: what is pushed stays queued until the test applies it."""
    with running_app(tmp_path, None, run_worker=False) as app:
        yield app


def test_queue_shows_the_backlog_by_type_and_what_was_applied(queued_app: App) -> None:
    app = queued_app
    tenant, other = app.tenant("shop"), app.tenant("other")
    cli = CliRunner(env={"PATRON_DATA_DIR": None, "PATRON_DATABASE_URL": None, "COLUMNS": "200"})

    def queue(*more: str) -> Result:
        return cli.invoke(main, ["--data-dir", str(app.data_dir), "queue", "--account", tenant.hash, *more])

    empty = json.loads(ok(queue("--json")))
    assert (empty["queued"], empty["queued_rows"], empty["oldest_queued_at"]) == ({}, 0, None)
    assert "0 rows (0 records) queued; oldest waiting nothing queued" in ok(queue())

    contacts = [{"@type": "contact", "id": f"c{i}", "email": f"c{i}@example.com"} for i in range(3)]
    products = [{"@type": "product", "id": "p1", "title": "Hat", "price": 10, "currency": "GBP"}]
    for body, who in ((contacts, tenant), (contacts[:1], tenant), (products, tenant), (contacts, other)):
        assert app.client.post("/v2/push", json=body, headers=who.headers).status_code == 202
    first = app.store.read_blocking(
        lambda conn: conn.execute(
            select(func.min(import_batches.c.received_at)).where(import_batches.c.record_type == "contact")
        ).scalar_one()
    )
    shown = json.loads(ok(queue("--json")))
    assert {k: (v["rows"], v["records"]) for k, v in shown["queued"].items()} == {
        "contact": (2, 4),
        "product": (1, 1),
    }
    assert (shown["queued_rows"], shown["queued_records"]) == (3, 5)
    assert shown["oldest_queued_at"] == first.isoformat()
    assert shown["oldest_queued_seconds"] >= 0
    assert shown["applied_last_hour"] == {"rows": 0, "records": 0}
    table = ok(queue())
    assert f"{tenant.hash}: 3 rows (5 records) queued" in table
    (contact_row,) = [line for line in table.splitlines() if "contact" in line]
    assert [cell.strip() for cell in contact_row.split("│")][1:4] == ["contact", "2", "4"]

    while apply_round(app.store, queue_kinds()):
        pass
    applied = json.loads(ok(queue("--json")))
    assert (applied["queued"], applied["queued_rows"], applied["oldest_queued_at"]) == ({}, 0, None)
    assert applied["applied_last_hour"] == {"rows": 3, "records": 5}
    assert "applied in the last hour: 3 rows (5 records)" in ok(queue())


def test_errors_shows_the_latest_push_errors_newest_first(queued_app: App) -> None:
    app = queued_app
    tenant, other = app.tenant("shop"), app.tenant("other")
    cli = CliRunner(env={"PATRON_DATA_DIR": None, "PATRON_DATABASE_URL": None, "COLUMNS": "250"})

    def errors(account: str, *more: str) -> Result:
        return cli.invoke(main, ["--data-dir", str(app.data_dir), "errors", "--account", account, *more])

    assert json.loads(ok(errors(tenant.hash, "--json"))) == []
    assert ok(errors(tenant.hash)).strip() == f"{tenant.hash}: no push errors"
    requests = []
    for n in range(3):
        bad = [{"@type": "contact", "id": f"bad{n}", "email": "not an email"}]
        answer = app.client.post("/v2/push", json=bad, headers=tenant.headers)
        requests.append(answer.json()["request_id"])
    app.client.post("/v2/push", json=[{"@type": "order", "id": "o1"}], headers=other.headers)

    latest = json.loads(ok(errors(tenant.hash, "--limit", "2", "--json")))
    assert [e["request_id"] for e in latest] == requests[:0:-1]  # the last two, newest first
    assert [e["id"] for e in latest] == ["bad2", "bad1"]
    assert {(e["record_type"], e["severity"], e["path"]) for e in latest} == {
        ("contact", "error", "root > email")
    }
    assert all(e["message"] and datetime.fromisoformat(e["timestamp"]).tzinfo for e in latest)
    table = ok(errors(tenant.hash))
    rows = [line for line in table.splitlines() if "bad" in line]
    assert [next(r for r in requests if r in row) for row in rows] == requests[::-1]
    assert "o1" not in table  # another account's
    assert_clean_error(errors(tenant.hash, "--limit", "0"), "Invalid value for '--limit'", status=2)


# help --------------------------------------------------------------------------------------------


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    yield " ".join(("patron", *path)), command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


def test_every_command_and_option_has_plain_help() -> None:
    for name, command in _commands(main):
        assert command.help and command.help.strip(), f"{name} has no help"
        assert "`" not in command.help, f"{name}'s help has backticks: {command.help!r}"
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help and param.help.strip(), f"{name} {param.opts[0]} has no help"
                assert "`" not in param.help, f"{name} {param.opts[0]}'s help has backticks"
                if param.envvar:
                    assert param.show_envvar or str(param.envvar) in param.help, (
                        f"{name} {param.opts[0]}'s help does not name {param.envvar}"
                    )
        if name.endswith(" list") or name in ("patron queue", "patron errors", "patron accounts show"):
            assert "--json" in [opt for p in command.params for opt in p.opts], f"{name} has no --json"


def test_help_is_plain_text_and_names_the_environment_variables(tmp_path: Path) -> None:
    printed = run_cli(tmp_path, "--help").stdout
    assert "``" not in printed and "`" not in printed
    assert "[env var: PATRON_DATA_DIR;" in " ".join(printed.split())
    assert "[env var: PATRON_DATABASE_URL]" in " ".join(printed.split())
    for command in ("worker", "serve", "migrate", "keys", "import"):
        assert "`" not in run_cli(tmp_path, command, "--help").stdout
