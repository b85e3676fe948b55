"""A local run itself: the sinks up, the data plane in-process, everything down again, and
how it ended (`Outcome`): a finite input's end, a sink that exited, a signal, a message that
never succeeded."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sink_runtime.dataplane.app import DataPlane
from sink_runtime.dataplane.metrics import Counts, Metrics, counts
from udsink_cli.run import DRAIN_S, OUTCOMES, STOP_BOUND_S
from udsink_cli.run.console import Output, headline, progress_line, stall_lines
from udsink_cli.run.plan import Plan
from udsink_cli.sidecars import SidecarError, SidecarProcess

if TYPE_CHECKING:
    from rich.console import Console

STOP_SIGNALS: Mapping[signal.Signals, tuple[str, str]] = {
    signal.SIGINT: ("interrupted", "interrupted (Ctrl-C)"),
    signal.SIGTERM: ("terminated", "terminated (SIGTERM)"),
    signal.SIGHUP: ("hung-up", "hung up (SIGHUP)"),
}
DEFAULT_STARTUP_TIMEOUT_S = 30.0
# When the run ends without a signal (the input ended, a sink exited, the budget ran out), the
# sinks get this long to exit after SIGTERM.
SINK_STOP_GRACE_S = 5.0


@dataclass
class Outcome:
    name: str
    reason: str

    @property
    def code(self) -> int:
        return OUTCOMES[self.name]


def run_summary(
    name: str | None,
    outcome: Outcome,
    *,
    counted: Counts | None = None,
    on_failure: str | None = None,
    abandoned: int = 0,
    never_succeeded: Mapping[str, str] | None = None,
    elapsed_s: float = 0.0,
    consumer_group: str | None = None,
) -> dict[str, Any]:
    """What --json prints, its first line (`headline`) first: the same keys on every exit
    path, counted or not (a run that never started counts zeros)."""
    c = counted or Counts()
    summary: dict[str, Any] = {
        "name": name,
        "outcome": outcome.name,
        "reason": outcome.reason,
        "exit_code": outcome.code,
        "on_failure": on_failure,
        "messages": c.messages(),
        "attempts": c.attempts(),
        "abandoned": abandoned,
        "never_succeeded": [
            {"id": i, "last": last} for i, last in sorted((never_succeeded or {}).items())
        ],
        "elapsed_s": round(elapsed_s, 3),
        "rate_per_s": round(c.read / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        # A Kafka source's group: the only one the run committed to.
        "consumer_group": consumer_group,
    }
    return {"headline": headline(summary), **summary}


class LocalRun:
    """The run itself: sinks up, data plane in-process, everything down again."""

    def __init__(
        self,
        plan: Plan,
        socket_dir: Path,
        *,
        output: Output,
        show_sinks: bool = True,
        startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
    ) -> None:
        self.plan = plan
        self.socket_dir = socket_dir
        self.output = output
        self.startup_timeout_s = startup_timeout_s
        self.metrics = Metrics()
        self.sinks = [
            SidecarProcess(
                ctype,
                cmd,
                socket_dir,
                cwd=plan.cwd_of(ctype),
                extra_env=plan.envs.get(ctype, {}),
                on_line=output.sink_line if show_sinks else None,
            )
            for ctype, cmd in plan.commands.items()
        ] + [
            SidecarProcess(
                ctype,
                [],
                socket_dir,
                image=img,
                on_line=output.sink_line if show_sinks else None,
            )
            for ctype, img in plan.images.items()
        ]
        self.outcome = Outcome("completed", "the input ended")
        self.started = time.monotonic()
        self.dataplane: DataPlane | None = None
        self.never_succeeded: dict[str, str] = {}
        self.abandoned = 0
        # Set once nothing is waited for any more (a second signal, the stop's bound).
        self._forced = asyncio.Event()
        self._stopping = asyncio.Event()
        self._dp_task: asyncio.Future[None] | None = None
        # When the run must have ended, set by the first stop signal (STOP_BOUND_S after it).
        self._deadline: float | None = None
        self._stopping_sinks = False

    def _stop(self, outcome: Outcome, *, abandon_in_flight: bool = False) -> None:
        """Stop once with `outcome` (the first reason stands); abandon: do not drain."""
        if not self._stopping.is_set():
            self.outcome = outcome
        self._stopping.set()
        if self.dataplane is not None:
            # Abandon when nothing more can come of the in-flight batch (its sink is gone, or
            # its messages only keep failing): it stays unacknowledged, nothing is committed.
            self.dataplane.stop(abandon_in_flight=abandon_in_flight)

    def _quit_now(self) -> None:
        """Cancel the data plane where it stands (the sinks are killed next); the in-flight
        batch stays unacknowledged."""
        self._forced.set()
        if self.dataplane is not None and self._dp_task is not None and not self._dp_task.done():
            self.abandoned = self.dataplane.in_flight
            self._dp_task.cancel()

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stopping.is_set() or self._stopping_sinks:
            # A second signal, or one while the sinks are being stopped: no more waiting.
            if not self._forced.is_set():
                self.output.line(
                    "udsink run: quitting at once: the in-flight batch stays uncommitted; "
                    "sinks are killed"
                )
                self._quit_now()
            return
        name, reason = STOP_SIGNALS[sig]
        self._stop(Outcome(name, reason))
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + STOP_BOUND_S
        loop.call_at(self._deadline, self._stop_bound_reached)
        waits = ""
        if self.dataplane is not None:
            waits = (
                f"the sink has up to {DRAIN_S:g}s to answer the in-flight batch "
                f"({self.dataplane.in_flight} messages; left uncommitted if it does not), then "
            )
        self.output.line(
            f"udsink run: stopping within {STOP_BOUND_S:g}s: {waits}every sink gets SIGTERM "
            f"and the rest of the {STOP_BOUND_S:g}s to exit before SIGKILL; Ctrl-C again to "
            "quit at once"
        )

    def _stop_bound_reached(self) -> None:
        """STOP_BOUND_S after the first signal: whatever still runs is cancelled or killed."""
        if self._dp_task is not None and not self._dp_task.done():
            self.output.line(
                f"udsink run: still stopping after {STOP_BOUND_S:g}s: quitting now; the "
                "in-flight batch stays uncommitted"
            )
            self._quit_now()

    async def _sinks_ready(self) -> bool:
        """Wait for every sink's server-info file; False when Ctrl-C/SIGTERM came first."""
        ready = asyncio.ensure_future(
            asyncio.gather(*(s.wait_ready(timeout_s=self.startup_timeout_s) for s in self.sinks))
        )
        stopping = asyncio.ensure_future(self._stopping.wait())
        either: set[asyncio.Future[Any]] = {ready, stopping}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if self._stopping.is_set():
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError, SidecarError):
                await ready
            return False
        await ready  # raises SidecarError when a sink did not come up
        return True

    async def _watch(self) -> None:
        """End the run when a sink exits, or when a finite input's messages only keep failing."""
        assert self.dataplane is not None
        forwarder = self.dataplane.forwarder
        give_up = self.plan.finite and forwarder.retry.on_failure == "retry"
        while True:
            for sink in self.sinks:
                code = sink.exit_code()
                if code is not None:
                    tail = "\n".join(f"  | {line}" for line in sink.stderr_tail()[-10:])
                    self._stop(
                        Outcome(
                            "sink-exited",
                            f"{sink.describe()} exited with code {code} while running; "
                            "nothing it had not answered was committed"
                            + (f"\nlast stderr lines:\n{tail}" if tail else ""),
                        ),
                        abandon_in_flight=True,
                    )
                    return
            exhausted = forwarder.exhausted_in_flight() if give_up else {}
            if exhausted:
                self.never_succeeded = exhausted
                self._stop(
                    Outcome(
                        "gave-up",
                        f"{len(exhausted)} messages still failed after "
                        f"{forwarder.retry.steps} retries (onFailure retry would retry them "
                        "forever; --on-failure drop or fallback decides otherwise)",
                    ),
                    abandon_in_flight=True,
                )
                return
            await asyncio.sleep(0.2)

    async def _show_progress(self, console: Console) -> None:
        from rich.console import Group
        from rich.live import Live
        from rich.text import Text

        assert self.dataplane is not None
        forwarder = self.dataplane.forwarder

        def display() -> Group:
            now = time.monotonic()
            lines = [progress_line(counts(self.metrics), now - self.started)]
            lines += stall_lines(forwarder.writing, now)
            return Group(*(Text(line, style="bold" if i else "") for i, line in enumerate(lines)))

        with Live(display(), console=console, refresh_per_second=4, transient=True) as live:
            while True:
                await asyncio.sleep(0.25)
                live.update(display())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)
        background: list[asyncio.Task[None]] = []
        try:
            for sink in self.sinks:
                sink.start()
            if not await self._sinks_ready():  # interrupted while the sinks were starting
                return
            self.dataplane = DataPlane(
                self.plan.config,
                metrics=self.metrics,
                serve_http=self.plan.config.observability.metrics_port != 0,
            )
            self.started = time.monotonic()
            background.append(asyncio.create_task(self._watch()))
            if self.output.console is not None:
                background.append(asyncio.create_task(self._show_progress(self.output.console)))
            self._dp_task = asyncio.ensure_future(self.dataplane.run())
            try:
                await self._dp_task
            except asyncio.CancelledError:
                this = asyncio.current_task()
                if this is not None and this.cancelling():
                    raise  # run() itself was cancelled, not just the data plane (_quit_now)
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._stop_sinks()
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
                # The run is over: a late signal must not cut the summary short.
                signal.signal(sig, signal.SIG_IGN)

    async def _stop_sinks(self) -> None:
        """SIGTERM to every sink, then SIGKILL to those still running when their time is up:
        SINK_STOP_GRACE_S, or what remains of STOP_BOUND_S after a stop signal, or none after
        a second signal."""
        self._stopping_sinks = True
        loop = asyncio.get_running_loop()
        grace = SINK_STOP_GRACE_S if self._deadline is None else self._deadline - loop.time()
        running = [s for s in self.sinks if s.running()]
        at_once = self._forced.is_set() or grace <= 0
        for sink in running:
            sink.send(signal.SIGKILL if at_once else signal.SIGTERM)
        # Each sink's exit is waited for in a thread; every one of them ends, by SIGKILL last.
        exited: asyncio.Future[Any] = asyncio.gather(*(asyncio.to_thread(s.wait) for s in running))
        if not at_once:
            forced: asyncio.Future[Any] = asyncio.ensure_future(self._forced.wait())
            await asyncio.wait({exited, forced}, timeout=grace, return_when=FIRST_COMPLETED)
            forced.cancel()
        for sink in running:
            if sink.running():
                if not self._forced.is_set():
                    self.output.line(
                        f"udsink run: the {sink.describe()} did not exit within {grace:.1f}s "
                        "of SIGTERM: killed"
                    )
                sink.send(signal.SIGKILL)
        await exited
        for sink in self.sinks:
            sink.finish()

    def report(self) -> dict[str, Any]:
        """The summary --json prints (`run_summary`)."""
        return run_summary(
            self.plan.config.name,
            self.outcome,
            counted=counts(self.metrics),
            on_failure=self.plan.config.retry_strategy.on_failure,
            abandoned=self.abandoned or (self.dataplane.abandoned if self.dataplane else 0),
            never_succeeded=self.never_succeeded,
            elapsed_s=time.monotonic() - self.started,
            consumer_group=getattr(self.plan.config.source, "consumer_group", None),
        )
