"""Runs the application under uvicorn: HTTPS by default, plain HTTP only ``--behind-proxy``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import uvicorn
from litestar import Litestar

from patron import connections, logs, memory, metrics
from patron.app import create_app
from patron.config import Settings
from patron.ingest.supervisor import WorkerProcess
from patron.store import open_store
from patron.tls import Served, TLSFiles, local_certificates

log = logging.getLogger("patron.server")


def tls_files(settings: Settings) -> TLSFiles:
    """The certificate to serve: the one given, or the generated localhost one."""
    if settings.tls_cert is not None and settings.tls_key is not None:
        return TLSFiles(settings.tls_cert, settings.tls_key, None)
    return local_certificates(settings.tls_dir)


@dataclass(frozen=True)
class ServingContext:
    """uvicorn's ``ssl_context_factory`` (in each API process): the certificate's context, refusing
    anything older than TLS 1.2, and a look at the certificate every ``check_every`` seconds on the
    process's event loop (:meth:`patron.tls.Served.check`: renewed when due, loaded again when its files
    changed), so that a server running for years never serves an expired certificate."""

    files: TLSFiles
    check_every: float

    def __call__(self, _config: object, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        served = Served(self.files)
        context = served.make_context(default_factory)
        try:
            loop = asyncio.get_running_loop()  # uvicorn loads its config on the server's loop
        except RuntimeError:
            return context
        loop.call_later(self.check_every, self._check, loop, served)
        return context

    def _check(self, loop: asyncio.AbstractEventLoop, served: Served) -> None:
        try:
            served.check()
        except Exception:  # a full disk, a removed file: said, and tried again at the next look
            log.exception("the certificate could not be checked")
        loop.call_later(self.check_every, self._check, loop, served)


SETTINGS_VARIABLE = "PATRON_SERVE_SETTINGS"


def app_from_environment() -> Litestar:
    """The app of one of the API processes of ``patron serve --workers N`` (uvicorn imports it)."""
    fields = json.loads(os.environ[SETTINGS_VARIABLE])
    for name in ("data_dir", "tls_cert", "tls_key", "metrics_dir"):
        fields[name] = Path(fields[name]) if fields[name] else None
    settings = Settings(**fields)
    logs.configure(os.environ.get("PATRON_LOG_LEVEL", "INFO"))
    metrics.share(settings.resolved_metrics_dir)
    return _settled_app(settings)


def _settled_app(settings: Settings) -> Litestar:
    """An API process's app, with its connections' limits, and the garbage collector set up once
    startup is done."""
    connections.configure(settings)
    app = create_app(settings, open_store(settings))
    memory.settle()
    return app


def serve(settings: Settings, announce: Callable[[str], None]) -> None:
    # Every process of this server (and the worker it starts) counts in the metric files, from which
    # any API process answers /metrics; files of processes that have gone are removed.
    metrics.share(settings.resolved_metrics_dir, clean=True)
    several = settings.api_processes > 1
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "access_log": False,
        "log_config": None,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
        # Deadlines for heads, bodies and TLS handshakes, a cap per address, and an answer to plain HTTP
        # on the HTTPS port (named, for --workers).
        # No WebSockets (Patron serves none): an upgrade would take the connection from its protocol.
        "http": "patron.connections:Connection",
        "loop": "patron.connections:new_event_loop",
        "ws": "none",
    }
    if settings.behind_proxy:
        common["proxy_headers"] = True
        announce(f"patron: plain HTTP on http://{settings.host}:{settings.port} for the proxy in front")
    else:
        files = tls_files(settings)  # the generated certificate is made, or renewed when due, here
        common.update(
            ssl_certfile=files.cert,
            ssl_keyfile=files.key,
            ssl_context_factory=ServingContext(files, settings.tls_check),
            proxy_headers=False,
        )
        announce(f"patron: serving https://{settings.host}:{settings.port}/v2 (docs at /v2/docs)")
        if files.ca is not None:
            announce(f"patron: clients trust the local CA at {files.ca.resolve()}")
    if not several:
        uvicorn.Server(uvicorn.Config(_settled_app(settings), **common)).run()
        return
    # N API processes, each with its own store and app, and one worker for them all, started here.
    children = replace(settings, run_worker=False)
    os.environ[SETTINGS_VARIABLE] = json.dumps(
        {k: str(v) if isinstance(v, Path) else v for k, v in asdict(children).items()}
    )
    worker = WorkerProcess(settings, woken_by_pipe=False) if settings.run_worker else None
    if worker is not None:
        worker.start()
    try:
        announce(f"patron: {settings.api_processes} API processes")
        uvicorn.run(
            "patron.server:app_from_environment", factory=True, workers=settings.api_processes, **common
        )
    finally:
        if worker is not None:
            worker.stop()
