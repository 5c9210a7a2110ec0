"""Rendering templates in separate processes, within limits of output, loops, time and memory.

A template is a client's program: ``{{ 'x' * 10**9 }}`` or two nested loops of a hundred thousand
steps each would hold a thread, gigabytes of memory and, on the writer, every account's pushes. So
templates are never rendered in the server's own process. :class:`Renderer` keeps a few
``python -m patron.email.sandbox`` processes, each limited to :data:`MEMORY_BYTES` of address space,
and sends them one job at a time (the parts of one message and its data, as JSON over a pipe). In
the process, Jinja2's sandbox refuses string and list repetition past :data:`MAX_OUTPUT`, counts the
steps of every ``{% for %}`` against :data:`MAX_LOOP_STEPS`, and stops each part's output at
:data:`MAX_OUTPUT` characters. A job that runs past :data:`SECONDS` is killed with its process, and a
new process takes its place. The processes are shared fairly between accounts
(:class:`patron.store.fair.FairPool`): one account's slow templates wait for each other, not for
anyone else's.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any, Final

import msgspec
from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from patron.errors import Invalid
from patron.store.fair import Deadline, FairPool, owner

#: The most characters one rendered part (a subject, an HTML or a text body) may have.
MAX_OUTPUT: Final = 1_000_000
#: The most steps all the ``{% for %}`` loops of one part may take together.
MAX_LOOP_STEPS: Final = 100_000
#: Seconds one message's parts may take to render, together.
SECONDS: Final = 2.0
#: The address space of a rendering process.
MEMORY_BYTES: Final = 512 * 1024 * 1024
#: Rendering processes (each API process has its own).
PROCESSES: Final = 2
_LOOP_GUARD = "patron_loop_guard"
_FRAME = struct.Struct(">I")
#: What a rendering process writes once it has started (its imports done), before its first job: a
#: job's time is counted from there, so that a process's start never counts against a template.
_READY: Final = b"R"
#: Seconds a new rendering process may take to start.
STARTUP_SECONDS: Final = 60.0


class RenderFailed(Invalid):
    """A part (``None``: which is not known, as when time ran out) could not be rendered: ``limit``
    says whether it broke one of the limits (which no data can lift) rather than failed for the
    template and its data (an undefined name, an unsafe call). Callers name the part
    (``templates.TemplateInvalid``)."""

    def __init__(self, part: int | None, message: str, *, limit: bool) -> None:
        super().__init__(message)
        self.part = part
        self.message = message
        self.limit = limit


class Part(msgspec.Struct, array_like=True):
    source: str
    html: bool


class Job(msgspec.Struct):
    parts: list[Part]
    data: dict[str, Any]
    #: Try the parts without data, as when a template is saved: only a syntax error or a limit
    #: fails (what the data would supply is not known yet).
    trial: bool = False


class Outcome(msgspec.Struct, omit_defaults=True):
    rendered: list[str] | None = None
    failed_part: int = 0
    error: str | None = None
    limit: bool = False


# in the rendering process -----------------------------------------------------------------------


class _Limit(Exception):
    pass


class _Bounded(SandboxedEnvironment):
    """Jinja2's sandbox, with repetition and loops bounded."""

    intercepted_binops = frozenset(["*", "**"])

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(autoescape=autoescape, undefined=ChainableUndefined)
        self.steps = 0
        self.globals[_LOOP_GUARD] = self._counted

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """The template, each ``{% for %}`` taking its items through the step counter."""
        template = super()._parse(source, name, filename)
        for loop in template.find_all(nodes.For):
            loop.iter = nodes.Call(nodes.Name(_LOOP_GUARD, "load"), [loop.iter], [], None, None)
        return template

    def _counted(self, items: Any) -> Iterator[Any]:
        for item in items:
            self.steps += 1
            if self.steps > MAX_LOOP_STEPS:
                raise _Limit(f"its loops take more than {MAX_LOOP_STEPS:,} steps")
            yield item

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and any(
            isinstance(sequence, str | bytes | list | tuple)
            and isinstance(times, int)
            and len(sequence) * times > MAX_OUTPUT
            for sequence, times in ((left, right), (right, left))
        ):
            raise _Limit(f"it repeats a value into more than {MAX_OUTPUT:,} items")
        if operator == "**" and _huge_power(left, right):
            raise _Limit("it raises a number to a power too large to compute")
        return super().call_binop(context, operator, left, right)


def _huge_power(base: Any, exponent: Any) -> bool:
    """Whether ``base ** exponent`` is an integer of more than 100,000 bits."""
    if not (isinstance(base, int) and isinstance(exponent, int)) or abs(base) < 2:
        return False
    return exponent * abs(base).bit_length() > 100_000


def _render(part: Part, data: dict[str, Any]) -> str:
    environment = _Bounded(autoescape=part.html)
    template = environment.from_string(part.source)
    out: list[str] = []
    size = 0
    for chunk in template.generate(data):
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise _Limit(f"it renders more than {MAX_OUTPUT:,} characters")
        out.append(chunk)
    return "".join(out)


def run_job(job: Job) -> Outcome:
    """Render every part of ``job`` (in the rendering process)."""
    rendered = []
    for index, part in enumerate(job.parts):
        try:
            rendered.append(_render(part, job.data))
        except _Limit as exc:
            return Outcome(failed_part=index, error=str(exc), limit=True)
        except MemoryError:
            return Outcome(failed_part=index, error="it needs more memory than rendering may use", limit=True)
        except RecursionError:
            return Outcome(failed_part=index, error="it recurses too deeply", limit=True)
        except TemplateSyntaxError as exc:
            return Outcome(failed_part=index, error=f"line {exc.lineno}: {exc.message}")
        except Exception as exc:  # jinja2's UndefinedError and SecurityError, a filter's TypeError...
            if job.trial:  # without its data a template may well fail: only the limits count
                rendered.append("")
                continue
            return Outcome(failed_part=index, error=f"the template could not be rendered: {exc}")
    return Outcome(rendered=rendered)


def _serve() -> None:
    """The rendering process: jobs from standard input, outcomes to standard output."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    decode, encode = msgspec.json.Decoder(Job).decode, msgspec.json.Encoder().encode
    stdout.write(_READY)
    stdout.flush()
    while header := stdin.read(_FRAME.size):
        (length,) = _FRAME.unpack(header)
        # SIGALRM's default action ends the process: a job outlives the server's deadline only if
        # the server is gone (whose own deadline would have killed it)
        signal.alarm(math.ceil(SECONDS) + 3)
        outcome = run_job(decode(stdin.read(length)))
        signal.alarm(0)
        message = encode(outcome)
        stdout.write(_FRAME.pack(len(message)) + message)
        stdout.flush()


# in the server ----------------------------------------------------------------------------------


class _Process:
    """One rendering process and its pipes."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "patron.email.sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        self._decode = msgspec.json.Decoder(Outcome).decode
        self.ready = self._read(len(_READY), STARTUP_SECONDS) == _READY

    def run(self, message: bytes, seconds: float) -> Outcome | None:
        """The outcome of one job, or None if the process took longer than ``seconds`` or died (or
        never started)."""
        if not self.ready:
            return None
        try:
            self.stdin.write(_FRAME.pack(len(message)) + message)
            self.stdin.flush()
            header = self._read(_FRAME.size, seconds)
            return None if header is None else self._decode(self._read(_FRAME.unpack(header)[0], 5) or b"")
        except (OSError, ValueError, msgspec.DecodeError):
            return None

    def _read(self, size: int, seconds: float) -> bytes | None:
        fd = self.stdout.fileno()
        chunks, got = [], 0
        while got < size:
            ready, _, _ = select.select([fd], [], [], seconds)
            if not ready:
                return None
            chunk = os.read(fd, size - got)
            if not chunk:
                return None
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        self.process.wait()
        for pipe in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                pipe.close()


class Renderer:
    """The rendering processes of one API process, started when first needed."""

    def __init__(self, processes: int = PROCESSES, seconds: float = SECONDS) -> None:
        self.seconds = seconds
        self._count = processes
        self._idle: queue.SimpleQueue[_Process] = queue.SimpleQueue()
        self._pool: FairPool | None = None
        self._lock = threading.Lock()
        self._encode = msgspec.json.Encoder().encode

    def _started(self) -> FairPool:
        with self._lock:
            if self._pool is None:
                for _ in range(self._count):
                    self._idle.put(_Process())
                self._pool = FairPool(self._count, "patron-render")
            return self._pool

    def render_blocking(self, parts: list[Part], data: dict[str, Any], *, trial: bool = False) -> list[str]:
        """Render ``parts`` with ``data``; :class:`RenderFailed` names the part that failed (with
        ``trial``, without data: only a syntax error or a limit fails)."""
        self._started()
        message = self._encode(Job(parts, data, trial))
        process = self._idle.get()
        outcome = process.run(message, self.seconds)
        if outcome is None:  # too slow, or dead: the process goes, a new one takes its place
            process.kill()
            process = _Process()
        self._idle.put(process)
        if outcome is None:
            raise RenderFailed(None, f"it takes longer than {self.seconds:g} s to render", limit=True)
        if outcome.rendered is None:
            raise RenderFailed(outcome.failed_part, outcome.error or "", limit=outcome.limit)
        return outcome.rendered

    async def render(self, parts: list[Part], data: dict[str, Any], *, trial: bool = False) -> list[str]:
        """:meth:`render_blocking` off the event loop, queued fairly as the current request's account."""
        job = self._started().submit(
            lambda: self.render_blocking(parts, data, trial=trial), deadline=Deadline(None), who=owner.get()
        )
        return await asyncio.wrap_future(job)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        pool.shutdown()
        while True:
            try:
                self._idle.get_nowait().kill()
            except queue.Empty:
                return


if __name__ == "__main__":
    _serve()
