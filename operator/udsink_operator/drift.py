"""Live versus desired: whether applying a child the operator built would change anything.

Kept apart from `build.py`, which only computes the desired state: this is the comparison the
reconcile makes against what the API server holds, so a second pass over an unchanged world
writes nothing. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def contains(live: Any, desired: Any) -> bool:
    """Whether `live` holds every field of `desired` with the same value. Extra live fields
    (defaults the API server filled in, status) do not count as a difference."""
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and contains(live[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(item, want) for item, want in zip(live, desired, strict=True))
        )
    return bool(live == desired)


def up_to_date(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Whether applying `desired` would change nothing. The applied-hash annotation is part
    of `desired`, so a field removed from the desired state is noticed too."""
    return live is not None and contains(live, desired)
