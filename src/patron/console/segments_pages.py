"""The console's segments: an account's segments (name, size, status, last checked), a segment's
page (its rules, its members 50 a page, its entries and exits newest first), and an admin's form to
create one (with a dry-run count first, htmx), change it and delete it. Rules are checked, counted
and saved by the same domain functions as ``/v2/segments`` (``profiles.segments``,
``segments``), and saving queues the build as the API does."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, PathParameter, QueryParameter
from litestar.response import Redirect
from sqlalchemy import Connection

from patron import accounts, operators, segments
from patron.api.edge import Injected
from patron.console import pages_reads, segment_reads
from patron.console.accounts import AccountHash
from patron.console.render import page
from patron.console.session import PATH, Signed, require
from patron.errors import Invalid, NotFound
from patron.ingest.submit import Submitter
from patron.profiles.segments import evaluate, members
from patron.profiles.segments import rules as r
from patron.records.validate import split_error
from patron.store import Store

SegmentId = Annotated[int, PathParameter(ge=1, le=10**18 - 1)]
Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
SEGMENTS = f"{PATH}/accounts/{{account_hash:str}}/segments"
ONE = f"{SEGMENTS}/{{segment_id:int}}"
#: The longest rule text a form may send (a rule's bounds keep real ones far shorter).
MAX_RULE_TEXT = 20_000
_body = msgspec.json.Decoder(r.SegmentBody)


def _url(account_hash: str, segment_id: int | str | None = None) -> str:
    return f"{PATH}/accounts/{account_hash}/segments" + (f"/{segment_id}" if segment_id else "")


def _missing(segment_id: int) -> NotFound:
    return NotFound.at("segment_id", f"no segment {segment_id} in this account")


def parsed(data: dict[str, str]) -> tuple[str, r.Rule]:
    """A form's name and rule, checked as ``POST /v2/segments`` checks its body: ``Invalid`` naming
    the path of the first bad part (``rules.all[2].op``)."""
    name, text = str(data.get("name", "")), str(data.get("rules", ""))
    if len(text) > MAX_RULE_TEXT:
        raise Invalid.at("rules", f"is longer than {MAX_RULE_TEXT:,} characters")
    try:
        rules = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise Invalid.at("rules", f"is not JSON: {exc}") from None
    except RecursionError:
        raise Invalid.at("rules", "is nested too deeply") from None
    try:
        body = msgspec.convert({"name": name, "rules": rules}, r.SegmentBody)
    except msgspec.ValidationError as exc:
        raise Invalid.at(*split_error(str(exc))) from None
    return body.name, r.parse(body.rules)


@get(SEGMENTS, include_in_schema=False)
async def segments_list(
    account_hash: AccountHash,
    session: Signed,
    store: Injected[Store],
    offset: Annotated[int, QueryParameter(ge=0, le=members.MAX_SEGMENTS)] = 0,
) -> Response[str]:
    def read(conn: Connection) -> tuple[accounts.Account, tuple[list[members.SegmentView], bool]]:
        account = operators.account_for(session.operator, conn, account_hash)
        return account, segment_reads.segments_page(conn, account.id, offset)

    account, (found, more) = await store.read(read)
    return page(
        "segments.html",
        "Segments",
        session=session,
        account=account,
        segments=found,
        more=more,
        offset=offset,
        page_size=pages_reads.PAGE,
        admin=session.operator.may("admin"),
    )


async def _form(
    store: Store,
    session: Signed,
    account_hash: str,
    *,
    status: int = 200,
    segment_id: int | None = None,
    name: str = "",
    rules: str = "",
    problem: str | None = None,
) -> Response[str]:
    account = await store.read(lambda conn: operators.account_for(session.operator, conn, account_hash))
    return page(
        "segment_form.html",
        "Change the segment" if segment_id else "New segment",
        status=status,
        session=session,
        account=account,
        segment_id=segment_id,
        name=name,
        rules=rules,
        problem=problem,
    )


@get(f"{SEGMENTS}/new", include_in_schema=False)
async def new_segment(account_hash: AccountHash, session: Signed, store: Injected[Store]) -> Response[str]:
    require(session, "admin")
    example = '{"all": [\n  {"field": "stats.orders", "op": "gte", "value": 1}\n]}'
    return await _form(store, session, account_hash, rules=example)


@post(f"{SEGMENTS}/count", include_in_schema=False, status_code=200)
async def count(
    account_hash: AccountHash, checked: Signed, store: Injected[Store], data: Form
) -> Response[str]:
    """How many profiles the form's rule holds now (a part of the form, htmx), as ``POST
    /v2/segments?dry_run=true`` counts them; nothing is saved."""
    try:
        _, rule = parsed(data)
    except Invalid as exc:
        return page("segment_count.html", "Count", status=400, count=None, problem=exc.detail)
    at = accounts.now()

    def read(conn: Connection) -> int:
        account = operators.account_for(checked.operator, conn, account_hash)
        return evaluate.count(conn, account.id, rule, at)

    return page("segment_count.html", "Count", count=await store.read(read), problem=None)


@post(SEGMENTS, include_in_schema=False, status_code=303)
async def create(
    account_hash: AccountHash,
    checked: Signed,
    store: Injected[Store],
    submit: Injected[Submitter],
    data: Form,
) -> Response[Any]:
    """A new segment, its build queued (as ``POST /v2/segments``); a bad rule changes nothing."""
    require(checked, "admin")
    try:
        name, rule = parsed(data)
    except Invalid as exc:
        return await _form(
            store,
            checked,
            account_hash,
            status=400,
            name=data.get("name", ""),
            rules=data.get("rules", ""),
            problem=exc.detail,
        )

    def save(conn: Connection, _: int | None) -> int:
        account = operators.account_for(checked.operator, conn, account_hash)
        return segments.create(conn, account.id, name, rule, accounts.now())

    try:
        segment_id = await submit.queue(save, limit=None)
    except members.TooManySegments as exc:
        return await _form(
            store,
            checked,
            account_hash,
            status=409,
            name=name,
            rules=data.get("rules", ""),
            problem=exc.detail,
        )
    return Redirect(_url(account_hash, segment_id), status_code=303)


@get(ONE, include_in_schema=False)
async def one_segment(
    account_hash: AccountHash,
    segment_id: SegmentId,
    session: Signed,
    store: Injected[Store],
    after: Annotated[str | None, QueryParameter(max_length=32)] = None,
    before: Annotated[int | None, QueryParameter(ge=1)] = None,
) -> Response[str]:
    def read(conn: Connection) -> tuple[accounts.Account, segment_reads.Segment, Any, Any]:
        account = operators.account_for(session.operator, conn, account_hash)
        found = segment_reads.one_segment(conn, account.id, segment_id)
        if found is None:
            raise _missing(segment_id)
        return (
            account,
            found,
            segment_reads.segment_members_page(conn, account.id, segment_id, after),
            segment_reads.changes_page(conn, account.id, segment_id, before),
        )

    account, found, (joined, following), (changes, older) = await store.read(read)
    return page(
        "segment.html",
        f"Segment {found.view.name}",
        session=session,
        account=account,
        segment=found,
        members=joined,
        following=following,
        after=after,
        changes=changes,
        older=older,
        before=before,
        admin=session.operator.may("admin"),
    )


@get(f"{ONE}/edit", include_in_schema=False)
async def edit(
    account_hash: AccountHash, segment_id: SegmentId, session: Signed, store: Injected[Store]
) -> Response[str]:
    require(session, "admin")

    def read(conn: Connection) -> segment_reads.Segment:
        account = operators.account_for(session.operator, conn, account_hash)
        found = segment_reads.one_segment(conn, account.id, segment_id)
        if found is None:
            raise _missing(segment_id)
        return found

    found = await store.read(read)
    return await _form(
        store, session, account_hash, segment_id=segment_id, name=found.view.name, rules=found.text
    )


@post(ONE, include_in_schema=False, status_code=303)
async def change(
    account_hash: AccountHash,
    segment_id: SegmentId,
    checked: Signed,
    store: Injected[Store],
    submit: Injected[Submitter],
    data: Form,
) -> Response[Any]:
    """New name and rules, the segment built again (as ``PUT /v2/segments/{id}``)."""
    require(checked, "admin")
    try:
        name, rule = parsed(data)
    except Invalid as exc:
        return await _form(
            store,
            checked,
            account_hash,
            status=400,
            segment_id=segment_id,
            name=data.get("name", ""),
            rules=data.get("rules", ""),
            problem=exc.detail,
        )

    def save(conn: Connection, _: int | None) -> bool:
        account = operators.account_for(checked.operator, conn, account_hash)
        return segments.change(conn, account.id, segment_id, name, rule, accounts.now())

    if not await submit.queue(save, limit=None):
        raise _missing(segment_id)
    return Redirect(_url(account_hash, segment_id), status_code=303)


@get(f"{ONE}/delete", include_in_schema=False)
async def confirm_delete(
    account_hash: AccountHash, segment_id: SegmentId, session: Signed, store: Injected[Store]
) -> Response[str]:
    """The question before a segment is deleted (nothing is done until it is answered)."""
    require(session, "admin")

    def read(conn: Connection) -> tuple[accounts.Account, segment_reads.Segment]:
        account = operators.account_for(session.operator, conn, account_hash)
        found = segment_reads.one_segment(conn, account.id, segment_id)
        if found is None:
            raise _missing(segment_id)
        return account, found

    account, found = await store.read(read)
    return page(
        "confirm_segment_deletion.html",
        "Delete this segment?",
        session=session,
        account=account,
        segment=found.view,
    )


@post(f"{ONE}/delete", include_in_schema=False, status_code=303)
async def delete(
    account_hash: AccountHash, segment_id: SegmentId, checked: Signed, store: Injected[Store], data: Form
) -> Response[Any]:
    """Delete the segment, its members and its changes (as ``DELETE /v2/segments/{id}``)."""
    require(checked, "admin")
    if data.get("confirm") != "yes":
        return page(
            "problem.html", "Not done", status=409, detail="The deletion was not confirmed: nothing was done."
        )

    def remove(conn: Connection) -> bool:
        account = operators.account_for(checked.operator, conn, account_hash)
        return members.remove(conn, account.id, segment_id)

    if not await store.write(remove):
        raise _missing(segment_id)
    return Redirect(_url(account_hash), status_code=303)


HANDLERS = [segments_list, new_segment, count, create, one_segment, edit, change, confirm_delete, delete]
