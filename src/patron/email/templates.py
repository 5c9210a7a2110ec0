"""Email templates (an extension: Ometria keeps them in its app), rendered with Jinja2's sandbox in
separate processes (``sandbox.py``).

HTML is autoescaped; the text body and the subject are not. A template is tried when it is saved, in
the sandbox and without data: one that does not compile, or that breaks a rendering limit whatever
its data (``{{ 'x' * 10**9 }}``, loops of millions of steps), is refused, naming the part.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

import msgspec
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import Connection, func, insert, select, update

from patron.email.sandbox import Part, Renderer, RenderFailed
from patron.errors import FieldError, Invalid
from patron.records.fields import MAX_NAME_LENGTH, NO_NUL_PATTERN
from patron.store.schema import templates

Source = Annotated[str, Meta(max_length=1_000_000, pattern=NO_NUL_PATTERN)]
#: The longest header line (RFC 5322: 998 characters, the line's end aside): a subject, a stream.
MAX_LINE: Final = 998
#: The largest template id (a PostgreSQL ``integer``).
MAX_TEMPLATE_ID: Final = 2**31 - 1
TemplateId = Annotated[int, Meta(ge=1, le=MAX_TEMPLATE_ID)]
#: The parts of a template, in the order they are rendered, and whether each is HTML.
PARTS = (("subject", False), ("html", True), ("text", False))


class TemplateInvalid(Invalid):
    """A template field does not compile (``field`` as a body path), or does not render; or a
    message's field does not check out."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", errors=[FieldError(field, message)])
        self.field = field
        self.message = message


class TemplateBody(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``POST /v2/templates`` and ``PUT /v2/templates/{id}``."""

    subject: Annotated[str, Meta(min_length=1, max_length=MAX_LINE, pattern=NO_NUL_PATTERN)]
    html: Source
    text: Source | None = None
    name: Annotated[str, Meta(max_length=MAX_NAME_LENGTH, pattern=NO_NUL_PATTERN)] | UnsetType = UNSET


class Template(msgspec.Struct):
    id: int
    name: str | None
    subject: str
    html: str
    text: str | None
    timestamp_created: str
    timestamp_updated: str


def parts(template: TemplateBody | Template) -> tuple[list[str], list[Part]]:
    """The names and the sandbox's parts of a template's parts that it has (a text body is optional)."""
    named = [(name, html, getattr(template, name)) for name, html in PARTS]
    present = [(name, html, source) for name, html, source in named if source is not None]
    return [name for name, _, _ in present], [Part(source, html) for _, html, source in present]


async def check(renderer: Renderer, body: TemplateBody) -> None:
    """Try every part in the sandbox without data; :class:`TemplateInvalid` names the part that does
    not compile or breaks a limit."""
    names, tried = parts(body)
    try:
        await renderer.render(tried, {}, trial=True)
    except RenderFailed as exc:
        field = "root" if exc.part is None else f"root > {names[exc.part]}"
        raise TemplateInvalid(field, exc.message) from exc


def _template(row: Any) -> Template:
    return Template(
        row.template_id,
        row.name,
        row.subject,
        row.html,
        row.text,
        row.created_at.isoformat(),
        row.updated_at.isoformat(),
    )


def create(conn: Connection, account_id: int, body: TemplateBody, at: datetime) -> Template:
    t = templates
    last = conn.execute(select(func.max(t.c.template_id)).where(t.c.account_id == account_id)).scalar()
    name = None if body.name is UNSET else body.name
    conn.execute(
        insert(t).values(
            account_id=account_id,
            template_id=(last or 0) + 1,
            name=name,
            subject=body.subject,
            html=body.html,
            text=body.text,
            created_at=at,
            updated_at=at,
        )
    )
    found = get(conn, account_id, (last or 0) + 1)
    assert found is not None
    return found


def replace(
    conn: Connection, account_id: int, template_id: int, body: TemplateBody, at: datetime
) -> Template | None:
    t = templates
    values: dict[str, Any] = {"subject": body.subject, "html": body.html, "text": body.text, "updated_at": at}
    if body.name is not UNSET:
        values["name"] = body.name
    done = conn.execute(
        update(t).where(t.c.account_id == account_id, t.c.template_id == template_id).values(**values)
    )
    return get(conn, account_id, template_id) if done.rowcount else None


def get(conn: Connection, account_id: int, template_id: int) -> Template | None:
    t = templates
    row = conn.execute(select(t).where(t.c.account_id == account_id, t.c.template_id == template_id)).first()
    return None if row is None else _template(row)


def list_templates(conn: Connection, account_id: int, limit: int, offset: int) -> list[Template]:
    t = templates
    rows = conn.execute(
        select(t).where(t.c.account_id == account_id).order_by(t.c.template_id).limit(limit).offset(offset)
    )
    return [_template(row) for row in rows]
