"""A local run itself: the sinks up, the data plane in-process, everything down again, and
how it ended (`Outcome`): a finite input's end, a sink that exited, a signal, a message that
never succeeded."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sink_runtime.dataplane.app import DataPlane
from sink_runtime.dataplane.metrics import Metrics, counts
from udsink_cli.run import OUTCOMES
from udsink_cli.run.console import Output, headline, progress_line, stall_lines
from udsink_cli.run.plan import SHUTDOWN_GRACE_S, Plan
from udsink_cli.sidecars import SidecarError, SidecarProcess

if TYPE_CHECKING:
    from rich.console import Console

STOP_SIGNALS: Mapping[signal.Signals, tuple[str, str]] = {
    signal.SIGINT: ("interrupted", "interrupted (Ctrl-C)"),
    signal.SIGTERM: ("terminated", "terminated (SIGTERM)"),
    signal.SIGHUP: ("hung-up", "hung up (SIGHUP)"),
}
DEFAULT_STARTUP_TIMEOUT_S = 30.0


@dataclass
class Outcome:
    name: str
    reason: str

    @property
    def code(self) -> int:
        return OUTCOMES[self.name]


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
        self.forced = False
        self._stopping = asyncio.Event()
        self._dp_task: asyncio.Future[None] | None = None

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
        """The second Ctrl-C: cancel the data plane where it stands (the sinks are killed next);
        the in-flight batch stays unacknowledged."""
        if self.dataplane is not None and self._dp_task is not None and not self._dp_task.done():
            self.abandoned = self.dataplane.in_flight
            self._dp_task.cancel()

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self._stopping.is_set():
            name, reason = STOP_SIGNALS[sig]
            self._stop(Outcome(name, reason))
            if self.dataplane is not None:
                self.output.line(
                    f"udsink run: stopping: finishing the in-flight batch (up to "
                    f"{SHUTDOWN_GRACE_S:g}s); Ctrl-C again to quit at once"
                )
            return
        if self.forced:
            return
        self.forced = True
        self.output.line(
            "udsink run: quitting at once: the in-flight batch stays uncommitted; sinks are killed"
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
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
            for sink in self.sinks:
                sink.stop(grace_s=0.0 if self.forced else 5.0)

    def summary(self) -> dict[str, Any]:
        c = counts(self.metrics)
        elapsed = time.monotonic() - self.started
        abandoned = self.abandoned or (self.dataplane.abandoned if self.dataplane else 0)
        return {
            "name": self.plan.config.name,
            "outcome": self.outcome.name,
            "reason": self.outcome.reason,
            "exit_code": self.outcome.code,
            "on_failure": self.plan.config.retry_strategy.on_failure,
            "messages": c.messages(),
            "attempts": c.attempts(),
            "abandoned": abandoned,
            "never_succeeded": [
                {"id": i, "last": last} for i, last in sorted(self.never_succeeded.items())
            ],
            "elapsed_s": round(elapsed, 3),
            "rate_per_s": round(c.read / elapsed, 1) if elapsed > 0 else 0.0,
            # The Kafka source's group: the only one this run committed to.
            "consumer_group": getattr(self.plan.config.source, "consumer_group", None),
        }

    def report(self) -> dict[str, Any]:
        """The summary with its first line (`headline`) first: what --json prints."""
        summary = self.summary()
        return {"headline": headline(summary), **summary}
