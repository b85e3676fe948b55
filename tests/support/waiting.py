"""The one way tests wait: poll a condition until it holds, or fail naming what was awaited.

`until` (threads, subprocesses) and `until_async` (inside an event loop) poll `check` every
`every` seconds until it returns something truthy, and return that value. They fail with an
AssertionError when `within` seconds pass (naming `what`, the last value, and `details()`),
or at once when `abort()` returns a reason (a process that exited, say). A check that raises
one of `tolerate` counts as not yet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _Poll:
    def __init__(
        self,
        what: str,
        within: float,
        details: Callable[[], str] | None,
        abort: Callable[[], str | None] | None,
        tolerate: tuple[type[BaseException], ...],
    ) -> None:
        self.what, self.within = what, within
        self.details, self.abort, self.tolerate = details, abort, tolerate
        self.deadline = time.monotonic() + within
        self.last: Any = None

    def attempt(self, check: Callable[[], T | None]) -> T | None:
        try:
            self.last = check()
        except self.tolerate as err:
            self.last = err
            return None
        return self.last if self.last else None

    def give_up(self) -> None:
        """Raises when the wait is over without the condition."""
        reason = self.abort() if self.abort is not None else None
        if reason is None and time.monotonic() < self.deadline:
            return
        why = reason or f"not within {self.within:g}s"
        text = f"{why}: {self.what} (last: {self.last!r})"
        if self.details is not None:
            text += "\n" + self.details()
        raise AssertionError(text)


def until(
    check: Callable[[], T | None],
    what: str,
    *,
    within: float,
    every: float = 0.1,
    details: Callable[[], str] | None = None,
    abort: Callable[[], str | None] | None = None,
    tolerate: tuple[type[BaseException], ...] = (),
) -> T:
    """`check()`'s first truthy value, polled every `every` s for at most `within` s."""
    poll = _Poll(what, within, details, abort, tolerate)
    while True:
        found = poll.attempt(check)
        if found is not None:
            return found
        poll.give_up()
        time.sleep(every)


async def until_async(
    check: Callable[[], T | None],
    what: str,
    *,
    within: float,
    every: float = 0.1,
    details: Callable[[], str] | None = None,
    abort: Callable[[], str | None] | None = None,
    tolerate: tuple[type[BaseException], ...] = (),
) -> T:
    """`until` for a coroutine: the event loop runs between polls."""
    poll = _Poll(what, within, details, abort, tolerate)
    while True:
        found = poll.attempt(check)
        if found is not None:
            return found
        poll.give_up()
        await asyncio.sleep(every)
