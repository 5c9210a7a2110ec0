"""What Patron leaves on disk is its owner's alone: the data directory, the SQLite database (every
account's link-signing key is in it) with its WAL, and the TLS private key."""

from __future__ import annotations

import stat
from pathlib import Path

from conftest import Server, create_tenant_cli, push, run_cli, start_server


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_directory_database_and_key_are_the_owners_alone(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    tenant = create_tenant_cli(data_dir)
    server: Server = start_server(data_dir)
    try:
        with server.client() as c:
            push(c, tenant, [{"@type": "contact", "id": "c1", "email": "ann@example.com"}])
        files = [data_dir / "patron.db", data_dir / "patron.db-wal", data_dir / "patron.db-shm"]
        assert files[1].exists()  # the WAL is there while the server runs
        assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}
        assert mode(data_dir) == 0o700
        assert (mode(data_dir / "tls"), mode(data_dir / "tls" / "localhost-key.pem")) == (0o700, 0o600)
    finally:
        server.stop()


def test_an_existing_database_made_readable_is_closed_again(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    run_cli(data_dir, "migrate")
    (data_dir / "patron.db").chmod(0o644)
    data_dir.chmod(0o755)
    run_cli(data_dir, "accounts", "list")
    assert (mode(data_dir), mode(data_dir / "patron.db")) == (0o700, 0o600)
