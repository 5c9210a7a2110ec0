"""Runs the application under uvicorn: HTTPS by default, plain HTTP only ``--behind-proxy``."""

from __future__ import annotations

from collections.abc import Callable

import uvicorn

from patron.app import create_app
from patron.config import Settings
from patron.store import open_store
from patron.tls import TLSFiles, local_certificates, minimum_tls12


def tls_files(settings: Settings) -> TLSFiles:
    """The certificate to serve: the one given, or the generated localhost one."""
    if settings.tls_cert is not None and settings.tls_key is not None:
        return TLSFiles(settings.tls_cert, settings.tls_key, None)
    return local_certificates(settings.tls_dir)


def serve(settings: Settings, announce: Callable[[str], None]) -> None:
    store = open_store(settings)
    app = create_app(settings, store)
    common = {
        "host": settings.host,
        "port": settings.port,
        "access_log": False,
        "log_config": None,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    if settings.behind_proxy:
        config = uvicorn.Config(app, proxy_headers=True, **common)  # type: ignore[arg-type]
        announce(f"patron: plain HTTP on http://{settings.host}:{settings.port} for the proxy in front")
    else:
        files = tls_files(settings)
        config = uvicorn.Config(
            app,
            ssl_certfile=files.cert,
            ssl_keyfile=files.key,
            ssl_context_factory=minimum_tls12,
            proxy_headers=False,
            **common,  # type: ignore[arg-type]
        )
        announce(f"patron: serving https://{settings.host}:{settings.port}/v2 (docs at /v2/docs)")
        if files.ca is not None:
            announce(f"patron: clients trust the local CA at {files.ca.resolve()}")
    uvicorn.Server(config).run()
