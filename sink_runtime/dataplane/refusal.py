"""A Kafka refusal that lasts ends the process, its reason left where the pod's status shows it.

Brokers that refuse this client (a wrong password, an unknown user, an untrusted CA, a missing
client certificate, TLS against a plaintext listener) do not heal by waiting, unlike brokers
that are away. /readyz and the log say why from the first refusal (`explain_failure`); once
the refusal has lasted `KAFKA_REFUSED_LIMIT_S` without a successful connection in between,
the data plane stops as on SIGTERM (the in-flight batch finished and acknowledged, nothing
else read), writes the reason to the container's termination message file and exits with
`EXIT_KAFKA_REFUSED`. The kubelet keeps the message in the pod's container status, where the
operator reads it into the UDSink's Ready condition, and starts the container again, which
reads the mounted Secret files afresh. The reason names UDSink fields and Secret keys, never
a secret's value.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# How often the refusal is looked at (seconds).
POLL_S = 1.0


@dataclass
class RefusalClock:
    """How long the brokers have refused without a break; `due` once past `limit_s`."""

    limit_s: float
    since: float | None = None

    def due(self, reason: str, now: float) -> bool:
        """Record what is refused now ("" for nothing); True once it has lasted `limit_s`."""
        if not reason:
            self.since = None
            return False
        if self.since is None:
            self.since = now
        return now - self.since >= self.limit_s


def ending_message(reason: str, limit_s: float) -> str:
    """The termination message: what was refused, for how long, and what happens next."""
    return (
        f"kafka refused the connection for {limit_s:.0f}s: {reason}; the runtime exited and "
        "restarts, reading the Secret files again"
    )


def write_termination_message(path: str, message: str) -> bool:
    """Write `message` to the termination message file the kubelet provides. Outside a pod
    the file does not exist and nothing is written (False)."""
    target = Path(path)
    if not target.is_file():
        return False
    try:
        target.write_text(message, encoding="utf-8")
    except OSError as err:
        logger.warning("cannot write the termination message to %s: %s", path, err)
        return False
    return True


async def stop_on_refusal(
    refused: Callable[[], str],
    stop: Callable[[], None],
    *,
    limit_s: float,
    poll_s: float = POLL_S,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Wait until `refused()` has named a refusal for `limit_s` without a break, log it, call
    `stop`; the termination message."""
    watch = RefusalClock(limit_s)
    while True:
        reason = refused()
        if watch.due(reason, clock()):
            break
        await asyncio.sleep(poll_s)
    message = ending_message(reason, limit_s)
    logger.error("%s; stopping after the in-flight batch", message)
    stop()
    return message
