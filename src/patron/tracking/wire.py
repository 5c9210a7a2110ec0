"""The tag's wire format (reference section 9.4): ``data`` is base64 with the letters' case swapped,
of a PHP-style query string (``d[lis][0][pid]=...``, keys and values URI-encoded). Decoding never
raises: anything that is not a well-formed event is ``None``, and nothing of it is kept."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any
from urllib.parse import quote, unquote

import msgspec
from msgspec import Meta

#: The largest ``data`` accepted, in characters (a beacon URL is at most a few kilobytes).
MAX_DATA = 32_768
#: How deep and how wide an event's ``d`` may nest.
MAX_DEPTH, MAX_KEYS = 5, 400
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

Short = Annotated[str, Meta(max_length=200, pattern=_PRINTABLE)]
Id = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Url = Annotated[str, Meta(max_length=4096, pattern=_PRINTABLE)]
Count = Annotated[int, Meta(ge=0, le=10**12)]  # counts, and unix times (osts)


class Beacon(msgspec.Struct, kw_only=True):
    """One event as the tag sends it: the visitor and page fields, the event's name and its data."""

    type: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
    channel: str = "system"
    cid: Id
    sid: Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]
    cnew: Count = 0
    snew: Count = 0
    nses: Count = 0
    npv: Count = 0
    uiid: Annotated[str, Meta(max_length=300, pattern=_PRINTABLE)] | None = None
    url: Url | None = None
    rurl: Url | None = None
    src: Url | None = None
    osrc: Url | None = None
    osts: Count | None = None
    ecamp: Short | None = None
    tids: Url | None = None
    site: Short = "default"
    d: dict[str, Any] = {}


def _nested(pairs: list[tuple[str, str]]) -> dict[str, Any] | None:
    """``a[b][0]=v`` pairs as nested dicts (lists where every key of a level is an index)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        found = _KEY.match(key)
        if found is None:
            return None
        path = [found.group(1), *re.findall(r"\[([^\[\]]*)\]", found.group(2))]
        if len(path) > MAX_DEPTH + 1 or any(p == "" for p in path):
            return None
        node = root
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                return None
            node = child
        if isinstance(node.get(path[-1]), dict):
            return None
        node[path[-1]] = value
    shaped: dict[str, Any] = _lists(root)
    return shaped if isinstance(shaped, dict) else None


def _lists(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    items = {k: _lists(v) for k, v in value.items()}
    if items and all(k.isdigit() and len(k) < 6 for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def query(text: str) -> dict[str, Any] | None:
    """A PHP-style query string as nested values (``None`` if it is not one)."""
    pairs = []
    for part in text.split("&"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            return None
        pairs.append((unquote(key, errors="strict"), unquote(value, errors="strict")))
    if len(pairs) > MAX_KEYS:
        return None
    return _nested(pairs)


def unswap(data: str) -> str | None:
    """The query string a ``data`` value carries (its letters' case swapped back, then base64)."""
    text = data.replace(" ", "+").strip()  # a "+" that arrived unescaped was read as a space
    if not text or len(text) > MAX_DATA or not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", text):
        return None
    try:
        raw = base64.b64decode(text.swapcase() + "=" * (-len(text) % 4), validate=True)
        return raw.decode("ascii")
    except (binascii.Error, ValueError):
        return None


def decode(data: str) -> Beacon | None:
    """The event a beacon's ``data`` holds, or ``None`` for anything else."""
    try:
        text = unswap(data)
        fields = query(text) if text is not None else None
        if fields is None:
            return None
        if not isinstance(fields.get("d", {}), dict):
            return None
        return msgspec.convert(fields, Beacon, strict=False)
    except (msgspec.ValidationError, UnicodeDecodeError, ValueError, RecursionError):
        return None


def encode(event: dict[str, Any]) -> str:
    """The ``data`` the tag would send for ``event`` (for tests and the benchmark)."""
    pairs: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}[{k}]" if prefix else str(k), v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        elif value is not None:
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            pairs.append(f"{_uri(prefix)}={_uri(text)}")

    walk("", event)
    return base64.b64encode("&".join(pairs).encode("ascii")).decode().swapcase()


def _uri(text: str) -> str:
    """JavaScript's ``encodeURIComponent``."""
    return quote(text, safe="-_.!~*'()")
