"""The services of the HTTP edge, typed: built once by ``app.create_app``, kept on the app's state as
one :class:`Edge` (read through :func:`edge_of`, as the guard does), and given to handlers as Litestar
dependencies by name: a handler declares ``store: Injected[Store]``, ``submit: Injected[Submitter]``...
(:meth:`Edge.dependencies` lists every name)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias, TypeVar

from litestar import Litestar
from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation

from patron.accounts import KeyResolver
from patron.api.observe import Metrics
from patron.config import Settings
from patron.email.sandbox import Renderer
from patron.ingest.submit import Submitter
from patron.ingest.supervisor import NoWorker, WorkerProcess
from patron.ratelimits import RateLimiter
from patron.store import Store
from patron.tracking.collect import Collector

T = TypeVar("T")
#: A handler parameter ``name: Injected[X]`` is given the edge's service of that name (a dependency by
#: name; Litestar refuses to start if there is none). Not validated: it is the app's own object.
Injected: TypeAlias = NamedDependency[SkipValidation[T]]
#: The key of the app's state that holds the edge.
EDGE = "edge"


@dataclass(frozen=True)
class Edge:
    """Everything the HTTP edge is built on, for the app's lifetime."""

    settings: Settings
    store: Store
    worker: WorkerProcess | NoWorker
    #: API keys to accounts, and the accounts' rate limits (the guard's).
    key_resolver: KeyResolver
    limiter: RateLimiter
    renderer: Renderer
    metrics: Metrics
    #: The import queue, and the tracking tag's collector.
    submit: Submitter
    collector: Collector

    def dependencies(self) -> dict[str, Provide]:
        """What handlers may be given, by parameter name."""
        services: dict[str, object] = {
            "store": self.store,
            "submit": self.submit,
            "renderer": self.renderer,
            "site": self.settings.site,
            "metrics": self.metrics,
            "collector": self.collector,
            "webhooks": self.settings.webhooks,
        }
        return {name: _constant(value) for name, value in services.items()}


def _constant(value: object) -> Provide:
    def provide() -> object:
        return value

    return Provide(provide, use_cache=True, sync_to_thread=False)


def edge_of(app: Litestar) -> Edge:
    """The edge of ``app`` (made by ``app.create_app``)."""
    edge = app.state[EDGE]
    if not isinstance(edge, Edge):  # pragma: no cover - only create_app puts it there
        raise TypeError(f"the app's {EDGE!r} is not an Edge")
    return edge
