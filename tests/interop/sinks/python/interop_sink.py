"""The interop test sink for the Python SDK (pynumaflow.sinker), run in pynumaflow's own venv.

The answer per datum comes from its `interop` header (see tests/interop/README.md); every datum
received is printed as one JSON line prefixed with `INTEROP ` so the test can count what the
sink saw. It runs unmodified: socket and server-info paths are the SDK's defaults.
"""

import json
import os
import threading
from collections.abc import Iterator

from pynumaflow.sinker import Datum, Message, Response, Responses, Sinker, SinkServer


class InteropSink(Sinker):
    def __init__(self, role: str) -> None:
        self.role = role
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def first_sight(self, id_: str) -> bool:
        with self.lock:
            new = id_ not in self.seen
            self.seen.add(id_)
            return new

    def answer(self, d: Datum) -> tuple[Response, str]:
        want = d.headers.get("interop", "ok") if self.role == "udsink" else "ok"
        if want == "fail-once" and self.first_sight(d.id):
            return Response.as_failure(d.id, "transient: try again"), "FAILURE"
        if want == "fallback":
            return Response.as_fallback(d.id), "FALLBACK"
        if want == "on-success":
            msg = Message(b"followup:" + d.value, keys=list(d.keys))
            return Response.as_on_success(d.id, msg), "ON_SUCCESS"
        return Response.as_success(d.id), "SUCCESS"

    def handler(self, datums: Iterator[Datum]) -> Responses:
        responses = Responses()
        for d in datums:
            response, status = self.answer(d)
            line = {
                "sdk": "python",
                "role": self.role,
                "id": d.id,
                "keys": list(d.keys),
                "value": d.value.decode(errors="replace"),
                "headers": dict(d.headers),
                "answer": status,
            }
            print("INTEROP " + json.dumps(line), flush=True)
            responses.append(response)
        return responses


if __name__ == "__main__":
    SinkServer(InteropSink(os.environ.get("NUMAFLOW_UD_CONTAINER_TYPE") or "udsink")).start()
