"""Traffic sources: the tag's ``src`` and ``osrc`` (``refdomain|term|medium|campaign|source|content|
day``) split into their parts. A source the tag left without a medium is classified: a search engine's
referrer is ``organic``, another site's ``referral``, none ``direct``."""

from __future__ import annotations

import re

import msgspec

_SEARCH = re.compile(r"(^|\.)(google|bing|duckduckgo|yahoo|ecosia|baidu|yandex|qwant)\.", re.IGNORECASE)


class Source(msgspec.Struct, omit_defaults=True):
    referring_domain: str | None = None
    term: str | None = None
    medium: str | None = None
    campaign: str | None = None
    source: str | None = None
    content: str | None = None


def parse(text: str | None) -> Source | None:
    """The parts of a source string; ``None`` for none."""
    if not text:
        return None
    parts = [p.strip() or None for p in text.split("|")[:6]]
    parts += [None] * (6 - len(parts))
    found = Source(*parts)
    if found.medium is None:
        domain = found.referring_domain
        found.medium = "direct" if not domain else "organic" if _SEARCH.search(domain + ".") else "referral"
        found.source = found.source or domain or "direct"
    return found


def encode(source: Source | None) -> str | None:
    return None if source is None else msgspec.json.encode(source).decode()
