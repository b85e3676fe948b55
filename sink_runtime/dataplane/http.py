"""The data plane's HTTP endpoint: /metrics (Prometheus), /livez, /readyz, and one liveness
path per user-defined sink container (`/livez/<container>`, `sink_runtime.config.sink_liveness`).

A few lines of asyncio streams instead of a web framework: a few GET routes on the data plane's
own event loop, no extra dependency in the runtime image. Readiness and liveness are callbacks,
so the app decides what "ready" means (source connected and every sink reachable) and this
module only serves it. Each connection answers one request and closes (HTTP/1.1 with
`Connection: close`, which Prometheus and kubelet probes accept).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from sink_runtime.config import constants
from sink_runtime.dataplane.metrics import Metrics

logger = logging.getLogger(__name__)

# (ready, reason when not ready); the same shape answers /livez.
Readiness = Callable[[], tuple[bool, str]]


def _always_live() -> tuple[bool, str]:
    return True, ""


METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
_MAX_HEADER_LINES = 100
_READ_TIMEOUT_S = 10.0


def _response(status: int, body: bytes, content_type: str = _TEXT) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class HealthServer:
    """Serves metrics and probes on `host:port` (port 0 picks a free one: see `.port`)."""

    def __init__(
        self,
        metrics: Metrics,
        readiness: Readiness,
        *,
        liveness: Readiness = _always_live,
        sink_liveness: Mapping[str, Readiness] | None = None,
        host: str = "",
        port: int = constants.METRICS_PORT,
    ) -> None:
        self.metrics = metrics
        self.readiness = readiness
        self.liveness = liveness
        self.sink_liveness = dict(sink_liveness or {})  # path -> check
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen (once: calling it again while serving does nothing)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._handle, host=self.host or None, port=self.port
        )
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        logger.info(
            "serving /metrics, /livez, /readyz%s on %s:%d",
            "".join(f", {path}" for path in self.sink_liveness),
            self.host or "*",
            self.port,
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def answer(self, method: str, path: str) -> bytes:
        """The full HTTP response for one request line."""
        if method not in ("GET", "HEAD"):
            return _response(405, b"only GET is served\n")
        route = path.split("?", 1)[0]
        if route == constants.METRICS_PATH:
            body = self.metrics.exposition()
            return _response(200, body if method == "GET" else b"", METRICS_CONTENT_TYPE)
        if route == constants.LIVEZ_PATH:
            live, why = self.liveness()
            if live:
                return _response(200, b"ok\n")
            return _response(503, f"not live: {why}\n".encode())
        sink_check = self.sink_liveness.get(route)
        if sink_check is not None:
            live, why = sink_check()
            if live:
                return _response(200, b"ok\n")
            return _response(503, f"not live: {why}\n".encode())
        if route == constants.READYZ_PATH:
            ready, why = self.readiness()
            if ready:
                return _response(200, b"ready\n")
            return _response(503, f"not ready: {why}\n".encode())
        routes = ", ".join([constants.METRICS_PATH, constants.LIVEZ_PATH, constants.READYZ_PATH])
        routes += "".join(f", {path}" for path in self.sink_liveness)
        return _response(404, f"no route {route}; try {routes}\n".encode())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT_S):
                request_line = (await reader.readline()).decode("latin-1").split()
                for _ in range(_MAX_HEADER_LINES):
                    if (await reader.readline()) in (b"\r\n", b"\n", b""):
                        break
            if len(request_line) >= 2:
                writer.write(self.answer(request_line[0], request_line[1]))
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
