"""The deployment kit, read as its tools would (no Docker daemon, no systemd needed): the Dockerfile's
stages, user and entry point; compose.yaml's services, health checks and start-up order; the systemd
units' hardening; and, in each, the ``patron`` command lines parsed by click and the ``PATRON_*``
variables checked against the settings that exist."""

from __future__ import annotations

import configparser
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.settings import VARIABLE, every_variable, parse

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def variables_named(path: Path) -> set[str]:
    return set(VARIABLE.findall(path.read_text(encoding="utf-8")))


# the Dockerfile -----------------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """The Dockerfile's instructions (name, arguments), continuation lines joined, comments dropped."""
    joined, found = "", []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") and not joined:
            continue
        joined += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if line.endswith("\\"):
            continue
        if joined.strip():
            name, _, arguments = joined.strip().partition(" ")
            found.append((name.upper(), arguments.strip()))
        joined = ""
    return found


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """The instructions of each stage, from its FROM on."""
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions(path):
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def test_the_image_is_multi_stage_and_runs_patron_as_a_user_other_than_root() -> None:
    built = stages(ROOT / "Dockerfile")
    assert len(built) >= 2, "a build stage and a runtime stage"
    names = [re.split(r"\s+as\s+", args, flags=re.IGNORECASE)[-1] for _, args in (s[0] for s in built)]
    final = dict(built[-1])
    # the build stage fetches the front-end packages and makes the wheel; the last copies its result
    build = " ".join(args for stage in built[:-1] for name, args in stage if name == "RUN")
    assert "npm ci" in build and "pip wheel" in build
    assert any(name == "COPY" and f"--from={names[0]}" in args for name, args in built[-1])
    user = final["USER"].split(":")[0]
    assert user not in ("root", "0"), f"the last stage runs as {user}"
    assert json.loads(final["ENTRYPOINT"]) == ["patron"]
    command = json.loads(final["CMD"])
    assert parse(command) == ("patron", "serve")
    port = command[command.index("--port") + 1]
    assert final["EXPOSE"].split() == [port]
    assert "/var/lib/patron" in final["VOLUME"] and "PATRON_DATA_DIR=/var/lib/patron" in final["ENV"]
    assert f"127.0.0.1:{port}/health" in final["HEALTHCHECK"]
    assert variables_named(ROOT / "Dockerfile") <= every_variable()


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ignored[ignored.index("*") :][:1] == ["*"], "everything left out but what is named"
    assert "src/patron/static/vendor/node_modules" in ignored
    kept = {line[1:] for line in ignored if line.startswith("!")}
    assert kept == {"pyproject.toml", "README.md", "LICENSE", "src"}


# compose.yaml -------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    return loaded


def patron_services(services: dict[str, Any]) -> dict[str, Any]:
    return {name: s for name, s in services.items() if str(s.get("image", "")).startswith("patron")}


def test_compose_runs_postgresql_redis_a_migration_two_api_processes_and_two_workers() -> None:
    services = compose()["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    ours = patron_services(services)
    commands = {name: parse(s["command"]) for name, s in ours.items()}
    api = [n for n, c in commands.items() if c == ("patron", "serve")]
    workers = [n for n, c in commands.items() if c == ("patron", "worker")]
    migrations = [n for n, c in commands.items() if c == ("patron", "migrate")]
    assert (len(api), len(workers), len(migrations)) == (2, 2, 1)
    for name in api:
        assert {"--no-worker", "--behind-proxy"} <= set(ours[name]["command"]), name
    for name in (*api, *workers):
        after = ours[name]["depends_on"]
        assert after[migrations[0]]["condition"] == "service_completed_successfully", name
        assert after["postgres"]["condition"] == after["redis"]["condition"] == "service_healthy", name
        environment = ours[name]["environment"]
        assert environment["PATRON_DATABASE_URL"].startswith("postgresql://"), name
        assert environment["PATRON_REDIS_URL"].startswith("redis://redis:"), name
    assert services[migrations[0]]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("postgres", "redis", *api):
        assert services[name]["healthcheck"]["test"][0] == "CMD", f"{name} has no health check"
    for name in workers:
        assert services[name]["healthcheck"] == {"disable": True}  # the image's HTTP check is not theirs


def test_compose_names_real_settings_and_no_secret() -> None:
    loaded = compose()
    for name, service in patron_services(loaded["services"]).items():
        named = {k for k in service.get("environment", {}) if k.startswith("PATRON_")}
        assert named <= every_variable(), f"{name}: {named - every_variable()} are not settings"
    assert variables_named(ROOT / "compose.yaml") <= every_variable()
    # passwords come from .env by interpolation, never written in the file
    for service in loaded["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key or ("://" in str(value) and "@" in str(value)):
                assert "${" in str(value), f"{key} holds a value of its own: {value}"
    example = DEPLOY / "compose.env.example"
    assert variables_named(example) <= every_variable()
    assert "POSTGRES_PASSWORD=change-me" in example.read_text(encoding="utf-8")


# systemd --------------------------------------------------------------------------------------


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read(path, encoding="utf-8")
    return parser


UNITS = sorted(DEPLOY.glob("systemd/*.service"))


def test_there_are_units_for_the_api_the_workers_and_migrations() -> None:
    assert {p.name for p in UNITS} == {
        "patron-api.service",
        "patron-worker@.service",
        "patron-migrate.service",
    }


@pytest.mark.parametrize("path", UNITS, ids=[p.name for p in UNITS])
def test_each_unit_is_hardened_and_runs_patron_with_options_it_has(path: Path) -> None:
    service = unit(path)["Service"]
    environment_file = service["EnvironmentFile"]
    assert environment_file == "/etc/patron/patron.env"
    settings = dict(
        line.split("=", 1)
        for line in (DEPLOY / "systemd" / "patron.env.example").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    assert set(settings) <= every_variable()
    assert service["User"] not in ("root", "0")
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["PrivateTmp"] == "yes"
    assert service["ReadWritePaths"].split() == [settings["PATRON_DATA_DIR"]]
    if service.get("Type") != "oneshot":
        assert service["Restart"] == "on-failure"
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == "patron"
    path_run = parse(argv[1:])
    expected = {
        "patron-api.service": ("patron", "serve"),
        "patron-worker@.service": ("patron", "worker"),
        "patron-migrate.service": ("patron", "migrate"),
    }
    assert path_run == expected[path.name]
    if path_run[-1] != "migrate":
        assert "patron-migrate.service" in unit(path)["Unit"]["Requires"]


def test_the_api_unit_serves_the_proxy_alone() -> None:
    argv = shlex.split(unit(DEPLOY / "systemd" / "patron-api.service")["Service"]["ExecStart"])
    assert "--behind-proxy" in argv and argv[argv.index("--host") + 1] == "127.0.0.1"


# the proxies ----------------------------------------------------------------------------------


def test_the_proxies_forward_the_client_and_cap_bodies_at_patrons_8_mib() -> None:
    from patron.config import MAX_BODY_BYTES

    assert MAX_BODY_BYTES == 8 * 1024 * 1024
    nginx = (DEPLOY / "nginx" / "patron.conf").read_text(encoding="utf-8")
    for directive in (
        "client_max_body_size 8m;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "proxy_pass http://patron;",
    ):
        assert directive in nginx, directive
    caddy = (DEPLOY / "Caddyfile").read_text(encoding="utf-8")
    assert "max_size 8MiB" in caddy and "reverse_proxy api-1:8080 api-2:8080" in caddy
    ports = {
        s["command"][s["command"].index("--port") + 1]
        for s in compose()["services"].values()
        if "--behind-proxy" in s.get("command", [])
    }
    assert ports == {"8080"}
