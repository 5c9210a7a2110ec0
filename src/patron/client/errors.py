"""What the client raises: one base class, and a kind for each way a request can fail for good."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Every error the client raises."""


class ApiError(ClientError):
    """The API answered with an error status: its problem details (RFC 9457) as far as given."""

    def __init__(self, status: int, detail: str, problem: dict[str, Any] | None = None) -> None:
        self.status = status
        self.detail = detail
        self.problem = problem or {}
        super().__init__(f"{status}: {detail}")

    @property
    def fields(self) -> list[str]:
        """The fields the problem names (``errors[].field``), if any."""
        found = self.problem.get("errors")
        if not isinstance(found, list):
            return []
        return [str(e["field"]) for e in found if isinstance(e, dict) and e.get("field") is not None]


class NotAuthorised(ApiError):
    """401 or 403: the key is wrong, revoked, or may not do this."""


class NotFound(ApiError):
    """404: no such record, profile or request."""


class InvalidRequest(ApiError):
    """A 4xx other than 401, 403, 404 and 429: the request itself is wrong (retrying will not help)."""


class RateLimited(ApiError):
    """429 still, once the retries allowed have run out."""


class ServerError(ApiError):
    """5xx still, once the retries allowed have run out."""


class ConnectionFailed(ClientError):
    """The server could not be reached (or stopped answering) through every retry allowed."""


def error_for(status: int, detail: str, problem: dict[str, Any] | None) -> ApiError:
    kind: type[ApiError]
    if status in (401, 403):
        kind = NotAuthorised
    elif status == 404:
        kind = NotFound
    elif status == 429:
        kind = RateLimited
    elif status >= 500:
        kind = ServerError
    else:
        kind = InvalidRequest
    return kind(status, detail, problem)
