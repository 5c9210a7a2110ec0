"""``patron serve``'s worker process: started with the server, woken after each push, restarted if it
dies, and stopped, after its current round, with the server.

The server wakes the worker by writing a byte to the worker's standard input. When the server dies,
even by SIGKILL, that pipe ends and the worker exits after its current round, so no orphan is left
beside the next server's worker (which would be safe anyway: a round commits only if every batch in
it is still queued).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading

from patron.config import Settings
from patron.metrics import process_ended

log = logging.getLogger("patron.worker")
RESTART_DELAY = 1.0


class NoWorker:
    """``patron serve --no-worker``: the workers run on their own (on PostgreSQL they are woken by
    ``LISTEN/NOTIFY``)."""

    def start(self) -> None:
        pass

    def wake(self) -> None:
        pass

    def stop(self) -> None:
        pass


class WorkerProcess:
    """One ``patron worker``, woken through its standard input after each push; or, when the pushes
    arrive in other processes (``patron serve --workers N``), by ``LISTEN/NOTIFY`` on PostgreSQL and
    by a look at the queue every fifth of a second on SQLite."""

    def __init__(self, settings: Settings, *, woken_by_pipe: bool = True) -> None:
        self._piped = woken_by_pipe
        self._command = [
            sys.executable,
            "-m",
            "patron",
            "--data-dir",
            str(settings.data_dir),
            *(["--database-url", settings.database_url] if settings.database_url else []),
            "worker",
            *(["--wake-stdin", "--idle-poll", "1"] if woken_by_pipe else ["--idle-poll", "0.2"]),
        ]
        self._environment = {
            **os.environ,
            **({"PATRON_SMTP_URL": settings.smtp_url} if settings.smtp_url else {}),
            "PATRON_SMTP_BACKOFF": str(settings.smtp_backoff),
            "PATRON_SMTP_LEASE": str(settings.smtp_lease),
            "PATRON_SESSION_IDLE": str(settings.session_idle),
        }
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._supervisor is not None:
            return
        self._stopping.clear()
        self._spawn()
        self._supervisor = threading.Thread(target=self._supervise, name="patron-supervisor", daemon=True)
        self._supervisor.start()

    def _spawn(self) -> None:
        with self._lock:
            stdin = subprocess.PIPE if self._piped else subprocess.DEVNULL
            self._process = subprocess.Popen(self._command, stdin=stdin, env=self._environment)
            if self._process.stdin is not None:
                os.set_blocking(self._process.stdin.fileno(), False)

    def _supervise(self) -> None:
        while True:
            assert self._process is not None
            code = self._process.wait()
            process_ended(self._process.pid)
            if self._stopping.is_set():
                return
            log.error("the worker process exited; restarting it", extra={"exit_code": code})
            if self._stopping.wait(RESTART_DELAY):
                return
            self._spawn()

    def wake(self) -> None:
        """Tell the worker there is work; never blocks (a full pipe already holds a wake-up)."""
        with self._lock:
            stdin = self._process.stdin if self._process is not None else None
            if stdin is not None and not stdin.closed:
                with contextlib.suppress(BlockingIOError, BrokenPipeError):
                    os.write(stdin.fileno(), b"\0")

    def stop(self, timeout: float = 30) -> None:
        """Let the worker finish its round and exit; kill it if it has not within ``timeout``."""
        self._stopping.set()
        with self._lock:
            process = self._process
            if process is not None and process.stdin is not None:
                process.stdin.close()  # the pipe's end tells the worker to finish its round and go
            elif process is not None:
                process.terminate()  # so does SIGTERM
        if process is not None:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._supervisor is not None:
            self._supervisor.join()
            self._supervisor = None
