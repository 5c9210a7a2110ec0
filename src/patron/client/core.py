"""What the sync and async clients share: addresses, query parameters, and what an answer means."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final
from urllib.parse import quote

from patron.client.errors import ApiError, ClientError, error_for
from patron.client.pacing import RETRIED_STATUSES, Retries, retry_after

AUTH_HEADER: Final = "X-Ometria-Auth"
#: A listing's largest page (Ometria's and Patron's).
PAGE_SIZE: Final = 250
#: The push errors' largest page (``GET /v2/push/_errors``).
ERRORS_PAGE_SIZE: Final = 1000
USER_AGENT: Final = "patron-client"


def api_root(base_url: str) -> str:
    """``https://host`` or ``https://host/v2`` (with or without a trailing slash) as the ``/v2`` root."""
    root = base_url.rstrip("/")
    return root if root.endswith("/v2") else f"{root}/v2"


def tls(verify: bool | str | ssl.SSLContext) -> bool | ssl.SSLContext:
    """What to trust: a CA file's path becomes a context trusting it (httpx deprecates a path)."""
    return ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify


def item_path(*segments: str) -> str:
    """A path whose segments are ids, each URL-encoded (``2024/0001`` as ``2024%2F0001``)."""
    return "/".join(quote(s, safe="") for s in segments)


def when(value: datetime | date | str | None) -> str | None:
    return value.isoformat() if isinstance(value, date) else value


def listing(
    offset: int, limit: int, *, since: str | None = None, orderby: str | None = None, **filters: Any
) -> dict[str, Any]:
    """A listing's query: its page, and the filters given (None: not sent)."""
    params = {"limit": limit, "offset": offset, "since": since, "orderby": orderby, **filters}
    return {k: _param(v) for k, v in params.items() if v is not None}


def _param(value: Any) -> Any:
    return str(value).lower() if isinstance(value, bool) else value


def problem_of(content: bytes) -> tuple[str, dict[str, Any]]:
    """An error answer's detail and problem document (any JSON object; text otherwise)."""
    try:
        found = json.loads(content)
    except ValueError:
        return content[:500].decode("utf-8", "replace") or "(no body)", {}
    if not isinstance(found, dict):
        return str(found)[:500], {}
    detail = found.get("detail") or found.get("title") or found.get("message") or "(no detail)"
    return str(detail), found


def verdict(status: int, headers: Mapping[str, str], content: bytes) -> tuple[float | None, ApiError] | None:
    """None when the answer is a success; a retry's wait (None: back off) and the error to raise if
    retrying runs out, for a 429 or a 5xx; raises the typed error of any other failure."""
    if status < 400:
        return None
    detail, problem = problem_of(content)
    error = error_for(status, detail, problem)
    if status not in RETRIED_STATUSES:
        raise error
    given = "retry-after" in headers
    return (retry_after(headers) if given else (1.0 if status == 429 else None)), error


@dataclass
class Attempts:
    """One request's tries: how long to wait before the next, until ``retries`` gives up."""

    retries: Retries
    count: int = 0
    started: float = field(default_factory=time.monotonic)

    def again(self, wait: float | None, error: ClientError) -> float:
        """The seconds to wait before trying again; raises ``error`` when it is time to give up."""
        if time.monotonic() - self.started > self.retries.give_up_after:
            raise error
        self.count += 1
        return wait if wait is not None else self.retries.backoff(self.count)


@dataclass(frozen=True)
class Listing:
    """One kind of listing: its path, its largest page, and the name of its ``since`` filter."""

    path: str
    page_size: int = PAGE_SIZE
    since: str = "since"

    def query(
        self, offset: int, limit: int, since: Any, orderby: str | None, filters: dict[str, Any]
    ) -> dict[str, Any]:
        return listing(
            offset, min(limit, self.page_size), orderby=orderby, **{self.since: when(since)}, **filters
        )


@dataclass
class Stats:
    """What a client has sent and been answered, for progress and benchmarks."""

    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    connection_failures: int = 0

    def answered(self, status: int) -> None:
        self.requests += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
