"""Reading a Prometheus text exposition the way a scraper would, for assertions from outside."""

from __future__ import annotations

import urllib.request


def samples(text: str) -> dict[str, float]:
    """Every sample of an exposition: `name{labels}` as written -> value."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def scrape(url: str, timeout_s: float = 5.0) -> dict[str, float]:
    """GET `url` (a /metrics endpoint) and return its samples."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return samples(response.read().decode())
