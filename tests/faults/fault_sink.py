"""A sink process that misbehaves on cue, for the fault-injection tier.

It speaks `sink.v1` only (what every Numaflow SDK sink speaks), straight from the generated
stubs, so it can break the conversation in ways no SDK server would: answer late (`slow`, by
`--delay` seconds), hang in the handler, never send the EOT, stream results without end,
answer a batch twice. It behaves for the first `--after` batches, misbehaves for the next
`--times` batches (0: for good), then behaves again. `--fallback-over N` answers FALLBACK
for every datum whose value is longer than N bytes. `--per-datum S` makes every batch take S
seconds per datum (a slow or a fast sink); `--stall S` makes the batch after a SIGUSR1 take S
seconds longer (a stall on cue, for the test to time it). Every datum it answers SUCCESS is
appended to `--record` as `<unix time> <id>`, flushed before the answer is sent, so the test
counts deliveries from the sink's side, not from the data plane's objects: what the file holds
at any moment covers everything answered by then.

Run as `python fault_sink.py --dir D --mode MODE ...`; it serves `D/sink.sock` and writes
`D/sinker-server-info` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from sink_runtime import serverinfo
from sink_runtime.config import constants
from sink_runtime.proto import sink_pb2, sink_pb2_grpc

MODES = ("ok", "slow", "hang", "no-eot", "endless", "double")
_EOT = sink_pb2.SinkResponse(status=sink_pb2.TransmissionStatus(eot=True))


class FaultSink(sink_pb2_grpc.SinkServicer):
    def __init__(self, args: argparse.Namespace) -> None:
        self.mode: str = args.mode
        self.after: int = args.after
        self.times: int = args.times
        self.delay_s: float = args.delay
        self.fallback_over: int = args.fallback_over
        self.per_datum_s: float = args.per_datum
        self.stall_s: float = args.stall
        self.stall_next = False  # set by SIGUSR1: the next batch stalls `stall_s` first
        self.record = Path(args.record).open("a", buffering=1)  # noqa: SIM115 - for the process
        self.batches = 0

    async def IsReady(self, request: Any, context: Any) -> sink_pb2.ReadyResponse:
        return sink_pb2.ReadyResponse(ready=True)

    def _misbehaving(self) -> bool:
        n = self.batches - self.after  # this batch's number among the faulty ones (1-based)
        return self.mode != "ok" and n >= 1 and (self.times == 0 or n <= self.times)

    def _ok(self, batch: list[tuple[str, int]]) -> sink_pb2.SinkResponse:
        now = time.time()
        big = self.fallback_over
        taken = [i for i, size in batch if not (big and size > big)]
        self.record.write("".join(f"{now:.6f} {i}\n" for i in taken))
        return sink_pb2.SinkResponse(
            results=[
                sink_pb2.SinkResponse.Result(id=i, status=sink_pb2.SUCCESS)
                if not (big and size > big)
                else sink_pb2.SinkResponse.Result(
                    id=i, status=sink_pb2.FALLBACK, err_msg=f"{size} bytes is over {big}"
                )
                for i, size in batch
            ]
        )

    async def _take_time(self, count: int) -> None:
        delay = count * self.per_datum_s
        if self.stall_next:
            self.stall_next = False
            delay += self.stall_s
        if delay > 0:
            await asyncio.sleep(delay)

    async def SinkFn(
        self, request_iterator: AsyncIterator[sink_pb2.SinkRequest], context: Any
    ) -> AsyncIterator[sink_pb2.SinkResponse]:
        first = True
        ids: list[tuple[str, int]] = []
        async for req in request_iterator:
            if first:
                first = False
                yield sink_pb2.SinkResponse(handshake=sink_pb2.Handshake(sot=True))
                continue
            if not (req.HasField("status") and req.status.eot):
                ids.append((req.request.id, len(req.request.value)))
                continue
            self.batches += 1
            batch, ids = ids, []
            await self._take_time(len(batch))
            if not self._misbehaving():
                yield self._ok(batch)
                yield _EOT
                continue
            match self.mode:
                case "slow":
                    await asyncio.sleep(self.delay_s)
                    yield self._ok(batch)
                    yield _EOT
                case "hang":
                    await asyncio.Event().wait()
                case "no-eot":
                    yield self._ok(batch)
                    await asyncio.Event().wait()
                case "endless":
                    yield self._ok(batch)
                    while True:
                        yield self._ok(batch)
                        await asyncio.sleep(0)
                case "double":
                    answer = self._ok(batch)
                    yield answer
                    yield _EOT
                    yield answer
                    yield _EOT


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--after", type=int, default=0)
    parser.add_argument("--times", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--fallback-over", type=int, default=0)
    parser.add_argument("--per-datum", type=float, default=0.0)
    parser.add_argument("--stall", type=float, default=0.0)
    parser.add_argument("--record", required=True)
    args = parser.parse_args()
    directory = Path(args.dir)
    server = grpc.aio.server()
    servicer = FaultSink(args)
    sink_pb2_grpc.add_SinkServicer_to_server(servicer, server)
    server.add_insecure_port(f"unix:{directory / constants.SOCKET_FILES['udsink']}")
    await server.start()
    serverinfo.write_server_info(
        str(directory / constants.SERVER_INFO_FILES["udsink"]),
        serverinfo.ServerInfo(
            protocol="uds",
            language="python",
            minimum_numaflow_version=constants.MINIMUM_NUMAFLOW_VERSION,
            version="0.1.0",
            metadata={},
        ),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: setattr(servicer, "stall_next", True))
    await stop.wait()
    await server.stop(0)


if __name__ == "__main__":
    asyncio.run(main())
