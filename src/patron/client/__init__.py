"""A Python client of the Data API v2, for Patron or any Ometria-compatible server (docs/client.md).

from patron.client import Client

with Client("https://localhost:8443", key, verify="patron-data/tls/ca.pem") as api:
    result = api.push(records)          # one outcome per record, in their order
    for order in api.orders.iter(orderby="timestamp_update"):
        ...
"""

from patron.client.aio import AsyncClient
from patron.client.batching import MAX_RECORDS, MAX_REQUEST_BYTES, Outcome, PushResult
from patron.client.errors import (
    ApiError,
    ClientError,
    ConnectionFailed,
    InvalidRequest,
    NotAuthorised,
    NotFound,
    RateLimited,
    ServerError,
)
from patron.client.pacing import Retries
from patron.client.sync import Client

__all__ = [
    "MAX_RECORDS",
    "MAX_REQUEST_BYTES",
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientError",
    "ConnectionFailed",
    "InvalidRequest",
    "NotAuthorised",
    "NotFound",
    "Outcome",
    "PushResult",
    "RateLimited",
    "Retries",
    "ServerError",
]
