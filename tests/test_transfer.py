"""``patron import``, ``patron export`` and ``patron copy`` against a running Patron: CSV through a
mapping, bad lines, a run killed and resumed, a server that refuses for a while or restarts, and a
copy that ends with equal accounts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import (
    PATRON,
    Tenant,
    create_tenant_cli,
    eventually,
    free_port,
    set_limits,
    start_server,
)
from patron.client import Client
from support.flaky import Flaky
from support.served import Served, served_fixture

served = served_fixture()


def to(served: Served, tenant: Tenant, url: str | None = None) -> list[str]:
    """The options that point a command at ``tenant``'s account (through ``url`` when given)."""
    server = served.server
    return ["--url", url or server.url, "--key", tenant.key, *([] if url else ["--ca", str(server.ca)])]


def patron(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*PATRON, *args], capture_output=True, text=True, timeout=300, check=False)
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


def order(n: int, total: float = 20.0, **fields: Any) -> dict[str, Any]:
    return {
        "@type": "order",
        "id": f"o-{n}",
        "timestamp": "2026-03-01T10:00:00+00:00",
        "grand_total": total,
        "currency": "GBP",
        "customer": {"email": f"shopper{n % 50}@example.com"},
        "lineitems": [{"product_id": f"sku-{n % 7}", "quantity": 2, "unit_price": total / 2}],
        **fields,
    }


def jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def stored_orders(client: Client, count: int) -> dict[str, dict[str, Any]]:
    """The account's orders once ``count`` are applied, by id."""

    def all_applied() -> dict[str, dict[str, Any]] | None:
        found = {o["id"]: o for o in client.orders.iter()}
        return found if len(found) == count else None

    found: dict[str, dict[str, Any]] = eventually(all_applied, f"{count} orders applied", timeout=60)
    return found


def rejects(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def checkpoint(path: Path) -> dict[str, Any]:
    try:
        found: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found


# import -----------------------------------------------------------------------------------------


MAPPING = """
type = "order"

[columns]
order_id = "id"
placed = "timestamp"
total = "grand_total"
currency = "currency"
email = "customer.email"
first = "customer.firstname"
city = "shipping_address.city"
sku = "lineitems[].product_id"
qty = "lineitems[].quantity"
price = "lineitems[].unit_price"
"""

CSV = """order_id,placed,total,currency,email,first,city,sku,qty,price,ignored
A-1,2026-03-01T10:00:00+00:00,30.5,GBP,ada@example.com,Ada,London,sku-1,1,10.5,x
A-1,,,,,,,sku-2,2,10,x
A-2,2026-03-02T11:00:00+00:00,5,GBP,bob@example.com,Bob,Leeds,sku-3,1,5,x
A-3,2026-03-03T12:00:00+00:00,12,GBP,cy@example.com
A-4,2026-03-04T12:00:00+00:00,8,EUR,dee@example.com,Dee,Paris,sku-1,4,2,x
"""


def test_a_csv_imports_through_its_mapping_with_nested_fields_and_line_items(
    served: Served, tmp_path: Path
) -> None:
    tenant = served.tenant()
    (tmp_path / "orders.toml").write_text(MAPPING)
    source = tmp_path / "orders.csv"
    source.write_text(CSV)
    done = patron("import", str(source), "--map", str(tmp_path / "orders.toml"), *to(served, tenant))
    assert "3 accepted, 1 rejected" in done.stdout
    with served.client(tenant) as client:
        found = stored_orders(client, 3)
    first = found["A-1"]
    assert first["grand_total"] == 30.5
    assert first["customer"]["email"] == "ada@example.com"
    assert first["customer"]["firstname"] == "Ada"
    assert first["shipping_address"]["city"] == "London"
    lines = [(line["product_id"], line["quantity"], line["unit_price"]) for line in first["lineitems"]]
    assert lines == [("sku-1", 1, 10.5), ("sku-2", 2, 10.0)]
    assert [line["product_id"] for line in found["A-4"]["lineitems"]] == ["sku-1"]
    (short,) = rejects(tmp_path / "orders.csv.rejects.jsonl")
    assert short["line"] == 5
    assert "no value for column 'first'" in short["message"]


def test_bad_lines_are_reported_with_their_line_and_the_rest_imported(served: Served, tmp_path: Path) -> None:
    tenant = served.tenant()
    lines: list[Any] = [order(n) for n in range(250)]
    lines[10] = "{not json"
    lines[20] = "[1, 2]"
    lines[30] = {**order(30), "grand_total": "lots"}
    lines[40] = {**order(40), "@type": "parcel"}
    source = jsonl(tmp_path / "orders.jsonl", lines)
    done = patron("import", str(source), *to(served, tenant))
    assert "246 accepted, 4 rejected" in done.stdout
    found = {r["line"]: r for r in rejects(tmp_path / "orders.jsonl.rejects.jsonl")}
    assert sorted(found) == [11, 21, 31, 41]
    assert found[11]["path"] == "line" and found[11]["message"].startswith("not JSON")
    assert found[11]["text"] == "{not json"
    assert "not a JSON object" in found[21]["message"]
    assert found[31]["path"] == "root > grand_total" and found[31]["id"] == "o-30"
    assert found[31]["record"]["grand_total"] == "lots"
    assert found[41]["path"] == "root > @type"
    with served.client(tenant) as client:
        assert set(stored_orders(client, 246)) == {f"o-{n}" for n in range(250)} - {
            "o-10",
            "o-20",
            "o-30",
            "o-40",
        }


def test_a_json_array_imports_and_a_finished_import_is_not_repeated(served: Served, tmp_path: Path) -> None:
    tenant = served.tenant()
    source = tmp_path / "orders.json"
    source.write_text(json.dumps([order(n) for n in range(120)], indent=2))
    patron("import", str(source), *to(served, tenant))
    again = patron("import", str(source), *to(served, tenant))
    assert "imported already (120 accepted)" in again.stdout
    with served.client(tenant) as client:
        assert len(stored_orders(client, 120)) == 120
        assert client.stats.statuses.get(202, 0) == 0  # the client only read


def test_an_import_killed_halfway_resumes_without_losing_or_resending_what_was_answered(
    served: Served, tmp_path: Path
) -> None:
    tenant = served.tenant("--push", "5/second")
    count, concurrency = 3000, 4
    source = jsonl(tmp_path / "orders.jsonl", [order(n) for n in range(count)])
    state = tmp_path / "orders.jsonl.import-checkpoint"
    with Flaky(served.server.url, served.server.ca) as proxy:
        command = [
            *PATRON,
            "import",
            str(source),
            *to(served, tenant, proxy.url),
            "--concurrency",
            str(concurrency),
        ]
        killed_when(command, state, lambda s: s.get("accepted", 0) >= 1000)
        done = patron(*command[len(PATRON) :])
        assert f"{count} accepted, 0 rejected" in done.stdout
        pushes = [
            status for method, path, status in proxy.answered if method == "POST" and path.endswith("/push")
        ]
    # every request the server acknowledged, except those in flight when the importer was killed
    # (their answers never reached its checkpoint), was sent once
    assert count // 100 <= pushes.count(202) <= count // 100 + concurrency
    with served.client(tenant) as client:
        assert set(stored_orders(client, count)) == {f"o-{n}" for n in range(count)}


def test_an_import_waits_out_429_and_503(served: Served, tmp_path: Path) -> None:
    tenant = served.tenant()
    source = jsonl(tmp_path / "orders.jsonl", [order(n) for n in range(500)])
    with Flaky(served.server.url, served.server.ca) as proxy:
        proxy.refuse(429, 3, retry_after=1)
        done = patron("import", str(source), *to(served, tenant, proxy.url), "--concurrency", "1")
        proxy.refuse(503, 3)
        source2 = jsonl(tmp_path / "more.jsonl", [order(n) for n in range(500, 700)])
        patron("import", str(source2), *to(served, tenant, proxy.url), "--concurrency", "1")
        statuses = [status for _, _, status in proxy.answered]
    assert "500 accepted, 0 rejected" in done.stdout
    assert "3 answered 429" in done.stdout
    assert statuses[:3] == [429, 429, 429] and statuses.count(503) == 3
    assert statuses.count(202) == 7
    with served.client(tenant) as client:
        assert len(stored_orders(client, 700)) == 700


def test_an_import_rides_out_a_server_restart(tmp_path: Path, patron_environment: dict[str, str]) -> None:
    data_dir, port = tmp_path / "data", free_port()
    tenant = create_tenant_cli(data_dir, environment=patron_environment)
    set_limits(data_dir, tenant.hash, "--push", "5/second", environment=patron_environment)
    server = start_server(data_dir, port=port, environment=patron_environment)
    count = 3000
    source = jsonl(tmp_path / "orders.jsonl", [order(n) for n in range(count)])
    state = tmp_path / "orders.jsonl.import-checkpoint"
    run = subprocess.Popen(
        [*PATRON, "import", str(source), *to(Served(server, patron_environment), tenant)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        eventually(lambda: checkpoint(state).get("accepted", 0) >= 500, "some answered", timeout=60)
        server.stop()
        server = start_server(data_dir, port=port, environment=patron_environment)
        out, _ = run.communicate(timeout=180)
        assert run.returncode == 0
        assert f"{count} accepted, 0 rejected" in out
        with Served(server, patron_environment).client(tenant) as client:
            assert set(stored_orders(client, count)) == {f"o-{n}" for n in range(count)}
    finally:
        if run.poll() is None:
            os.kill(run.pid, signal.SIGKILL)
        server.stop()


# export and copy --------------------------------------------------------------------------------


def seed(served: Served, tenant: Tenant) -> None:
    """Records of every type, contacts in two collections, some updated after they were first pushed."""
    products = [
        {"@type": "product", "id": f"sku-{n}", "title": f"Product {n}", "price": 9.5} for n in range(7)
    ]
    contacts = [
        {"@type": "contact", "id": f"c-{n}", "email": f"shopper{n}@example.com", "firstname": "Ada"}
        for n in range(300)
    ]
    contacts += [{"@type": "contact", "@collection": "wholesale", "id": "w-1", "email": "buyer@example.com"}]
    events = [
        {
            "@type": "custom_event",
            "id": f"e-{n}",
            "event_type": "wishlist_add",
            "identity_email": f"shopper{n}@example.com",
            "timestamp": "2026-03-01T10:00:00+00:00",
            "properties": {"n": n},
        }
        for n in range(40)
    ]
    with served.client(tenant) as client:
        for records in (products, contacts, [order(n) for n in range(600)], events, [order(5, total=99.0)]):
            result = client.push(records)
            assert result.accepted == len(records), result.rejected
        stored_orders(client, 600)
        eventually(lambda: len(list(client.custom_events.iter())) == 40, "events applied")


def everything(served: Served, tenant: Tenant) -> dict[str, dict[tuple[str, str], dict[str, Any]]]:
    """Every record of the account by type, by (collection, id): the copy's requests run in parallel,
    so the target stores them in another order."""
    with served.client(tenant) as client:
        found = {
            "products": client.products.iter(includeVariants=True),
            "contacts": [*client.contacts.iter(), *client.contacts.iter(collection="wholesale")],
            "orders": client.orders.iter(),
            "custom-events": client.custom_events.iter(),
        }
        return {
            kind: {(r.get("@collection", ""), r["id"]): r for r in records} for kind, records in found.items()
        }


def test_copy_makes_an_equal_account(served: Served, tmp_path: Path) -> None:
    source, target = served.tenant(), served.tenant()
    seed(served, source)
    ends = [
        *("--from-url", served.server.url, "--from-key", source.key, "--from-ca", str(served.server.ca)),
        *("--to-url", served.server.url, "--to-key", target.key, "--to-ca", str(served.server.ca)),
    ]
    done = patron(
        "copy",
        *ends,
        "--checkpoint",
        str(tmp_path / "copy.checkpoint"),
        "--rejects",
        str(tmp_path / "r.jsonl"),
    )
    assert "948 accepted, 0 rejected" in done.stdout
    with served.client(target) as client:
        stored_orders(client, 600)
        eventually(lambda: len(list(client.custom_events.iter())) == 40, "events applied")
    assert everything(served, target) == everything(served, source)


def test_export_writes_every_record_and_its_csv_imports_again(served: Served, tmp_path: Path) -> None:
    source, target = served.tenant(), served.tenant()
    seed(served, source)
    lines = tmp_path / "orders.jsonl"
    patron("export", *to(served, source), "--type", "orders", "--output", str(lines))
    exported = [json.loads(line) for line in lines.read_text().splitlines()]
    assert {("", o["id"]): o for o in exported} == everything(served, source)["orders"]
    assert len(exported) == 600
    table = tmp_path / "orders.csv"
    done = patron(
        "export", *to(served, source), "--type", "orders", "--format", "csv", "--output", str(table)
    )
    mapping = tmp_path / "orders.map.toml"
    assert str(mapping) in done.stdout
    patron("import", str(table), "--map", str(mapping), *to(served, target))
    with served.client(target) as client:
        copied = stored_orders(client, 600)
    assert copied == {o["id"]: o for o in exported}
    profiles = tmp_path / "profiles.jsonl"
    patron("export", *to(served, source), "--type", "profiles", "--output", str(profiles))
    emails = {json.loads(line)["email"] for line in profiles.read_text().splitlines()}
    assert {f"shopper{n}@example.com" for n in range(300)} <= emails


def test_export_since_reads_only_what_changed(served: Served, tmp_path: Path) -> None:
    tenant = served.tenant()
    with served.client(tenant) as client:
        client.push([order(n) for n in range(30)])
        stored_orders(client, 30)
        time.sleep(1.1)  # update times have a resolution finer than this; "since" is the next second
        moment = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        client.push([order(n, total=50.0) for n in range(5)])
        eventually(
            lambda: sum(o["grand_total"] == 50.0 for o in client.orders.iter()) == 5, "updates applied"
        )
    output = tmp_path / "changed.jsonl"
    patron("export", *to(served, tenant), "--type", "orders", "--since", moment, "--output", str(output))
    assert sorted(json.loads(line)["id"] for line in output.read_text().splitlines()) == [
        f"o-{n}" for n in range(5)
    ]


def test_bad_usage_is_a_one_line_error(served: Served, tmp_path: Path) -> None:
    tenant = served.tenant()
    source = tmp_path / "orders.csv"
    source.write_text(CSV)
    no_map = patron("import", str(source), *to(served, tenant), check=False)
    assert no_map.returncode == 2 and "needs --map" in no_map.stderr
    (tmp_path / "bad.toml").write_text('type = "order"\n[columns]\nmissing = "id"\n')
    unknown = patron(
        "import", str(source), "--map", str(tmp_path / "bad.toml"), *to(served, tenant), check=False
    )
    assert unknown.returncode == 2 and "no column 'missing'" in unknown.stderr
    wrong_key = patron(
        "import",
        str(jsonl(tmp_path / "o.jsonl", [order(1)])),
        "--url",
        served.server.url,
        "--key",
        "nope",
        "--ca",
        str(served.server.ca),
        check=False,
    )
    assert wrong_key.returncode == 1 and "403" in wrong_key.stderr


def killed_when(
    command: list[str], progress: Path, enough: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Run ``command``, SIGKILL it once its checkpoint at ``progress`` shows ``enough``; that checkpoint."""
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        eventually(lambda: enough(checkpoint(progress)), "progress", timeout=60)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    left = checkpoint(progress)
    assert not left["finished"]
    return left


def test_an_export_killed_halfway_resumes_and_writes_each_record_once(served: Served, tmp_path: Path) -> None:
    tenant = served.tenant("--data", "3/second", "--push", "unlimited")
    with served.client(tenant) as client:
        client.push([order(n) for n in range(1500)])
        stored_orders(client, 1500)
    output = tmp_path / "orders.jsonl"
    command = [*PATRON, "export", *to(served, tenant), "--type", "orders", "--output", str(output)]
    state = tmp_path / "orders.jsonl.export-checkpoint"
    killed_when(command, state, lambda s: 250 <= s.get("accepted", 0) < 1500)
    output.write_bytes(output.read_bytes() + b'{"half": "a line written after the checkpoint')
    patron(*command[len(PATRON) :])
    ids = [json.loads(line)["id"] for line in output.read_text().splitlines()]
    assert sorted(ids) == sorted(f"o-{n}" for n in range(1500))


def test_a_copy_killed_halfway_resumes_and_ends_equal(served: Served, tmp_path: Path) -> None:
    source, target = served.tenant(), served.tenant("--push", "5/second")
    seed(served, source)
    state = tmp_path / "copy.checkpoint"
    ends = [
        *("--from-url", served.server.url, "--from-key", source.key, "--from-ca", str(served.server.ca)),
        *("--to-url", served.server.url, "--to-key", target.key, "--to-ca", str(served.server.ca)),
    ]
    command = [*PATRON, "copy", *ends, "--checkpoint", str(state), "--rejects", str(tmp_path / "r.jsonl")]
    killed_when(command, state, lambda s: 300 <= s.get("accepted", 0) < 900)
    done = patron(*command[len(PATRON) :])
    assert "948 accepted, 0 rejected" in done.stdout
    with served.client(target) as client:
        stored_orders(client, 600)
        eventually(lambda: len(list(client.custom_events.iter())) == 40, "events applied")
    assert everything(served, target) == everything(served, source)
