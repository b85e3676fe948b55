"""The owner thread: one thread that runs typed jobs for a worker only it holds.

A client handle that must be called from one thread at a time (the Kafka consumer: a second
thread calling in can deadlock against a rebalance callback that waits for it) gets a worker
object holding the handle and everything that goes with it. Only the owner thread calls the
worker; the event loop hands it jobs and awaits their replies. No Kafka client here: the
pieces are tested broker-free (tests/unit/test_owner_thread.py).

What crosses threads, and how, is a type:
- `Job` subclasses carry their arguments and a `Reply`, a one-shot answer settled from any
  thread onto the loop that made it, at most once (the first answer wins; an answer to a
  cancelled or settled reply is dropped).
- `Shared` holds one value the owner thread publishes and the loop reads, replaced whole
  under a lock (a snapshot, never a half-written one).
- `Inside` is what a job may use of the thread while it runs: `beat()` (a sign of life between
  calls into the handle) and `jobs_waiting` (a long job ends early so a queued one is not held
  up). `stalled_for()` is how long the thread has been inside one job without a beat.

Stopping: `stop()` queues the end after the jobs already queued; the worker's `stopped()` runs
on the owner thread as its last act, so what only the worker holds (waiting acks) is settled
there, never from the loop while the thread may still be inside a job.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
J = TypeVar("J", bound="Job[Any]")
J_contra = TypeVar("J_contra", bound="Job[Any]", contravariant=True)


class Reply(Generic[T]):
    """A one-shot answer, made on the event loop (inside a coroutine), settled from any thread."""

    __slots__ = ("_future", "_loop")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._future: asyncio.Future[T] = self._loop.create_future()

    @property
    def future(self) -> asyncio.Future[T]:
        return self._future

    @property
    def abandoned(self) -> bool:
        """The awaiting coroutine gave up (it was cancelled): nothing needs doing."""
        return self._future.cancelled()

    def settle(self, result: T) -> None:
        self._loop.call_soon_threadsafe(_answer, self._future, result, None)

    def fail(self, exc: BaseException) -> None:
        self._loop.call_soon_threadsafe(_answer, self._future, None, exc)


def _answer(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # cancelled, or answered already
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


@dataclass(eq=False)
class Job(Generic[T]):
    """A job for the owner thread; subclasses add their arguments. Made on the event loop."""

    reply: Reply[T] = field(init=False, default_factory=Reply, repr=False)


class Shared(Generic[T]):
    """One value written by one thread and read by others, replaced whole."""

    __slots__ = ("_lock", "_value")

    def __init__(self, value: T) -> None:
        self._lock = threading.Lock()
        self._value = value

    def get(self) -> T:
        with self._lock:
            return self._value

    def set(self, value: T) -> None:
        with self._lock:
            self._value = value

    def update(self, change: Callable[[T], T]) -> None:
        with self._lock:
            self._value = change(self._value)


class Worker(Protocol[J_contra]):
    """What the owner thread runs; every method is called on the owner thread only."""

    def perform(self, job: J_contra) -> None:
        """Do `job` and settle its reply (now, or later from another job's work)."""
        ...

    def idle(self) -> None:
        """Background work while no job is queued (after waiting `idle_wait()`)."""
        ...

    def idle_wait(self) -> float:
        """How long to wait for a job before running `idle()` (asked anew each time)."""
        ...

    def stopped(self) -> None:
        """The last act on the owner thread: settle whatever replies the worker still holds."""
        ...


class Inside:
    """What a running job may use of its thread (see the module doc)."""

    def __init__(self, jobs: queue.SimpleQueue[Any]) -> None:
        self._jobs = jobs
        self._busy_since: Shared[float | None] = Shared(None)

    @property
    def jobs_waiting(self) -> bool:
        return not self._jobs.empty()

    def beat(self) -> None:
        self._busy_since.update(lambda since: None if since is None else time.monotonic())

    def busy(self) -> None:
        self._busy_since.set(time.monotonic())

    def done(self) -> None:
        self._busy_since.set(None)

    def stalled_for(self) -> float:
        since = self._busy_since.get()
        return 0.0 if since is None else max(0.0, time.monotonic() - since)


class OwnerThread(Generic[J]):
    """Runs jobs one at a time, in order, on one thread (see the module doc).

    `stopped_error` makes the exception `submit()` raises once `stop()` was called; failures
    of background work and of stopping are logged to `log`, prefixed with `label`.
    """

    def __init__(
        self,
        name: str,
        stopped_error: Callable[[], Exception],
        *,
        log: logging.Logger = logger,
        label: str = "owner thread",
    ) -> None:
        self._log = log
        self._label = label
        self._jobs: queue.SimpleQueue[J | None] = queue.SimpleQueue()
        self.inside = Inside(self._jobs)
        self._stopped_error = stopped_error
        self._stopped = False
        self._worker: Worker[J] | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self, worker: Worker[J]) -> None:
        """Start the thread; from now on only it calls `worker`."""
        self._worker = worker
        self._thread.start()

    def submit(self, job: J) -> None:
        """Queue `job` (made on the running loop); await `job.reply.future` for its answer."""
        if self._stopped:
            raise self._stopped_error()
        self._jobs.put(job)

    def stalled_for(self) -> float:
        return self.inside.stalled_for()

    def stop(self) -> None:
        """Let the thread end once the jobs queued before this are done."""
        self._stopped = True
        self._jobs.put(None)

    async def join(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the thread to end; whether it has."""
        if self._thread.is_alive():
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, timeout_s)
        return not self._thread.is_alive()

    def _main(self) -> None:
        worker = self._worker
        assert worker is not None  # start() sets it before the thread runs
        while True:
            try:
                job = self._jobs.get(timeout=worker.idle_wait())
            except queue.Empty:
                self._run_idle(worker)
                continue
            if job is None:
                self._run(worker.stopped, "stopping")
                return
            if job.reply.abandoned:
                continue  # abandoned before it started: nothing was done for it
            self.inside.busy()
            try:
                worker.perform(job)
            except BaseException as exc:  # handed to the awaiting coroutine
                job.reply.fail(exc)
            finally:
                self.inside.done()
                job = None  # its arguments (a batch) are not kept while the next job waits

    def _run_idle(self, worker: Worker[J]) -> None:
        self.inside.busy()
        try:
            self._run(worker.idle, "background refresh")
        finally:
            self.inside.done()

    def _run(self, step: Callable[[], None], what: str) -> None:
        try:
            step()
        except Exception:
            self._log.exception("%s: %s failed", self._label, what)


__all__ = ["Inside", "Job", "OwnerThread", "Reply", "Shared", "Worker"]
