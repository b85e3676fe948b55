"""End to end through the data plane: Kafka -> sink -> commit, against a bare consumer ceiling.

A topic on a real broker is pre-filled with N keyed records (split key headers, `--value-size`
bytes each); then, one at a time and each with a fresh consumer group, these drain it:

- `ceiling`: a bare confluent-kafka consume loop in its own process (no processing, an async
  commit per batch): what librdkafka + Python can read here at all;
- `blackhole`: the data plane with the blackhole sink (source + forwarder, no sink I/O);
- `udsink-batch`: the data plane feeding a no-op sink served by our SDK
  (bench/sdk_noop_sink.py) over the batch extension `udsink.v1.BatchSink`;
- `udsink-v1`: the same sink over `sink.v1` (`useBatchExtension: false`);
- `pynumaflow-v1`: the data plane feeding a no-op sink served by pynumaflow's sync server
  (bench/pynumaflow_sink_server.py, in pynumaflow's own venv) over `sink.v1`;
- `go-v1`, `rust-v1`, `java-v1`: the data plane feeding the interop tier's numaflow-go /
  Rust `numaflow` / numaflow-java sink (tests/interop/sinks, answering SUCCESS, its per-datum
  output off with INTEROP_QUIET=1) over `sink.v1`, run unmodified in a private
  /var/run/numaflow (udsink_cli.isolation). Built for speed unless told otherwise: the Rust
  sink as a release build (`--rust-build debug` takes the tests' debug build instead, which
  CI has already built), the JVM with its optimizing JIT tier;
- `kafka-kafka`: the data plane writing every record to a second topic with the Kafka sink
  (split key headers, record key set);
- `kafka-kafka-eos`: the `kafka-kafka` row with `exactlyOnce` (each batch and its offsets in one
  Kafka transaction, batches one at a time), reported against `kafka-kafka`: its cost;
- `kafka-ceiling`: a bare confluent-kafka loop in its own process that consumes a batch,
  produces each record to a second topic with its key and headers (the data plane's producer
  settings: idempotent, `acks=all`), flushes, then commits the batch: what librdkafka + Python
  can move from topic to topic here at all, with the Kafka sink's at-least-once order of work;
- `blackhole-tls`, `blackhole-sasl-ssl`, `kafka-kafka-tls`, `kafka-kafka-sasl-ssl`: the
  `blackhole` and `kafka-kafka` rows with the data plane's source (and Kafka sink) connected
  over the broker's SSL listener, or its SASL_SSL listener with SCRAM-SHA-512
  (tests/support/kafka_broker.py's secured listeners; certificates and users made per run),
  each reported against its plaintext row;
- `numaflow+blackhole`, `numaflow+blackhole-backoff10`, `numaflow+go-v1`, `numaflow+rust-v1`:
  Numaflow's own data plane (tests/support/numaflow_peer.py finds the binary outside the
  repository) with its blackhole sink (with librdkafka's default fetch backoff, and with ours)
  or the same Go / Rust interop sink as `go-v1` / `rust-v1`, given the environment a
  MonoVertex pod gets, measured as our rows are. Asking for any of them runs the whole bench,
  its own broker included, in a private network namespace (see `rerun_in_private_network`);
- `grpc-v1`: no Kafka and no data plane: this process pushes pre-built `sink.v1` requests
  (the same values and headers, batches of `--batch` + EOT) through one bidi stream to the
  thinnest sink.v1 server (bench/thin_sink_server.py): the ceiling of the sink.v1 path.

Each row is reported as a fraction of its matching ceiling: `ceiling` for the rows that only
read (blackhole), `kafka-ceiling` for the one that reads and writes Kafka (kafka-kafka),
`blackhole` for the batch path (the data plane without a sink), `grpc-v1` for the sink.v1 rows.
The last column but one puts every row with a sink over `blackhole` too, so the sink.v1 rows
and the batch extension's row read against the same data plane without a sink. After the
table, the speed goals as ratios of this run's rows, each udsink row over its Numaflow row
among them (docs/benchmarks.md says what each means).

Each data plane runs as the container does (`python -m sink_runtime.dataplane --config FILE`).
A row's wall time runs from starting its process until the group's committed offsets (read
from the broker) reach the end of every partition, so it includes process start-up and the
group join; the steady rate is measured from the first commit observed to the last (the
ceiling, too fast to resolve that way, reports its own first-to-last-batch time). The CPU
seconds of the data plane (or consumer) and of the sink process are read from /proc; CPU per
message is taken over the steady window (the ceiling's over its whole run); peak RSS is the
data plane's (or consumer's) VmHWM from /proc, read just before it is stopped; the broker's CPU
seconds over the whole row are read too when the bench started the broker (a TLS listener
encrypts every fetch in the JVM, where a plaintext one sends the log files as they are).
`--repeat N` runs N rounds over the rows and reports each row's best run with the range of its
steady rates.

    python bench/dataplane_e2e.py --messages 200000 --value-size 1024 --partitions 4

starts its own broker (tests/support/kafka_broker.py, jars cached under ~/.cache/udsink);
`--bootstrap HOST:PORT` uses a running one instead (with `--broker-security FILE`, its
secured listeners: the `security.json` such a broker writes). Every client of the bench, the
harness's too, connects through the data plane's `kafka_settings.connection_settings`.
Prints the machine, then a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from confluent_kafka import (  # noqa: E402
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient  # noqa: E402
from confluent_kafka.cimpl import NewTopic  # noqa: E402
from google.protobuf.timestamp_pb2 import Timestamp  # noqa: E402
from udsink_cli.isolation import private_run_dir  # noqa: E402

from sink_runtime.config import (  # noqa: E402
    DEFAULT_BATCH_MAX_BYTES,
    BatchConfig,
    BlackholeSinkConfig,
    KafkaConnection,
    KafkaSinkConfig,
    KafkaSourceConfig,
    KeyHeadersConfig,
    ObservabilityConfig,
    RuntimeConfig,
    SinkConfig,
    UserSinkConfig,
    constants,
)
from sink_runtime.dataplane.kafka_settings import (  # noqa: E402
    CONSUMER_DEFAULTS,
    client_settings,
    connection_settings,
    producer_settings,
)
from sink_runtime.proto import sink_pb2  # noqa: E402
from tests.support.interop_sinks import sink_command  # noqa: E402
from tests.support.kafka_broker import (  # noqa: E402
    ensure_jars,
    kafka_version,
    running_broker,
)
from tests.support.kafka_security import SecuredListeners  # noqa: E402
from tests.support.numaflow_peer import (  # noqa: E402
    PEER_ENV,
    PeerMissing,
    describe,
    mono_vertex,
    peer_binary,
    peer_command,
    peer_env,
)
from tests.support.private_network import (  # noqa: E402
    in_private_network,
    inside,
    private_network_env,
)
from tests.support.secured_kafka import client  # noqa: E402

ROWS = (
    "ceiling",
    "blackhole",
    "udsink-batch",
    "udsink-v1",
    "pynumaflow-v1",
    "go-v1",
    "rust-v1",
    "java-v1",
    "kafka-kafka",
    "kafka-kafka-eos",
    "kafka-ceiling",
    "grpc-v1",
    "blackhole-tls",
    "blackhole-sasl-ssl",
    "kafka-kafka-tls",
    "kafka-kafka-sasl-ssl",
    "numaflow+blackhole",
    "numaflow+blackhole-backoff10",
    "numaflow+go-v1",
    "numaflow+rust-v1",
)
# The secured rows: (the plaintext row they repeat, the connection: tests/support's MODES).
SECURED = {
    "blackhole-tls": ("blackhole", "ssl"),
    "blackhole-sasl-ssl": ("blackhole", "scram-sha-512"),
    "kafka-kafka-tls": ("kafka-kafka", "ssl"),
    "kafka-kafka-sasl-ssl": ("kafka-kafka", "scram-sha-512"),
}
WHAT = {
    "ceiling": "bare confluent-kafka consume loop",
    "blackhole": "data plane, blackhole sink",
    "udsink-batch": "data plane -> SDK no-op sink, batch extension",
    "udsink-v1": "data plane -> SDK no-op sink, sink.v1",
    "pynumaflow-v1": "data plane -> pynumaflow no-op sink, sink.v1",
    "go-v1": "data plane -> numaflow-go sink (unmodified), sink.v1",
    "rust-v1": "data plane -> Rust numaflow sink (unmodified), sink.v1",
    "java-v1": "data plane -> numaflow-java sink (unmodified), sink.v1",
    "kafka-kafka": "data plane -> Kafka sink, split key headers",
    "kafka-kafka-eos": "kafka-kafka, exactly-once (one transaction per batch)",
    "kafka-ceiling": "bare confluent-kafka consume + produce + flush + commit loop",
    "grpc-v1": "bare sink.v1 stream of pre-built requests",
    "blackhole-tls": "blackhole, source over TLS",
    "blackhole-sasl-ssl": "blackhole, source over SASL_SSL (SCRAM-SHA-512)",
    "kafka-kafka-tls": "Kafka sink, source and sink over TLS",
    "kafka-kafka-sasl-ssl": "Kafka sink, source and sink over SASL_SSL (SCRAM-SHA-512)",
    "numaflow+blackhole": "Numaflow's data plane, blackhole sink (librdkafka's fetch backoff)",
    "numaflow+blackhole-backoff10": "Numaflow's data plane, blackhole sink, our fetch backoff",
    "numaflow+go-v1": "Numaflow's data plane -> numaflow-go sink (unmodified), sink.v1",
    "numaflow+rust-v1": "Numaflow's data plane -> Rust numaflow sink (unmodified), sink.v1",
}
# The ceiling each row is compared with (see the module doc).
MATCHING = {
    "blackhole": "ceiling",
    "kafka-kafka": "kafka-ceiling",
    "kafka-kafka-eos": "kafka-kafka",
    "udsink-batch": "blackhole",
    "udsink-v1": "grpc-v1",
    "pynumaflow-v1": "grpc-v1",
    "go-v1": "grpc-v1",
    "rust-v1": "grpc-v1",
    "java-v1": "grpc-v1",
    **{row: plain for row, (plain, _) in SECURED.items()},
    "numaflow+blackhole": "ceiling",
    "numaflow+blackhole-backoff10": "ceiling",
}
# The rows with a sink, also shown over the data plane without one.
SINK_ROWS = ("udsink-batch", "udsink-v1", "pynumaflow-v1", "go-v1", "rust-v1", "java-v1")
PEER_SINKS = {"go-v1": "go", "rust-v1": "rust", "java-v1": "java"}
# Numaflow's own data plane (tests/support/numaflow_peer.py): each row's sink (None: its
# blackhole) and whether its consumer gets our `fetch.queue.backoff.ms` (like-for-like with
# the blackhole row; librdkafka's own default otherwise).
NUMAFLOW_ROWS: dict[str, tuple[str | None, bool]] = {
    "numaflow+blackhole": (None, False),
    "numaflow+blackhole-backoff10": (None, True),
    "numaflow+go-v1": ("go", False),
    "numaflow+rust-v1": ("rust", False),
}
# Each of our rows over the fastest of its Numaflow rows present in the run; every pair must
# reach PEER_LEAD. The blackhole row is held against both of Numaflow's (its default fetch
# backoff and ours), the batch extension's row against Numaflow's user-defined-sink rows.
PEER_PAIRS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("blackhole", ("numaflow+blackhole",)),
    ("blackhole", ("numaflow+blackhole-backoff10",)),
    ("go-v1", ("numaflow+go-v1",)),
    ("rust-v1", ("numaflow+rust-v1",)),
    ("udsink-batch", ("numaflow+go-v1", "numaflow+rust-v1")),
)
PEER_LEAD = 1.5
# The same-run ratios the speed goals are stated in: (goal, row, over row, at least).
GOAL_RATIOS = (
    (1, "blackhole", "ceiling", 0.5),
    (2, "rust-v1", "blackhole", 0.75),
    (3, "udsink-batch", "rust-v1", 1.0),
    (4, "kafka-kafka", "kafka-ceiling", 0.75),
)
POLL_S = 0.05
_COORDINATOR_MOVING = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)
CEILING_MARK = "ceiling consumed after its first batch (messages, seconds):"
ROW_TIMEOUT_S = 1800.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    row: str
    messages: int
    wall_s: float  # process start -> everything committed
    steady_s: float  # first commit observed -> everything committed
    steady_messages: int  # messages committed within steady_s
    cpu_s: float  # data plane (or consumer) process
    steady_cpu_s: float  # the same, within steady_s
    sink_cpu_s: float  # the SDK sink process (0 without one)
    batch_ms: float | None = None  # mean read -> commit time of a batch (data plane /metrics)
    peak_rss_mib: float | None = None  # VmHWM of the data plane (or consumer) process
    # The broker's CPU over the whole row (the bench's own broker only): TLS costs it too.
    broker_cpu_s: float | None = None

    @property
    def rate(self) -> float:
        return self.messages / self.wall_s

    @property
    def cpu_us_per_message(self) -> float:
        """Process + sink CPU per message in steady state (start-up excluded)."""
        if self.steady_messages <= 0 or self.steady_cpu_s <= 0:
            return (self.cpu_s + self.sink_cpu_s) / self.messages * 1e6
        return (self.steady_cpu_s + self.sink_cpu_s) / self.steady_messages * 1e6

    @property
    def steady_rate(self) -> float:
        if self.steady_s <= 0 or self.steady_messages <= 0:
            return self.rate  # everything committed before the first observation
        return self.steady_messages / self.steady_s


# --- the broker and the topic ---


def record_limit(value_size: int) -> int:
    """Largest record (bytes) the bench's topics and producers take: Kafka's 1 MiB default,
    or room for `--value-size` and its key and headers."""
    return max(1_048_576, value_size + 65_536)


def plaintext(bootstrap: str) -> dict[str, Any]:
    """The harness's connection (topics, pre-fill, offsets): the plaintext listener, built by
    the data plane's own builder like every client of the bench."""
    return dict(connection_settings(KafkaConnection(brokers=[bootstrap]), "bench"))


def create_topic(bootstrap: str, topic: str, partitions: int, value_size: int = 0) -> None:
    admin = AdminClient(plaintext(bootstrap))
    config = {"max.message.bytes": str(record_limit(value_size))}
    new = NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config)
    admin.create_topics([new])[topic].result(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(topic=topic, timeout=5).topics.get(topic)
        if (
            md is not None
            and md.error is None
            and len(md.partitions) == partitions
            and all(p.leader >= 0 for p in md.partitions.values())
        ):
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no leader for every partition after 30s")


def prefill(bootstrap: str, topic: str, messages: int, value_size: int, partitions: int) -> float:
    """Write `messages` keyed records round-robin over the partitions; seconds taken."""
    producer = Producer(
        {
            **plaintext(bootstrap),
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "batch.num.messages": 10_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "queue.buffering.max.messages": 1_000_000,
            "acks": 1,
            "message.max.bytes": record_limit(value_size),
            "enable.idempotence": False,
        }
    )
    value = os.urandom(value_size)
    failed: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    started = time.monotonic()
    for i in range(messages):
        key = f"k{i % 1000}"
        headers: list[tuple[str, str | bytes | None]] = [
            (constants.KEY_LEN_HEADER, b"2"),
            (f"{constants.KEY_HEADER_PREFIX}0", key.encode()),
            (f"{constants.KEY_HEADER_PREFIX}1", b"bench"),
        ]
        while True:
            try:
                producer.produce(
                    topic,
                    value=value,
                    key=key.encode(),
                    headers=headers,
                    partition=i % partitions,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    if left or failed:
        raise RuntimeError(f"pre-fill of {topic}: {left} undelivered, errors {failed[:3]}")
    return time.monotonic() - started


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({**plaintext(bootstrap), "group.id": f"end-{uuid.uuid4().hex}"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


# --- measuring one row ---


class CommitWatch:
    """Reads a group's committed offsets from the broker (one client, reused)."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: int) -> None:
        self._consumer = Consumer({**plaintext(bootstrap), "group.id": group})
        self._tps = [TopicPartition(topic, p) for p in range(partitions)]
        self._last = 0

    def committed(self) -> int:
        """The group's committed total; the last one read while the group coordinator is
        loading or moving (a freshly started broker says so with a retriable error)."""
        try:
            tps = self._consumer.committed(self._tps, timeout=10)
        except KafkaException as err:
            kerr = err.args[0]
            if not (kerr.retriable() or kerr.code() in _COORDINATOR_MOVING):
                raise
            return self._last
        self._last = sum(tp.offset for tp in tps if tp.offset >= 0)
        return self._last

    def close(self) -> None:
        self._consumer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident set (VmHWM), MiB; None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else None


def stop_process(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def measure(
    proc: subprocess.Popen[bytes], watch: CommitWatch, total: int, started: float, log: Path
) -> tuple[float, float, int, float, float]:
    """Poll commits until `total`.

    Returns (wall s, steady s, steady messages, process CPU s, process CPU s in steady state).
    """
    first_at: float | None = None
    first_committed = 0
    first_cpu = 0.0
    deadline = started + ROW_TIMEOUT_S
    while True:
        committed = watch.committed()
        now = time.monotonic()
        if committed > 0 and first_at is None:
            first_at, first_committed, first_cpu = now, committed, cpu_seconds(proc.pid)
        if committed >= total:
            cpu = cpu_seconds(proc.pid)
            steady = now - first_at if first_at is not None else 0.0
            return now - started, steady, total - first_committed, cpu, cpu - first_cpu
        if proc.poll() is not None:
            raise RuntimeError(
                f"{proc.args!r} exited ({proc.returncode}) at {committed}/{total} committed:\n"
                + log.read_text(errors="replace")[-3000:]
            )
        if now > deadline:
            raise RuntimeError(f"only {committed}/{total} committed after {ROW_TIMEOUT_S}s")
        time.sleep(POLL_S)


def interop_sink(sdk: str, rust_build: str) -> list[str]:
    """The argv of an interop sink built for speed (the Rust one as `rust_build`), built first
    when missing."""
    build = "rust-release" if sdk == "rust" and rust_build == "release" else sdk
    return sink_command(build, full_jit=True)


@contextmanager
def noop_sink(
    workdir: Path,
    server: str = "udsink",
    pynumaflow_python: str | None = None,
    rust_build: str = "release",
) -> Iterator[tuple[subprocess.Popen[bytes], UserSinkConfig]]:
    """A no-op sink server in its own process, on a socket in a short temporary directory.

    `server`: `udsink` (bench/sdk_noop_sink.py, sync handler), `pynumaflow` (its sync server,
    run by `pynumaflow_python`), `thin` (bench/thin_sink_server.py), or `go` / `rust` /
    `java` (the interop sinks, unmodified: their default paths are this directory in their
    namespace; the Rust one as `rust_build`).
    """
    sock_dir = Path(tempfile.mkdtemp(prefix="udsb-", dir="/tmp"))  # short: sun_path limit
    socket_path, info_path = sock_dir / "sink.sock", sock_dir / "sinker-server-info"
    env = {
        **os.environ,
        constants.SOCKET_PATH_ENV: str(socket_path),
        constants.SERVER_INFO_PATH_ENV: str(info_path),
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    paths = [str(socket_path), str(info_path)]
    undo = None
    match server:
        case "go" | "rust" | "java":
            wrapped = private_run_dir(interop_sink(server, rust_build), sock_dir)
            cmd, undo = wrapped.argv, wrapped.cleanup
            env["INTEROP_QUIET"] = "1"
            # What Numaflow sets in a sink container; the Java SDK picks its paths from it.
            env[constants.CONTAINER_TYPE_ENV] = constants.CONTAINER_UDSINK
        case "pynumaflow":
            assert pynumaflow_python is not None
            cmd = [pynumaflow_python, str(BENCH / "pynumaflow_sink_server.py"), "sync", *paths]
        case "thin":
            cmd = [sys.executable, str(BENCH / "thin_sink_server.py"), *paths]
        case _:
            cmd = [sys.executable, str(BENCH / "sdk_noop_sink.py"), "sync"]
    with (workdir / "sink.log").open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        )
    try:
        yield proc, UserSinkConfig(socket_path=str(socket_path), server_info_path=str(info_path))
    finally:
        stop_process(proc)
        if undo is not None:
            undo()
        shutil.rmtree(sock_dir, ignore_errors=True)


def run_dataplane(
    row: str,
    sink: SinkConfig,
    args: argparse.Namespace,
    topic: str,
    total: int,
    workdir: Path,
    sink_proc: subprocess.Popen[bytes] | None = None,
    connection: dict[str, Any] | None = None,
) -> Result:
    """`connection`: the source's brokers, tls and sasl (default: the plaintext listener)."""
    group = f"bench-{row}-{uuid.uuid4().hex[:6]}"
    config = RuntimeConfig(
        name=f"bench-{row}",
        source=KafkaSourceConfig(
            **(connection or {"brokers": [args.bootstrap]}), topics=[topic], consumer_group=group
        ),
        sink=sink,
        batch=BatchConfig(size=args.batch, timeout_ms=100, max_bytes=args.batch_bytes),
        observability=ObservabilityConfig(metrics_port=0, metrics_host="127.0.0.1"),
    )
    config_path = workdir / f"{group}.json"
    config_path.write_text(config.to_json())
    log = workdir / f"{group}.log"
    watch = CommitWatch(args.bootstrap, group, topic, args.partitions)
    try:
        with log.open("ab") as out:
            started = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "sink_runtime.dataplane", "--config", str(config_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        profiler = start_profiler(args.profile, row, proc.pid)
        try:
            sink_cpu_before = cpu_seconds(sink_proc.pid) if sink_proc else 0.0
            wall, steady, steady_n, cpu, steady_cpu = measure(proc, watch, total, started, log)
            sink_cpu = cpu_seconds(sink_proc.pid) - sink_cpu_before if sink_proc else 0.0
            batch_ms = mean_batch_ms(log)
            rss = peak_rss_mib(proc.pid)
        finally:
            if args.profile is not None:
                write_thread_cpu(args.profile / f"{row}-{proc.pid}-threads.txt", proc.pid)
            stop_process(proc)
            if profiler is not None:
                profiler.wait(timeout=30)
    finally:
        watch.close()
    return Result(row, total, wall, steady, steady_n, cpu, steady_cpu, sink_cpu, batch_ms, rss)


def run_numaflow(
    row: str, args: argparse.Namespace, topic: str, total: int, workdir: Path
) -> Result:
    """Numaflow's data plane as a MonoVertex pod runs it, measured as `run_dataplane` is.

    It and its sink each run in a private mount namespace with the same fresh directory at
    /var/run/numaflow (the pod's shared volume; the machine's own folder is never touched),
    inside the bench's private network namespace (`main`).
    """
    sdk, our_backoff = NUMAFLOW_ROWS[row]
    group = f"bench-{row.replace('+', '-')}-{uuid.uuid4().hex[:6]}"
    backoff = "fetch.queue.backoff.ms"
    vertex = mono_vertex(
        group,
        brokers=[args.bootstrap],
        topic=topic,
        group=group,
        batch=args.batch,
        read_timeout_ms=100,
        consumer_config={backoff: CONSUMER_DEFAULTS[backoff]} if our_backoff else None,
        user_sink=sdk is not None,
    )
    with ExitStack() as stack:
        sink_proc = None
        if sdk is None:
            run_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="udsnf-")))
        else:
            sink_proc, sink = stack.enter_context(
                noop_sink(workdir, sdk, rust_build=args.rust_build)
            )
            run_dir = Path(sink.socket_path).parent
        wrapped = private_run_dir(peer_command(args.numaflow_peer), run_dir)
        stack.callback(wrapped.cleanup)
        log = workdir / f"{group}.log"
        watch = CommitWatch(args.bootstrap, group, topic, args.partitions)
        stack.callback(watch.close)
        with log.open("ab") as out:
            started = time.monotonic()
            proc = subprocess.Popen(
                wrapped.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=peer_env(vertex, os.environ),
            )
        try:
            sink_cpu_before = cpu_seconds(sink_proc.pid) if sink_proc else 0.0
            wall, steady, steady_n, cpu, steady_cpu = measure(proc, watch, total, started, log)
            sink_cpu = cpu_seconds(sink_proc.pid) - sink_cpu_before if sink_proc else 0.0
            rss = peak_rss_mib(proc.pid)
        finally:
            stop_process(proc)
    return Result(row, total, wall, steady, steady_n, cpu, steady_cpu, sink_cpu, None, rss)


def start_profiler(out_dir: Path | None, row: str, pid: int) -> subprocess.Popen[bytes] | None:
    """With `--profile DIR`: py-spy samples the data plane process (the thread holding the GIL)
    until it exits, into DIR/<row>-<pid>.txt (collapsed stacks; the profile adds CPU, so the
    run's own figures are not comparable with unprofiled ones)."""
    if out_dir is None:
        return None
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [py_spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw"]
    cmd += ["--threads", "--gil", "--output", str(out_dir / f"{row}-{pid}.txt")]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def write_thread_cpu(out: Path, pid: int) -> None:
    """CPU seconds of each thread of `pid` (OS name and id; py-spy's profile names the
    Python threads by the same ids), most first."""
    by_thread: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        by_thread[f"{name} ({task.name})"] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    ranked = sorted(by_thread.items(), key=lambda kv: -kv[1])
    out.write_text("".join(f"{cpu:8.2f} {name}\n" for name, cpu in ranked))


def mean_batch_ms(log: Path) -> float | None:
    """The data plane's mean batch time from its /metrics (port from its start-up log line)."""
    found = re.search(r"serving /metrics.* on 127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
    if found is None:
        return None
    url = f"http://127.0.0.1:{found.group(1)}{constants.METRICS_PATH}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    samples = dict(
        line.rsplit(" ", 1)
        for line in text.splitlines()
        if line.startswith("udsink_batch_seconds_")
    )
    count = float(samples.get("udsink_batch_seconds_count", "0"))
    return float(samples["udsink_batch_seconds_sum"]) / count * 1000 if count else None


def producer_limit(args: argparse.Namespace) -> dict[str, str]:
    """The Kafka sink's `config` for large values (librdkafka's own limit is 1,000,000)."""
    if args.value_size + 65_536 <= 1_000_000:
        return {}
    return {"message.max.bytes": str(record_limit(args.value_size))}


def run_ceiling(
    args: argparse.Namespace, topic: str, total: int, workdir: Path, row: str = "ceiling"
) -> Result:
    """A bare loop in its own process (`ceiling_worker`; with `out_topic`, produce too)."""
    group = f"bench-{row}-{uuid.uuid4().hex[:6]}"
    log = workdir / f"{group}.log"
    watch = CommitWatch(args.bootstrap, group, topic, args.partitions)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--ceiling-worker"]
    cmd += ["--bootstrap", args.bootstrap, "--topic", topic, "--group", group]
    cmd += ["--messages", str(total), "--batch", str(args.batch)]
    if row == "kafka-ceiling":
        out_topic = f"{topic}-out-{uuid.uuid4().hex[:6]}"
        create_topic(args.bootstrap, out_topic, args.partitions, args.value_size)
        cmd += ["--out-topic", out_topic, "--value-size", str(args.value_size)]
    try:
        with log.open("ab") as out:
            started = time.monotonic()
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            wall, steady, steady_n, cpu, steady_cpu = measure(proc, watch, total, started, log)
            rss = peak_rss_mib(proc.pid)
        finally:
            stop_process(proc)
    finally:
        watch.close()
    found = re.search(rf"{re.escape(CEILING_MARK)} (\d+) ([0-9.]+)", log.read_text())
    if found is not None and float(found.group(2)) > 0:
        steady_n, steady = int(found.group(1)), float(found.group(2))
        steady_cpu = 0.0  # not resolvable at this speed: the whole run's CPU is reported
    return Result(row, total, wall, steady, steady_n, cpu, steady_cpu, 0.0, None, rss)


def ceiling_worker(args: argparse.Namespace) -> int:
    """The bare loop: consume everything, commit each batch asynchronously, nothing else.

    With the data plane's consumer defaults (`fetch.queue.backoff.ms` above all: with
    librdkafka's own, this loop too waits on an empty prefetch queue on large topics).
    With `--out-topic`: each record is produced there with its key and headers, and a batch
    is committed only after `flush()` (every delivery report in), as the Kafka sink does.
    """
    producer = None
    if args.out_topic:
        sink = KafkaSinkConfig(
            brokers=[args.bootstrap], topic=args.out_topic, config=producer_limit(args)
        )
        producer = Producer(client_settings(producer_settings(sink), "sink"))
    failed: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    consumer = Consumer(
        {
            **CONSUMER_DEFAULTS,
            **plaintext(args.bootstrap),
            "group.id": args.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([args.topic])
    seen = 0
    first_batch = 0
    first_at = last_at = 0.0
    stop = False

    def on_term(_sig: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    while not stop:
        msgs = consumer.consume(num_messages=args.batch, timeout=0.1)
        good = [m for m in msgs if m.error() is None]
        if good and producer is not None:
            produce, out = producer.produce, args.out_topic
            for m in good:
                while True:
                    try:
                        produce(
                            out, m.value(), m.key(), headers=m.headers(), on_delivery=on_delivery
                        )
                        break
                    except BufferError:
                        producer.poll(0.1)
            if producer.flush(60) or failed:
                raise RuntimeError(f"kafka-ceiling: undelivered records ({failed[:3]})")
        if good:
            if not seen:
                first_at, first_batch = time.monotonic(), len(good)
            seen += len(good)
            last_at = time.monotonic()
            consumer.commit(asynchronous=True)
        if seen >= args.messages:
            # Its own clock: the first batch to the last, too short to resolve from outside.
            print(f"{CEILING_MARK} {seen - first_batch} {last_at - first_at:.6f}", flush=True)
            consumer.commit(asynchronous=False)
            while not stop:  # stay in the group until measured and told to stop
                consumer.poll(0.1)
    consumer.close()
    return 0


def pynumaflow_python(args: argparse.Namespace) -> str:
    if args.pynumaflow_python is None:
        from tests.support.pynumaflow_env import ensure_pynumaflow_python

        args.pynumaflow_python = str(ensure_pynumaflow_python())
    return str(args.pynumaflow_python)


def prebuilt_requests(args: argparse.Namespace, count: int) -> list[bytes]:
    """`count` serialized sink.v1 requests shaped like the topic's records (value, keys, ids)."""
    value = os.urandom(args.value_size)
    stamp = Timestamp()
    stamp.GetCurrentTime()
    out: list[bytes] = []
    for i in range(count):
        key = f"k{i % 1000}"
        request = sink_pb2.SinkRequest.Request(
            id=f"bench:{i % args.partitions}:{i}",
            value=value,
            keys=[key, "bench"],
            headers={
                constants.KEY_LEN_HEADER: "2",
                f"{constants.KEY_HEADER_PREFIX}0": key,
                f"{constants.KEY_HEADER_PREFIX}1": "bench",
            },
            event_time=stamp,
            watermark=stamp,
        )
        out.append(sink_pb2.SinkRequest(request=request).SerializeToString())
    return out


def run_grpc_ceiling(
    args: argparse.Namespace, sink: UserSinkConfig, sink_proc: subprocess.Popen[bytes], total: int
) -> Result:
    """The sink.v1 ceiling: pre-built requests, one batch at a time, through one stream."""
    info = Path(sink.server_info_path)
    deadline = time.monotonic() + 60
    while not info.exists():
        if sink_proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the thin sink.v1 server did not start ({sink_proc.args!r})")
        time.sleep(0.02)
    batches = [prebuilt_requests(args, min(args.batch, total))]
    eot = sink_pb2.SinkRequest(status=sink_pb2.TransmissionStatus(eot=True)).SerializeToString()
    handshake = sink_pb2.SinkRequest(handshake=sink_pb2.Handshake(sot=True)).SerializeToString()

    async def push() -> tuple[float, float, float]:
        async with grpc.aio.insecure_channel(f"unix:{sink.socket_path}") as channel:
            stream: Any = channel.stream_stream(
                "/sink.v1.Sink/SinkFn",
                request_serializer=lambda b: b,
                response_deserializer=sink_pb2.SinkResponse.FromString,
            )
            call = stream(wait_for_ready=True)
            await call.write(handshake)
            await call.read()
            cpu0, sink0, t0 = time.process_time(), cpu_seconds(sink_proc.pid), time.monotonic()
            sent = 0
            while sent < total:
                batch = batches[0][: total - sent]
                for request in batch:
                    await call.write(request)
                await call.write(eot)
                answered = 0
                while True:
                    reply = await call.read()
                    if reply.status.eot:
                        break
                    answered += len(reply.results)
                if answered != len(batch):
                    raise RuntimeError(f"thin server answered {answered} of {len(batch)}")
                sent += len(batch)
            wall = time.monotonic() - t0
            cpu, sink_cpu = time.process_time() - cpu0, cpu_seconds(sink_proc.pid) - sink0
            await call.done_writing()
            return wall, cpu, sink_cpu

    wall, cpu, sink_cpu = asyncio.run(push())
    return Result("grpc-v1", total, wall, wall, total, cpu, cpu, sink_cpu)


# --- reporting ---


def machine() -> list[str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")),
        platform.processor() or "unknown",
    )
    mem_kb = next(
        int(ln.split()[1])
        for ln in Path("/proc/meminfo").read_text().splitlines()
        if ln.startswith("MemTotal")
    )
    import confluent_kafka

    mhz = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("cpu MHz")),
        "?",
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- CPU: {os.cpu_count()} x {model} ({mhz} MHz)",
        f"- RAM: {mem_kb / 1024 / 1024:.1f} GiB; load average at start: {load}",
        f"- Python {platform.python_version()}, confluent-kafka {confluent_kafka.__version__} "
        f"(librdkafka {confluent_kafka.libversion()[0]}), Kafka {kafka_version()} (KRaft, 1 node)",
    ]


def table(runs: dict[str, list[Result]]) -> list[str]:
    """One line per row: its best run (highest steady rate), and the range when repeated."""
    best = {row: max(rs, key=lambda r: r.steady_rate) for row, rs in runs.items()}
    lines = [
        "| row | what | messages | wall s | msg/s (wall) | msg/s (steady) | of ceiling "
        "| CPU s (process + sink) | CPU µs/msg | batch ms | of blackhole | peak RSS MiB "
        "| broker CPU s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row, r in best.items():
        match = MATCHING.get(row)
        share = "n/a" if row not in MATCHING else f"n/a (no {match} row)"
        if match in best:
            share = f"{r.steady_rate / best[match].steady_rate:.0%} of {match}"
        batch = "n/a" if r.batch_ms is None else f"{r.batch_ms:.1f}"
        rss = "n/a" if r.peak_rss_mib is None else f"{r.peak_rss_mib:.0f}"
        bare = "n/a"
        if row in SINK_ROWS and "blackhole" in best:
            bare = f"{r.steady_rate / best['blackhole'].steady_rate:.0%}"
        steady = f"{r.steady_rate:,.0f}"
        if len(runs[row]) > 1:
            rates = [x.steady_rate for x in runs[row]]
            steady += f" ({min(rates):,.0f}..{max(rates):,.0f})"
        lines.append(
            f"| {row} | {WHAT[row]} | {r.messages} | {r.wall_s:.2f} | {r.rate:,.0f} | {steady} "
            f"| {share} | {r.cpu_s:.1f} + {r.sink_cpu_s:.1f} | {r.cpu_us_per_message:.0f} "
            f"| {batch} | {bare} | {rss} "
            f"| {'n/a' if r.broker_cpu_s is None else f'{r.broker_cpu_s:.1f}'} |"
        )
    return lines


def _best_rates(runs: dict[str, list[Result]]) -> dict[str, float]:
    return {row: max(r.steady_rate for r in rs) for row, rs in runs.items() if rs}


def same_run_ratios(runs: dict[str, list[Result]]) -> list[str]:
    """The speed goals as ratios of this run's best steady rates, for the rows it has."""
    best = _best_rates(runs)
    lines = ["Same-run ratios (best steady rate of each row, this run only):"]
    for goal, row, over, least in GOAL_RATIOS:
        if row in best and over in best:
            ratio = best[row] / best[over]
            verdict = "met" if ratio >= least else "missed"
            lines.append(
                f"- goal {goal}: {row} / {over} = {ratio:.2f} (at least {least:.2f}: {verdict})"
            )
        if goal == 2 and "go-v1" in best and "blackhole" in best:
            lines.append(
                f"- goal 2: go-v1 / blackhole = {best['go-v1'] / best['blackhole']:.2f} (no "
                "bound as a ratio: read it with the Go sink's own CPU per message)"
            )
    missed: list[str] = []
    measured = 0
    for ours, theirs in PEER_PAIRS:
        present = [row for row in theirs if row in best]
        if ours not in best or not present:
            continue
        peer = max(present, key=lambda row: best[row])
        ratio = best[ours] / best[peer]
        measured += 1
        of = f" (the faster of {', '.join(present)})" if len(present) > 1 else ""
        verdict = "met" if ratio >= PEER_LEAD else "missed"
        lines.append(
            f"- goal 5: {ours} / {peer}{of} = {ratio:.2f}x (at least {PEER_LEAD}x: {verdict})"
        )
        if ratio < PEER_LEAD:
            missed.append(f"{ours} / {peer} {ratio:.2f}x")
    if measured:
        unpaired = sorted(
            {o for o, t in PEER_PAIRS if o not in best and any(r in best for r in t)}
            | {r for o, t in PEER_PAIRS if o in best for r in t if r not in best}
        )
        tail = f"; not in this run: {', '.join(unpaired)}" if unpaired else ""
        if missed:
            lines.append(f"- goal 5 verdict: MISSED ({'; '.join(missed)}){tail}")
        else:
            lines.append(
                f"- goal 5 verdict: met (every udsink row >= {PEER_LEAD}x its Numaflow row{tail})"
            )
    if len(lines) == 1:
        lines.append("- none: the run has no pair of rows a goal compares")
    return lines


def prepare_outside(args: argparse.Namespace) -> None:
    """Everything a run fetches or builds (broker jars, sinks, venvs, the peer binary), done
    before entering the private network namespace, where only the loopback exists."""
    os.environ[PEER_ENV] = str(peer_binary())
    ensure_jars()
    for row in args.rows:
        sdk = PEER_SINKS.get(row) or NUMAFLOW_ROWS.get(row, (None, False))[0]
        if sdk is not None:
            interop_sink(sdk, args.rust_build)
    if "pynumaflow-v1" in args.rows:
        pynumaflow_python(args)


def rerun_in_private_network(args: argparse.Namespace, argv: list[str]) -> NoReturn:
    """This bench again, in a network namespace of its own, with the same arguments.

    The peer binds fixed ports on every address, hence a namespace of its own; it must read
    the same broker as our rows, so the bench's broker, every row and the harness run in that
    namespace too (a bridge to the machine's loopback would add a hop only the peer pays).
    The process is replaced (same PID), so whoever started the bench stops it as before.
    """
    prepare_outside(args)
    if args.pynumaflow_python is not None and "--pynumaflow-python" not in argv:
        argv = [*argv, "--pynumaflow-python", str(args.pynumaflow_python)]
    cmd = in_private_network([sys.executable, str(Path(__file__).resolve()), *argv])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(cmd[0], cmd, private_network_env())


def run_rows(args: argparse.Namespace, workdir: Path) -> dict[str, list[Result]]:
    topic = f"bench-e2e-{uuid.uuid4().hex[:8]}"
    create_topic(args.bootstrap, topic, args.partitions, args.value_size)
    took = prefill(args.bootstrap, topic, args.messages, args.value_size, args.partitions)
    total = sum(end_offsets(args.bootstrap, topic, args.partitions).values())
    print(
        f"pre-filled {topic}: {total} records of {args.value_size} B on {args.partitions} "
        f"partitions in {took:.1f}s; batch size {args.batch}",
        flush=True,
    )
    runs: dict[str, list[Result]] = {row: [] for row in args.rows}
    # Rounds, not repeats in a row: drift in the machine's load hits every row alike.
    for round_ in range(1, args.repeat + 1):
        for row in args.rows:
            broker_cpu = cpu_seconds(args.broker_pid) if args.broker_pid else None
            result = run_row(row, args, topic, total, workdir)
            if broker_cpu is not None:
                result.broker_cpu_s = cpu_seconds(args.broker_pid) - broker_cpu
            print(
                f"  round {round_} {row}: {result.steady_rate:,.0f} msg/s steady, "
                f"{result.wall_s:.2f}s wall",
                flush=True,
            )
            runs[row].append(result)
    return runs


def secured_connection(args: argparse.Namespace, row: str, workdir: Path) -> dict[str, Any] | None:
    """A secured row's brokers, tls and sasl (its Secret keys laid out as a pod has them)."""
    if row not in SECURED:
        return None
    assert args.security is not None  # parse_args/main made sure
    c = client(args.security, SECURED[row][1], workdir / f"{row}-secrets")
    return {"brokers": [c.address], **c.runtime(workdir / row)}


def run_row(row: str, args: argparse.Namespace, topic: str, total: int, workdir: Path) -> Result:
    if row in ("ceiling", "kafka-ceiling"):
        return run_ceiling(args, topic, total, workdir, row)
    if row in NUMAFLOW_ROWS:
        return run_numaflow(row, args, topic, total, workdir)
    connection = secured_connection(args, row, workdir)
    kind = SECURED[row][0] if row in SECURED else row
    if kind == "blackhole":
        return run_dataplane(
            row, BlackholeSinkConfig(), args, topic, total, workdir, None, connection
        )
    if kind in ("kafka-kafka", "kafka-kafka-eos"):
        out_topic = f"{topic}-out-{uuid.uuid4().hex[:6]}"
        create_topic(args.bootstrap, out_topic, args.partitions, args.value_size)
        kafka_sink = KafkaSinkConfig(
            **(connection or {"brokers": [args.bootstrap]}),
            topic=out_topic,
            headers=KeyHeadersConfig(keys="split"),
            config=producer_limit(args),
            exactly_once=kind == "kafka-kafka-eos",
        )
        return run_dataplane(row, kafka_sink, args, topic, total, workdir, None, connection)
    if row == "grpc-v1":
        with noop_sink(workdir, "thin") as (sink_proc, sink):
            return run_grpc_ceiling(args, sink, sink_proc, total)
    if row == "pynumaflow-v1":
        server = noop_sink(workdir, "pynumaflow", pynumaflow_python(args))
        with server as (sink_proc, sink):
            sink = sink.model_copy(update={"use_batch_extension": False})
            return run_dataplane(row, sink, args, topic, total, workdir, sink_proc)
    if row in PEER_SINKS:
        peer = noop_sink(workdir, PEER_SINKS[row], rust_build=args.rust_build)
        with peer as (sink_proc, sink):
            return run_dataplane(row, sink, args, topic, total, workdir, sink_proc)
    with noop_sink(workdir) as (sink_proc, sink):
        if row == "udsink-v1":
            sink = sink.model_copy(update={"use_batch_extension": False})
        return run_dataplane(row, sink, args, topic, total, workdir, sink_proc)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--value-size", type=int, default=1024, help="bytes per value")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500, help="data plane batch size")
    parser.add_argument(
        "--batch-bytes",
        type=int,
        default=DEFAULT_BATCH_MAX_BYTES,
        help="data plane batch.maxBytes (a Kafka batch closes at --batch records or this)",
    )
    parser.add_argument(
        "--rows", default=",".join(ROWS), help=f"comma-separated subset of {', '.join(ROWS)}"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds over the rows; each row reports its best"
    )
    parser.add_argument(
        "--rust-build",
        choices=("release", "debug"),
        default="release",
        help="the Rust sink's build for rust-v1 (debug: the interop tests' build)",
    )
    parser.add_argument("--bootstrap", help="use this running broker instead of starting one")
    parser.add_argument(
        "--broker-security",
        type=Path,
        help="with --bootstrap: the broker's secured listeners (its security.json), for the "
        f"rows {', '.join(SECURED)}",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--profile", type=Path, help="sample each data plane with py-spy into this directory"
    )
    parser.add_argument(
        "--pynumaflow-python",
        help="python of a venv with pynumaflow (default: tests/support/pynumaflow_env.py's)",
    )
    parser.add_argument("--ceiling-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    parser.add_argument("--out-topic", help=argparse.SUPPRESS)
    args = parser.parse_args(list(argv))
    if not args.ceiling_worker:
        args.rows = [r.strip() for r in args.rows.split(",") if r.strip()]
        unknown = [r for r in args.rows if r not in ROWS]
        if unknown:
            parser.error(f"--rows: unknown {', '.join(unknown)}; accepted: {', '.join(ROWS)}")
        if args.bootstrap and set(args.rows) & set(NUMAFLOW_ROWS):
            parser.error(
                f"--rows {', '.join(r for r in args.rows if r in NUMAFLOW_ROWS)} run in a "
                "private network namespace with the bench's own broker: drop --bootstrap, or "
                "leave these rows out"
            )
        if args.bootstrap and not args.broker_security and set(args.rows) & set(SECURED):
            parser.error(
                f"--rows {', '.join(sorted(set(args.rows) & set(SECURED)))} need "
                "--broker-security FILE with --bootstrap"
            )
        if min(args.messages, args.partitions, args.repeat, args.batch) < 1 or args.value_size < 0:
            parser.error(
                "--messages, --partitions, --repeat and --batch must be >= 1, --value-size >= 0"
            )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.ceiling_worker:
        return ceiling_worker(args)
    with_peer = any(row in NUMAFLOW_ROWS for row in args.rows)
    try:
        if with_peer and not inside():
            rerun_in_private_network(args, sys.argv[1:] if argv is None else list(argv))
        peer = peer_binary() if with_peer else None
    except PeerMissing as err:
        print(f"dataplane_e2e: the Numaflow rows cannot run: {err}", file=sys.stderr)
        return 2
    for line in machine():
        print(line, flush=True)
    args.numaflow_peer = peer
    if peer is not None:
        print(f"- Numaflow peer: {describe(peer)}", flush=True)
        print("- network: a private namespace, loopback only (the bench's broker too)", flush=True)
    with ExitStack() as stack:
        args.security = None
        args.broker_pid = None
        if args.bootstrap is None:
            broker = stack.enter_context(running_broker(secured=True))
            args.bootstrap = broker.bootstrap
            args.security = broker.security()
            args.broker_pid = broker.pid
            print(f"started Kafka on {args.bootstrap}", flush=True)
        elif args.broker_security is not None:
            args.security = SecuredListeners.read(args.broker_security)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="udsink-bench-")))
        runs = run_rows(args, workdir)
    print()
    print(
        f"{args.messages} messages x {args.value_size} B, {args.partitions} partitions, "
        f"batch {args.batch}, best of {args.repeat} per row; 'of ceiling' compares steady rates"
    )
    if "rust-v1" in args.rows:
        print(f"rust-v1: the Rust sink's {args.rust_build} build")
    for line in table(runs):
        print(line)
    print()
    for line in same_run_ratios(runs):
        print(line)
    if args.json is not None:
        flat = [
            asdict(r) | {"rate": r.rate, "steady_rate": r.steady_rate}
            for rs in runs.values()
            for r in rs
        ]
        args.json.write_text(json.dumps(flat, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
