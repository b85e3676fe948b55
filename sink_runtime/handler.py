"""What a sink author writes, and how the server calls it, apart from any gRPC.

A handler is a function or a `Sinker` subclass, sync or async, that gets one batch's datums
and answers with one Response per datum. This module turns any of those forms into one
awaitable call per batch (`HandlerRunner`), so the server's two wire paths (`sink.v1` and the
batch extension) drive every form the same way, and the error-isolation helper lives next to
the handler shapes it wraps.

Sync code (handler and hooks) runs on one dedicated worker thread, never on a pool: the
event loop stays free to answer IsReady and signals while a batch is written, there is no
GIL contention between handler threads, and thread-bound resources opened in setup() (a
SQLite connection, a client that is not thread-safe) are used from the thread that made them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeAlias, TypeVar, cast, overload

from sink_runtime.contract import check_results
from sink_runtime.logs import batch_fields
from sink_runtime.types import Datum, Response, Responses

log = logging.getLogger("sink_runtime.handler")

T = TypeVar("T")


class DatumIterator(Iterator[Datum], AsyncIterator[Datum]):
    """The datums of one batch, in source order, for one pass.

    Both a plain and an async iterator over the same position, so `for d in datums` works in
    every handler and `async for d in datums` works too (the form pynumaflow's async handlers
    use). The whole batch has arrived before the handler is called.
    """

    __slots__ = ("_it",)

    def __init__(self, datums: Iterable[Datum]) -> None:
        self._it = iter(datums)

    def __iter__(self) -> Iterator[Datum]:
        # The underlying iterator, not self: a `for` loop then runs at C speed instead of
        # calling __next__ below once per datum. It shares the position with this object.
        return self._it

    def __next__(self) -> Datum:
        return next(self._it)

    def __aiter__(self) -> DatumIterator:
        return self

    async def __anext__(self) -> Datum:
        try:
            return next(self._it)
        except StopIteration:
            raise StopAsyncIteration from None


class HandlerResultError(TypeError):
    """The handler's answer to a batch breaks the sink contract: it is not a collection of
    Responses, or not exactly one Response per datum echoing its id. The message names the
    handler, the batch size and the offending ids."""


SinkResult: TypeAlias = Iterable[Response]
SinkFunction: TypeAlias = Callable[[DatumIterator], SinkResult | Awaitable[SinkResult]]
"""`def sink(datums: Iterator[Datum]) -> Responses` or
`async def sink(datums: AsyncIterator[Datum]) -> Responses`."""


class Sinker:
    """Base class for a sink that holds resources (a connection pool, a client).

    Override `handler` (sync or async, same signature as a sink function); override `setup`
    and `close` (sync or async) to open resources once per process before the server
    listens and to release them once when it stops, also on SIGTERM.
    """

    def setup(self) -> Awaitable[None] | None:
        """Called once, before the server starts listening. An exception stops the server."""
        return None

    def close(self) -> Awaitable[None] | None:
        """Called once, after the server stopped (the in-flight batch is done)."""
        return None

    def handler(self, datums: DatumIterator) -> SinkResult | Awaitable[SinkResult]:
        """Write one batch; return exactly one Response per datum, echoing its id."""
        raise NotImplementedError(f"{type(self).__name__} must override Sinker.handler")


SinkHandler: TypeAlias = Sinker | SinkFunction
"""What serve() accepts: a sink function or a Sinker instance."""


# --- error isolation ---


def _failure(datum: Datum, error: Exception) -> Response:
    return Response.failure(datum.id, f"{type(error).__name__}: {error}")


def _log_isolated(name: str, failed: list[str], first: Exception | None, size: int) -> None:
    if failed:
        log.warning(
            "%s raised for %d of %d datums; those datums are answered FAILURE (first: %s: %s)",
            name,
            len(failed),
            size,
            type(first).__name__,
            first,
            extra=batch_fields(failed, batch_size=size),
        )


@overload
def isolate_errors(
    write_one: Callable[[Datum], Awaitable[Response]],
) -> Callable[[Iterable[Datum]], Awaitable[Responses]]: ...


@overload
def isolate_errors(
    write_one: Callable[[Datum], Response],
) -> Callable[[Iterable[Datum]], Responses]: ...


def isolate_errors(
    write_one: Callable[[Datum], Response] | Callable[[Datum], Awaitable[Response]],
) -> Callable[[Iterable[Datum]], Responses] | Callable[[Iterable[Datum]], Awaitable[Responses]]:
    """Turn a one-datum writer into a batch handler where one datum's exception fails only it.

    `write_one(datum) -> Response` (or an async one) is called for each datum in order; an
    Exception it raises becomes that datum's FAILURE with `"<ExceptionType>: <message>"` as
    the error, and the rest of the batch goes on. One warning per batch names the failed ids.
    Opt-in: without it, an exception fails the whole batch (the stream ends with INTERNAL and
    the client resends it). Use as a decorator, or inside a Sinker:
    `return isolate_errors(self.write_one)(datums)`.
    """
    name = getattr(write_one, "__qualname__", repr(write_one))
    if inspect.iscoroutinefunction(write_one):
        write_async = cast(Callable[[Datum], Awaitable[Response]], write_one)

        @functools.wraps(write_one)
        async def run_async(datums: Iterable[Datum]) -> Responses:
            out = Responses()
            failed: list[str] = []
            first: Exception | None = None
            for datum in datums:
                try:
                    out.append(await write_async(datum))
                except Exception as e:
                    out.append(_failure(datum, e))
                    failed.append(datum.id)
                    first = first or e
            _log_isolated(name, failed, first, len(out))
            return out

        return run_async

    write_sync = cast(Callable[[Datum], Response], write_one)

    @functools.wraps(write_one)
    def run(datums: Iterable[Datum]) -> Responses:
        out = Responses()
        failed: list[str] = []
        first: Exception | None = None
        for datum in datums:
            try:
                out.append(write_sync(datum))
            except Exception as e:
                out.append(_failure(datum, e))
                failed.append(datum.id)
                first = first or e
        _log_isolated(name, failed, first, len(out))
        return out

    return run


# --- calling a handler ---


def _describe(handler: SinkHandler) -> str:
    if isinstance(handler, Sinker):
        return type(handler).__qualname__
    return getattr(handler, "__qualname__", repr(handler))


def _is_async(fn: Callable[..., Any]) -> bool:
    # A callable object with an async __call__ counts as async too.
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


class HandlerRunner:
    """Calls one sink handler, whatever its form, once per batch and once per lifecycle hook.

    Sync calls go to a single worker thread; async calls run on the event loop. A sync
    function that returns an awaitable is awaited too, so decorated handlers just work.
    """

    def __init__(self, handler: SinkHandler) -> None:
        if isinstance(handler, Sinker):
            kind = type(handler)
            self._fn: SinkFunction = handler.handler
            # Hooks left as Sinker's no-ops are not called (no worker thread just for them).
            self._setup: Callable[[], Awaitable[None] | None] | None = (
                handler.setup if kind.setup is not Sinker.setup else None
            )
            self._close: Callable[[], Awaitable[None] | None] | None = (
                handler.close if kind.close is not Sinker.close else None
            )
        elif callable(handler):
            self._fn, self._setup, self._close = handler, None, None
        else:
            raise TypeError(
                f"sink handler must be a function or a Sinker instance, got {handler!r} "
                f"({type(handler).__name__})"
            )
        self.name = _describe(handler)
        self.is_async = _is_async(self._fn)
        self._worker: ThreadPoolExecutor | None = None

    def _thread(self) -> ThreadPoolExecutor:
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="udsink-sink")
        return self._worker

    async def _call(self, fn: Callable[[], T | Awaitable[T]], on_thread: bool) -> T:
        if on_thread:
            result = await asyncio.get_running_loop().run_in_executor(self._thread(), fn)
        else:
            result = fn()
        if inspect.isawaitable(result):
            return cast(T, await result)
        return result

    async def setup(self) -> None:
        if self._setup is not None:
            setup = self._setup
            await self._call(setup, on_thread=not _is_async(setup))

    async def close(self) -> None:
        """Run the close() hook, then release the worker thread."""
        try:
            if self._close is not None:
                close = self._close
                await self._call(close, on_thread=not _is_async(close))
        finally:
            await self.close_worker()

    async def close_worker(self) -> None:
        """Release the worker thread without calling close() (setup never completed)."""
        if self._worker is not None:
            self._worker.shutdown(wait=False)
            self._worker = None

    async def answer(self, datums: list[Datum]) -> list[Response]:
        """The handler's answer to one batch, checked against the sink contract.

        Raises HandlerResultError when the answer breaks the contract; an exception of the
        handler itself propagates unchanged.
        """
        responses = await self.run(datums)
        problem = self._contract_problem([d.id for d in datums], responses)
        if problem is not None:
            raise HandlerResultError(problem)
        return responses

    async def run(self, datums: list[Datum]) -> list[Response]:
        """The handler's answer to one batch, as a list (it may return any iterable)."""
        if self.is_async:
            answer = await cast(Awaitable[SinkResult], self._fn(DatumIterator(datums)))
            return self._listed(answer, len(datums))
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._thread(), self._run_sync, datums)
        if isinstance(result, list):
            return result
        return self._listed(await result, len(datums))

    def _run_sync(self, datums: list[Datum]) -> list[Response] | Awaitable[SinkResult]:
        # On the worker thread. A generator handler must also be consumed here, where it runs.
        result = self._fn(DatumIterator(datums))
        if inspect.isawaitable(result):
            return result
        return self._listed(result, len(datums))

    def _listed(self, answer: object, size: int) -> list[Response]:
        if answer is None:
            raise HandlerResultError(
                f"sink handler {self.name} returned None; it must return one Response per "
                f"datum (Responses, or any iterable of Response) (batch of {size} datums)"
            )
        try:
            return list(cast(SinkResult, answer))
        except TypeError:
            raise HandlerResultError(
                f"sink handler {self.name} returned a {type(answer).__name__}, which is not "
                f"iterable; it must return one Response per datum (Responses) (batch of {size} "
                "datums)"
            ) from None

    def _contract_problem(self, ids: list[str], responses: list[Response]) -> str | None:
        try:
            checked = check_results(ids, responses)
        except (AttributeError, TypeError):
            wrong = next((r for r in responses if not isinstance(r, Response)), None)
            return (
                f"sink handler {self.name} returned {wrong!r} ({type(wrong).__name__}) among "
                f"its results for a batch of {len(ids)} datums; expected only Response objects "
                f"(Response.ok(datum.id), Response.failure(datum.id, err), ...)"
            )
        if checked.ok:
            return None
        return (
            f"sink handler {self.name} broke the sink contract on a batch of {len(ids)} "
            f"datums: {checked.describe()}"
        )
