"""Templates cannot make the server do unbounded work: output, loops, memory and time are limited,
rendering happens in separate processes (never on the writer or the event loop), a template that
breaks a limit whatever its data is refused when it is saved, one that breaks it with its data when a
message is sent (a 400 naming the template), and a stored message has a size cap."""

from __future__ import annotations

import signal
import struct
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import pytest

from conftest import Tenant, create_tenant_cli, push, set_limits, start_server
from patron.email.sandbox import MAX_LOOP_STEPS, MAX_OUTPUT, Job, Part
from support.app import Client, app_fixtures
from support.http import assert_problem, read

shared, client, make_tenant = app_fixtures()
SENDER = {"email": "shop@example.com", "name": "Example Shop"}
TO = {"email": "ann@example.com"}
#: Under every other limit, and slow: a hundred thousand sums of a hundred thousand numbers.
SLOW = "{% for i in range(99999) %}{% set s = range(99999)|sum %}{% endfor %}done"
BOMBS = {
    "repetition": "{{ 'x' * 1000000000 }}",
    "nested loops": "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "memory": "{{ 'x'|center(2000000000) }}",
    "doubling": "{% set s = namespace(a='x') %}{% for i in range(40) %}{% set s.a = s.a ~ s.a %}{% endfor %}",
    "power": "{{ 10 ** 100000000 }}",
    "recursion": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "time": SLOW,
}


def save(client: Client, tenant: Tenant, **body: Any) -> Any:
    return client.post(
        "/v2/templates", json={"subject": "Hi", "html": "<p>Hi</p>", **body}, headers=tenant.headers
    )


def send(client: Client, tenant: Tenant, **body: Any) -> Any:
    message = {"from": SENDER, "to": TO, "sandbox": True, **body}
    return client.post("/v2/transactional-email/send", json=message, headers=tenant.headers)


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_a_template_that_breaks_a_limit_whatever_its_data_is_refused_when_saved(
    client: Client, tenant: Tenant, bomb: str
) -> None:
    problem = assert_problem(save(client, tenant, html=BOMBS[bomb]), 400)
    assert problem["errors"][0]["field"] in ("root > html", "root"), problem
    assert read(client, tenant, "/v2/templates") == []


def test_the_part_is_named(client: Client, tenant: Tenant) -> None:
    problem = assert_problem(save(client, tenant, subject="{{ 'x' * 10**9 }}"), 400, "root > subject")
    assert f"more than {MAX_OUTPUT:,}" in problem["detail"]
    problem = assert_problem(save(client, tenant, text=BOMBS["nested loops"]), 400, "root > text")
    assert f"more than {MAX_LOOP_STEPS:,} steps" in problem["detail"]
    problem = assert_problem(save(client, tenant, html=SLOW), 400, "root")
    assert "longer than" in problem["detail"]


def test_what_only_the_data_can_tell_is_saved(client: Client, tenant: Tenant) -> None:
    """A template that fails without its data (arithmetic on an absent value) is not refused."""
    assert save(client, tenant, html="{{ order.total * 1.2 }} {{ 1 / count }}").status_code == 201


@pytest.mark.parametrize(
    ("html", "data"),
    [
        ("{{ word * times }}", {"word": "x", "times": 10**9}),
        ("{% for a in items %}{% for b in items %}.{% endfor %}{% endfor %}", {"items": list(range(1000))}),
        ("{% for a in items %}{{ a }}{% endfor %}", {"items": ["x" * 1000] * 1001}),
    ],
)
def test_a_template_that_breaks_a_limit_with_its_data_is_refused_when_sent(
    client: Client, tenant: Tenant, html: str, data: dict[str, Any]
) -> None:
    template = save(client, tenant, html=html).json()
    problem = assert_problem(
        send(client, tenant, template_id=template["id"], data=data), 400, "root > template_id"
    )
    assert f"template {template['id']}" in problem["detail"]
    assert "html" in problem["detail"]


def test_a_given_body_and_a_stored_message_have_a_size_cap(client: Client, tenant: Tenant) -> None:
    assert_problem(send(client, tenant, subject="Hi", html="x" * (MAX_OUTPUT + 1)), 400, "root > html")
    # each link grows when it becomes a verified link: the stored message would be too large
    links = '<a href="https://example.com/">a</a>' * (MAX_OUTPUT // 40)
    problem = assert_problem(send(client, tenant, subject="Hi", html=links), 400, "root > html")
    assert "once its links" in problem["detail"]


def test_a_message_renders_in_the_sandbox(client: Client, tenant: Tenant) -> None:
    template = save(
        client, tenant, subject="For {{ name }}", html="<p>{{ name }}</p>", text="{{ name }}"
    ).json()
    reply = send(client, tenant, template_id=template["id"], data={"name": "<Ann>"})
    assert reply.status_code == 202, reply.text
    shown = read(client, tenant, f"/v2/transactional-email/{reply.json()['message_id']}")
    assert (shown["subject"], shown["html"], shown["text"]) == ("For <Ann>", "<p>&lt;Ann&gt;</p>", "<Ann>")


def test_slow_templates_do_not_hold_up_another_account(
    tmp_path: Path, patron_environment: dict[str, str]
) -> None:
    """One account sends templates that run out of time, again and again; another account's pushes,
    reads and emails are served meanwhile, and the first account's sends end in 400s, not 500s."""
    data_dir = tmp_path / "data"
    slow, other = (create_tenant_cli(data_dir, name, patron_environment) for name in ("slow", "other"))
    for tenant in (slow, other):
        limits = ["--data", "unlimited", "--push", "unlimited", "--email", "unlimited"]
        set_limits(data_dir, tenant.hash, *limits, environment=patron_environment)
    server = start_server(data_dir, environment=patron_environment)
    try:
        with server.client() as c:
            loop = {"subject": "x", "html": "{% for i in items %}{% set s = items|sum %}{% endfor %}"}
            template = c.post("/v2/templates", json=loop, headers=slow.headers).json()
            plain = c.post(
                "/v2/templates", json={"subject": "Hi", "html": "<p>Hi</p>"}, headers=other.headers
            ).json()
        stop = threading.Event()

        def keep_sending() -> list[int]:
            statuses = []
            body = {
                "from": SENDER,
                "to": TO,
                "template_id": template["id"],
                "data": {"items": list(range(99_999))},
            }
            with server.client() as c:
                while not stop.is_set():
                    response = c.post("/v2/transactional-email/send", json=body, headers=slow.headers)
                    statuses.append(response.status_code)
            return statuses

        with ThreadPoolExecutor(4) as senders:
            sending = [senders.submit(keep_sending) for _ in range(4)]
            with server.client() as c:
                for n in range(5):
                    push(c, other, [{"@type": "contact", "id": f"c{n}", "email": f"c{n}@example.com"}])
                    body = {"from": SENDER, "to": TO, "template_id": plain["id"], "sandbox": True}
                    sent = c.post("/v2/transactional-email/send", json=body, headers=other.headers)
                    assert sent.status_code == 202, sent.text
            stop.set()
            statuses = [status for future in sending for status in future.result()]
        assert statuses and set(statuses) == {400}
        assert not any('"status": 500' in line for line in server.log_lines())
    finally:
        server.stop()


def test_a_rendering_process_whose_server_is_gone_ends_its_job() -> None:
    """A job that runs on after the server that sent it is gone (which would have killed it) ends
    with its process, by the process's own alarm."""
    process = subprocess.Popen(
        [sys.executable, "-m", "patron.email.sandbox"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    assert process.stdin is not None
    job = msgspec.json.encode(Job([Part(SLOW, html=True)], {}))
    process.stdin.write(struct.pack(">I", len(job)) + job)
    process.stdin.close()  # the server is gone
    try:
        assert process.wait(timeout=60) == -signal.SIGALRM
    finally:
        process.kill()
        process.wait()
