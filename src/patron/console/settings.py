"""The console's settings page: an account's API keys (with when each was last used), its rate and
queue limits, the domains its email's links may lead to, and the website tag to put on its shop.
An admin creates a key (shown once, on the answer to the form, never again) and revokes one, through
the same functions as the CLI (``patron.accounts``)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, PathParameter
from litestar.response import Redirect
from sqlalchemy import Connection

from patron import accounts, operators
from patron.api.edge import Injected
from patron.config import Site
from patron.console import pages_reads
from patron.console.accounts import AccountHash
from patron.console.render import page
from patron.console.session import PATH, Signed, require
from patron.store import Store

KeyId = Annotated[str, PathParameter(pattern=r"^key_[0-9a-f]{1,28}$", max_length=32)]
Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


def tag_snippet(site: Site, account_hash: str) -> str:
    """The element a shop puts on its pages to load the tag (``api/tracking.py`` serves it)."""
    return f'<script src="{site.base_url.rstrip("/")}/tags/{account_hash}.js" async></script>'


async def _settings_page(
    store: Store, session: Signed, site: Site, account_hash: str, **extra: Any
) -> Response[str]:
    def read(conn: Connection) -> tuple[accounts.Account, pages_reads.Settings]:
        account = operators.account_for(session.operator, conn, account_hash)
        return account, pages_reads.settings(conn, account)

    account, found = await store.read(read)
    return page(
        "settings.html",
        "Settings",
        session=session,
        account=account,
        settings=found,
        snippet=tag_snippet(site, account.hash),
        may_change=session.operator.may("admin"),
        **{"new_key": None, "new_key_id": None, **extra},
    )


@get(f"{PATH}/accounts/{{account_hash:str}}/settings", include_in_schema=False)
async def settings(
    account_hash: AccountHash, session: Signed, store: Injected[Store], site: Injected[Site]
) -> Response[str]:
    return await _settings_page(store, session, site, account_hash)


@post(f"{PATH}/accounts/{{account_hash:str}}/settings/keys", include_in_schema=False, status_code=201)
async def create_key(
    account_hash: AccountHash,
    checked: Signed,
    store: Injected[Store],
    site: Injected[Site],
    data: Form,
) -> Response[str]:
    """A new key, shown on this answer only (the page is not cached; only the key's hash is kept)."""
    require(checked, "admin")
    label = str(data.get("label", "")).strip()[: accounts.NAME_MAX]

    def create(conn: Connection) -> tuple[accounts.ApiKey, str]:
        account = operators.account_for(checked.operator, conn, account_hash)
        return accounts.create_key(conn, account.hash, label)

    made, key = await store.write(create)
    answer = await _settings_page(store, checked, site, account_hash, new_key=key, new_key_id=made.id)
    answer.status_code = 201
    return answer


@post(
    f"{PATH}/accounts/{{account_hash:str}}/settings/keys/{{key_id:str}}/revoke",
    include_in_schema=False,
    status_code=303,
)
async def revoke_key(
    account_hash: AccountHash, key_id: KeyId, checked: Signed, store: Injected[Store]
) -> Response[Any]:
    """Revoke a key of this account (another account's key is not found); it stops working within
    ``accounts.KEY_CACHE_SECONDS``."""
    require(checked, "admin")

    def revoke(conn: Connection) -> accounts.ApiKey:
        account = operators.account_for(checked.operator, conn, account_hash)
        return accounts.revoke_key(conn, key_id, account.hash)

    await store.write(revoke)
    return Redirect(f"{PATH}/accounts/{account_hash}/settings", status_code=303)


HANDLERS = [settings, create_key, revoke_key]
