"""A real one-node Apache Kafka broker (KRaft) for the Kafka test tier, built from Maven Central.

Separate from the fixtures so any test tier (the data plane's, the benchmarks) can start one.
The jars come from `tests/support/kafka/pom.xml` and are cached under
`$UDSINK_CACHE/kafka-<version>/libs` (default `~/.cache/udsink`); they are downloaded with
Maven only when missing, under a file lock, so concurrent sessions share one download.

The broker listens on 127.0.0.1 (or another local address, such as the e2e node's bridge)
with ports chosen at run time, keeps its data in a fresh temporary directory, and can be
stopped and started again on the same ports with its data kept (for "broker down" scenarios).
A start that does not become ready raises with the tail of the broker's log: a Kafka test
never passes without a real broker.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from udsink_cli.lifeline import tied_to_parent

from tests.support.kafka_security import (
    SecuredListeners,
    TlsMaterial,
    Users,
    make_tls,
    make_users,
)
from tests.support.ports import free_port
from tests.support.processes import terminate

POM = Path(__file__).parent / "kafka" / "pom.xml"
READY_TIMEOUT_S = 90.0
LOG_TAIL_LINES = 40
_PRODUCE_FIELDS = frozenset({"value", "key", "headers", "partition", "timestamp"})
# Modest heap: the machine has 2 cores and is shared with other test processes.
JVM_OPTS = ("-Xms256m", "-Xmx768m", "-XX:+UseSerialGC", "-Djava.awt.headless=true")

_quiet = logging.getLogger("tests.kafka_broker.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False
T = TypeVar("T")


# Errors a request gets while, after a (re)start, the group coordinator loads or moves or a
# partition has no leader yet: the broker will answer it soon.
_STARTING = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError._TIMED_OUT,
    }
)


def _asking_again(ask: Callable[[], T], timeout_s: float) -> T:
    """`ask()`, asked again while the broker answers that it is still starting."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ask()
        except KafkaException as err:
            kerr: KafkaError = err.args[0]
            transient = kerr.retriable() or kerr.code() in _STARTING
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# The secured listeners (name -> security protocol), each a case the tests connect to:
# SSL (server certificate), MTLS (client certificate required), SCRAM (SASL_SSL with
# SCRAM-SHA-256 and -512), SASLPLAIN (SASL_PLAINTEXT with PLAIN), and two listeners whose
# certificate a client must refuse: WRONGHOST (issued for another name), EXPIRED.
SECURE_LISTENERS: Mapping[str, tuple[str, str]] = {
    "SSL": ("SSL", "server certificate"),
    "MTLS": ("SSL", "client certificate required"),
    "SCRAM": ("SASL_SSL", "SCRAM-SHA-256, SCRAM-SHA-512"),
    "SASLPLAIN": ("SASL_PLAINTEXT", "PLAIN"),
    "WRONGHOST": ("SSL", "certificate for another host"),
    "EXPIRED": ("SSL", "expired certificate"),
}


class BrokerError(RuntimeError):
    """The test broker could not be provisioned or started; the message says why."""


def kafka_version(pom: Path = POM) -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom.read_text())
    if match is None:
        raise BrokerError(f"{pom}: no <kafka.version> property")
    return match.group(1).strip()


def cache_root() -> Path:
    return Path(os.environ.get("UDSINK_CACHE") or Path.home() / ".cache" / "udsink")


def ensure_jars(pom: Path = POM) -> Path:
    """The folder of broker jars, downloading them with Maven when not cached yet."""
    version = kafka_version(pom)
    home = cache_root() / f"kafka-{version}"
    libs = home / "libs"
    done = home / ".complete"
    if done.exists():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():  # another session downloaded while we waited
            return libs
        if shutil.which("mvn") is None:
            raise BrokerError("Maven (`mvn`) is not on PATH: it is needed to fetch Kafka's jars")
        staging = home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0 or not any(staging.glob(f"kafka_2.13-{version}.jar")):
            raise BrokerError(
                f"fetching Kafka {version} jars failed ({' '.join(cmd)}, exit "
                f"{proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}"
            )
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        done.write_text(version + "\n")
    return libs


def cluster_id() -> str:
    """A random KRaft cluster id (base64url of a UUID, as Kafka's own tool makes them).

    Never one that starts with "-": the storage tool's option parser would read it as an
    option (`argument --cluster-id/-t: expected one argument`, about 1 start in 64).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True, slots=True)
class Record:
    """A record as read back from the broker by the test helpers."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp_ms: int

    def header(self, name: str) -> bytes | None:
        """The last value of header `name` (KeyError when absent)."""
        values = [v for k, v in self.headers if k == name]
        if not values:
            raise KeyError(name)
        return values[-1]

    def header_names(self) -> list[str]:
        return [k for k, _ in self.headers]


@dataclass
class KafkaBroker:
    """One KRaft broker+controller process on one local address.

    `bootstrap` stays the same across stop()/start(), and so does the data.
    """

    workdir: Path
    libs: Path
    # The address it listens on and advertises: loopback, or the e2e node's bridge address so
    # pods reach it too.
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    # Secured listeners beside PLAINTEXT (SECURE_LISTENERS), their certificates made and SCRAM
    # users created at the first start; the plaintext listener and the helpers stay as they are.
    secured: bool = False
    secure_ports: dict[str, int] = field(default_factory=dict)
    tls: TlsMaterial | None = None
    users: Users | None = None
    _proc: subprocess.Popen[bytes] | None = None
    _formatted: bool = False
    _counter: int = 0

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def address(self, listener: str) -> str:
        """host:port of a secured listener (a key of SECURE_LISTENERS)."""
        if listener not in self.secure_ports:
            raise BrokerError(f"listener {listener} is not enabled (secured={self.secured})")
        return f"{self.host}:{self.secure_ports[listener]}"

    def security(self) -> SecuredListeners:
        """The secured listeners, for clients (`client()` in tests/support/secured_kafka.py)."""
        if self.tls is None or self.users is None:
            raise BrokerError("the broker was not started with secured=True")
        return SecuredListeners(
            {name: self.address(name) for name in self.secure_ports}, self.tls, self.users
        )

    @property
    def security_file(self) -> Path:
        """The same as a file (written at start), for processes: the bench's --broker-security."""
        return self.workdir / "security.json"

    @property
    def log_file(self) -> Path:
        return self.workdir / "server.log"

    @property
    def stdout_file(self) -> Path:
        return self.workdir / "stdout.log"

    @property
    def pid(self) -> int | None:
        """The broker JVM's process id while it runs (the bench reads its CPU time)."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # --- lifecycle ---

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start the JVM (formatting storage the first time) and wait until it serves metadata."""
        if self.running:
            return
        self._write_config()
        if not self._formatted:
            self._format()
        if self.secured:
            self.security().write(self.security_file)
        env = {**os.environ, "LOG_DIR": str(self.workdir)}
        with self.stdout_file.open("ab") as out:
            self._proc = subprocess.Popen(
                tied_to_parent(
                    [
                        "java",
                        *JVM_OPTS,
                        *self._log_opts(),
                        *("-cp", f"{self.libs}/*", "kafka.Kafka"),
                        str(self.workdir / "server.properties"),
                    ],
                    env=env,
                    cwd=self.workdir,
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env=env,
            )
        self._wait_ready(timeout_s)

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL); data and ports are kept for start()."""
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate(proc, grace_s=timeout_s, kill_wait_s=10)

    def kill(self) -> None:
        """SIGKILL the broker at once (a crash); start() recovers the data."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def _log_opts(self) -> list[str]:
        return [f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}"]

    def _write_config(self) -> None:
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        secure = self._secure_props()  # chooses the secured listeners' ports on first use
        listeners = {
            "PLAINTEXT": (self.port, "PLAINTEXT"),
            **{
                name: (self.secure_ports[name], proto)
                for name, (proto, _) in SECURE_LISTENERS.items()
                if name in self.secure_ports
            },
        }
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": ",".join(
                [
                    *(f"{n}://{self.host}:{port}" for n, (port, _) in listeners.items()),
                    f"CONTROLLER://{self.host}:{self.controller_port}",
                ]
            ),
            "advertised.listeners": ",".join(
                f"{n}://{self.host}:{port}" for n, (port, _) in listeners.items()
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": ",".join(
                ["CONTROLLER:PLAINTEXT", *(f"{n}:{proto}" for n, (_, proto) in listeners.items())]
            ),
            "log.dirs": str(data),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            # One partition for internal topics: fast group coordinator start on a small box.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            **secure,
        }
        text = "".join(f"{k}={v}\n" for k, v in props.items())
        (self.workdir / "server.properties").write_text(text)
        (self.workdir / "log4j2.properties").write_text(
            "status = warn\n"
            "appender.file.type = File\n"
            "appender.file.name = file\n"
            f"appender.file.fileName = {self.log_file}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.file.ref = file\n"
        )

    def _secure_props(self) -> dict[str, str]:
        """Per-listener TLS and SASL settings of the secured listeners (Kafka's
        `listener.name.<listener>.` prefix); certificates and users are made on first use."""
        if not self.secured:
            return {}
        if self.tls is None:
            self.tls = make_tls(self.workdir / "tls", self.host)
        if self.users is None:
            self.users = make_users()
        for name in SECURE_LISTENERS:
            self.secure_ports.setdefault(name, free_port())
        tls, users = self.tls, self.users
        keystores = {
            "SSL": tls.server,
            "MTLS": tls.server,
            "SCRAM": tls.server,
            "WRONGHOST": tls.wrong_host_server,
            "EXPIRED": tls.expired_server,
        }
        props: dict[str, str] = {}
        for name, keystore in keystores.items():
            prefix = f"listener.name.{name.lower()}."
            props[prefix + "ssl.keystore.type"] = "PEM"
            props[prefix + "ssl.keystore.location"] = str(keystore)
        mtls = "listener.name.mtls."
        props[mtls + "ssl.client.auth"] = "required"
        props[mtls + "ssl.truststore.type"] = "PEM"
        props[mtls + "ssl.truststore.location"] = str(tls.ca)
        scram = "listener.name.scram."
        props[scram + "sasl.enabled.mechanisms"] = "SCRAM-SHA-256,SCRAM-SHA-512"
        for mech in ("scram-sha-256", "scram-sha-512"):
            props[scram + f"{mech}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
        plain = "listener.name.saslplain."
        props[plain + "sasl.enabled.mechanisms"] = "PLAIN"
        props[plain + "plain.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{users.plain.username}="{users.plain.password}";'
        )
        return props

    def _format(self) -> None:
        cmd = ["java", "-Xmx256m", *self._log_opts(), "-cp", f"{self.libs}/*"]
        cmd += ["kafka.tools.StorageTool", "format", "-t", cluster_id()]
        cmd += ["-c", str(self.workdir / "server.properties")]
        if self.secured and self.users is not None:
            # KRaft keeps SCRAM credentials in the metadata log: they are created at format.
            for user in (self.users.scram_256, self.users.scram_512):
                cmd += [
                    "--add-scram",
                    f"{user.mechanism}=[name={user.username},password={user.password}]",
                ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise BrokerError(
                f"kafka StorageTool format failed (exit {proc.returncode}):\n"
                f"{(proc.stdout + proc.stderr)[-4000:]}\n{self.log_tail()}"
            )
        self._formatted = True

    def _wait_ready(self, timeout_s: float) -> None:
        admin = self.admin()
        deadline = time.monotonic() + timeout_s
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise BrokerError(
                    f"Kafka broker exited with code {code} during start-up\n{self.log_tail()}"
                )
            try:
                if admin.list_topics(timeout=2).brokers:
                    return
            except Exception as err:  # KafkaException while the port is not open yet
                last_error = str(err)
            time.sleep(0.2)
        self.kill()
        raise BrokerError(
            f"Kafka broker on {self.bootstrap} not ready after {timeout_s:.0f}s "
            f"(last error: {last_error})\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        parts = []
        for path in (self.log_file, self.stdout_file):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- last {len(tail)} lines of {path} ---\n" + "\n".join(tail))
            else:
                parts.append(f"--- {path}: not written ---")
        return "\n".join(parts)

    # --- clients and helpers for assertions ---

    def client_config(self, **extra: Any) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, "logger": _quiet, **extra}

    def admin(self) -> AdminClient:
        return AdminClient(self.client_config())

    def unique_topic(self, prefix: str = "t") -> str:
        self._counter += 1
        return f"{prefix}-{self._counter}-{uuid.uuid4().hex[:8]}"

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        timeout_s: float = 30.0,
        config: Mapping[str, str] | None = None,
    ) -> str:
        """Create `name` (with topic `config`) and wait until its metadata shows every
        partition with a leader."""
        # Keep the client referenced until the future resolves: a collected client aborts it.
        admin = self.admin()
        topic = NewTopic(
            name, num_partitions=partitions, replication_factor=1, config=dict(config or {})
        )
        futures = admin.create_topics([topic])
        futures[name].result(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            md = admin.list_topics(topic=name, timeout=5).topics.get(name)
            if (
                md is not None
                and md.error is None
                and len(md.partitions) == partitions
                and all(p.leader >= 0 for p in md.partitions.values())
            ):
                return name
            time.sleep(0.1)
        raise BrokerError(f"topic {name} has no leaders after {timeout_s}s\n{self.log_tail()}")

    def produce(
        self,
        topic: str,
        records: Iterable[Mapping[str, Any]],
        timeout_s: float = 30.0,
    ) -> list[tuple[int, int]]:
        """Write records (dicts of value/key/headers/partition/timestamp); (partition, offset)s.

        Raises when any record was not delivered.
        """
        producer = Producer(self.client_config(**{"enable.idempotence": True}))
        reports: list[tuple[int, int] | None] = []
        errors: list[str] = []

        def report_at(i: int) -> Any:
            def on_delivery(err: KafkaError | None, msg: Any) -> None:
                if err is not None:
                    errors.append(f"record {i}: {err}")
                else:
                    reports[i] = (msg.partition(), msg.offset())

            return on_delivery

        for i, rec in enumerate(records):
            reports.append(None)
            kwargs = {k: v for k, v in rec.items() if k in _PRODUCE_FIELDS}
            producer.produce(topic, on_delivery=report_at(i), **kwargs)
        remaining = producer.flush(timeout_s)
        if remaining or errors or any(r is None for r in reports):
            raise BrokerError(f"producing to {topic}: {remaining} undelivered, errors {errors}")
        return [r for r in reports if r is not None]

    def consume(
        self,
        topic: str,
        count: int,
        timeout_s: float = 30.0,
        partitions: Sequence[int] | None = None,
    ) -> list[Record]:
        """Read `count` records from the start of `topic` (all partitions) without a group.

        Raises when fewer arrive within the timeout; records come in per-partition order.
        """
        parts = partitions
        if parts is None:
            md = self.admin().list_topics(topic=topic, timeout=10).topics[topic]
            parts = sorted(md.partitions)
        consumer = Consumer(
            self.client_config(**{"group.id": f"assert-{uuid.uuid4().hex}"})
            | {"enable.auto.commit": False, "enable.partition.eof": False}
        )
        try:
            consumer.assign([TopicPartition(topic, p, 0) for p in parts])
            out: list[Record] = []
            deadline = time.monotonic() + timeout_s
            while len(out) < count and time.monotonic() < deadline:
                for msg in consumer.consume(num_messages=count - len(out), timeout=0.5):
                    if msg.error() is not None:
                        continue
                    out.append(
                        Record(
                            topic=msg.topic(),
                            partition=msg.partition(),
                            offset=msg.offset(),
                            key=msg.key(),
                            value=msg.value(),
                            headers=list(msg.headers() or []),
                            timestamp_ms=msg.timestamp()[1],
                        )
                    )
            if len(out) < count:
                raise BrokerError(
                    f"read {len(out)} of {count} records from {topic} in {timeout_s}s"
                )
            return out
        finally:
            consumer.close()

    def consume_all(self, topic: str) -> list[Record]:
        """Every record `topic` holds so far (all partitions, from the start)."""
        total = sum(self.end_offsets(topic).values())
        return self.consume(topic, total, timeout_s=60) if total else []

    def committed_to_end(self, group: str, topic: str) -> bool:
        """Whether `group` has committed every partition of `topic` to its end."""
        return self.committed(group, topic) == self.end_offsets(topic)

    def committed(self, group: str, topic: str, timeout_s: float = 10.0) -> dict[int, int]:
        """The group's committed offsets for `topic` by partition (absent = none committed)."""
        md = self.admin().list_topics(topic=topic, timeout=10).topics[topic]
        wanted = [TopicPartition(topic, p) for p in sorted(md.partitions)]
        consumer = Consumer(self.client_config(**{"group.id": group}))
        try:
            tps = _asking_again(lambda: consumer.committed(wanted, timeout=timeout_s), timeout_s)
        finally:
            consumer.close()
        return {tp.partition: tp.offset for tp in tps if tp.offset >= 0}

    def end_offsets(self, topic: str, timeout_s: float = 10.0) -> dict[int, int]:
        md = self.admin().list_topics(topic=topic, timeout=10).topics[topic]
        consumer = Consumer(self.client_config(**{"group.id": f"end-{uuid.uuid4().hex}"}))

        def end(p: int) -> int:
            tp = TopicPartition(topic, p)
            return int(consumer.get_watermark_offsets(tp, timeout=timeout_s)[1])

        try:
            return {p: _asking_again(partial(end, p), timeout_s) for p in sorted(md.partitions)}
        finally:
            consumer.close()


@contextlib.contextmanager
def running_broker(host: str = "127.0.0.1", *, secured: bool = False) -> Iterator[KafkaBroker]:
    """A started broker on `host` in a fresh temporary directory; killed and removed on exit.

    `secured`: with the SECURE_LISTENERS beside PLAINTEXT (certificates and users per run).
    """
    libs = ensure_jars()
    workdir = Path(tempfile.mkdtemp(prefix="udsink-kafka-"))
    broker = KafkaBroker(workdir=workdir, libs=libs, host=host, secured=secured)
    try:
        try:
            broker.start()
        except BrokerError as err:
            # A free port can be taken between choosing it and the JVM binding it: retry once.
            if "Address already in use" not in str(err):
                raise
            broker.port, broker.controller_port = free_port(), free_port()
            broker.secure_ports = {name: free_port() for name in broker.secure_ports}
            broker.start()
        yield broker
    finally:
        broker.kill()
        shutil.rmtree(workdir, ignore_errors=True)


async def read_at_least(source: Any, count: int, timeout_s: float = 30.0) -> list[Any]:
    """Batches read from a data plane Source until they hold `count` datums (or more).

    Returns the SourceBatch objects (for ack()); raises when the timeout passes first.
    """
    batches: list[Any] = []
    total = 0
    deadline = time.monotonic() + timeout_s
    while total < count:
        if time.monotonic() > deadline:
            raise BrokerError(f"read {total} of {count} datums in {timeout_s}s")
        batch = await source.read(count - total, 0.5)
        if batch.datums:
            batches.append(batch)
            total += len(batch.datums)
    return batches
