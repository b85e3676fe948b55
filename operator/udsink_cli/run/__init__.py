"""`udsink run`: one UDSink on a laptop, no cluster and no Kafka needed.

It reads the same UDSink file a user applies to a cluster, turns it into the RuntimeConfig the
operator would put in the pod (udsink_operator.build), starts each user-defined sink as a local
subprocess on a socket in a private temp directory (the pod's shared emptyDir, in miniature),
and runs the real data plane in-process. What differs from a pod is only where things come
from: the sink's local command (or its image in the local container engine), and the source
(the file's generator, a reachable Kafka, or `--input` JSON lines). Unmodified Numaflow SDK
sinks see that directory at /var/run/numaflow (udsink_cli.isolation). A sink with no local
command runs from its image (`--sink-image`, else the UDSink's container image) with docker or
podman. The rules a user reads are in `EPILOG` (`udsink run --help`); docs/sdk.md repeats them
with examples.

A local run is a tool a person watches: every sink's output appears, prefixed by its role;
the progress display shows a sink that stopped answering; a finite input always ends (a message
that keeps failing past its retry budget ends the run, naming its id); a second Ctrl-C quits at
once; and no sink outlives the run. Counts use the metrics module's names (`Counts`).

The command's rooms: `plan` turns the file and the flags into what runs (pure, apart from
reading files), `session` runs it (sinks up, data plane in-process, everything down again),
`console` shows it (live progress, sink output, the summary), `command` parses the arguments
and ties the three together. This module holds what all of them share: the error a user
reads, and the exit codes.
"""

from __future__ import annotations

from collections.abc import Mapping

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
# The JSON summary's `outcome` is one of these; the exit code follows from it. Free text (which
# sink, which error) goes to `reason`.
OUTCOMES: Mapping[str, int] = {
    "completed": EXIT_OK,  # the input ended; every message read reached an outcome
    "gave-up": EXIT_FAILED,  # a finite input's messages kept failing past the retry budget
    "sink-exited": EXIT_FAILED,  # a sink process ended while the run needed it
    # The run could not start or go on: a sink that never came up, brokers that do not
    # answer, the data plane's own error.
    "failed": EXIT_FAILED,
    "invalid": EXIT_USAGE,  # the file, its YAML, the UDSink, an --input line or an option
    "hung-up": 129,  # SIGHUP (the terminal closed)
    "interrupted": 130,  # SIGINT (Ctrl-C)
    "terminated": 143,  # SIGTERM
}
OUTCOME_OF_CODE: Mapping[int, str] = {EXIT_FAILED: "failed", EXIT_USAGE: "invalid"}

# A stop signal (Ctrl-C, SIGTERM, SIGHUP) ends a run within STOP_BOUND_S: the in-flight batch
# gets DRAIN_S of it to be answered and committed, then the sinks get SIGTERM and the rest of
# the time to exit before SIGKILL. A second signal quits at once.
STOP_BOUND_S = 10.0
SINK_EXIT_S = 2.0
DRAIN_S = STOP_BOUND_S - SINK_EXIT_S


class RunError(Exception):
    """Something a newcomer can fix; the message is the one line (or block) they read."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code

    @property
    def outcome(self) -> str:
        return OUTCOME_OF_CODE[self.code]
