"""Registered domains of URLs, from the public-suffix snapshot bundled with tldextract (no network)."""

from __future__ import annotations

from functools import lru_cache

import tldextract

_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@lru_cache(maxsize=65536)
def registered_domain(url: str | None) -> str | None:
    """`https://news.example.co.uk/a` -> `example.co.uk`; None when there is no URL or no domain."""
    if not url:
        return None
    parts = _EXTRACT(url)
    if parts.domain and parts.suffix:
        return f"{parts.domain}.{parts.suffix}".lower()
    return parts.domain.lower() or None
