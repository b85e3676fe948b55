"""`udsink replay`: write a dead-letter topic's records (or a range of them) back to a topic.

After a sink is fixed, the messages it failed sit in the fallback (dead-letter) topic with
udsink's error headers. This command reads a bounded range of that topic (all of it, a time
range, or an offset range of one partition) and produces each record to a target topic with
its key, value and headers, dropping the error headers unless told to keep them, at a
bounded rate. It is a dry run unless `--execute` is given: the dry run shows what would be
written (per partition: offsets and counts, and a sample).

No record may be lost: the range's end is fixed before reading (so a topic replayed into
itself does not loop), the producer is idempotent with acks=all, every record's delivery
report is counted per target partition, and the command ends with a flush; any record not
confirmed makes it exit 1 and say how many. Nothing is committed to a consumer group: the
reader has a throwaway group id and assigns partitions itself.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from sink_runtime.config import constants
from udsink_cli.kafkaconn import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    TIMEOUT_S,
    CliError,
    Connection,
    add_connection_args,
    check_partitions,
    connect,
    format_ms,
    parse_datetime,
    partitions_of,
    plain,
    remove_private_dirs,
)
from udsink_cli.local_secrets import HELP as SECRETS_HELP

# The headers the data plane adds to a record it routes to a fallback sink.
ERROR_HEADERS = frozenset(
    {
        constants.FALLBACK_STATUS_HEADER,
        constants.FALLBACK_ERROR_HEADER,
        constants.FALLBACK_ATTEMPTS_HEADER,
        constants.FALLBACK_SOURCE_HEADER,
    }
)
DEFAULT_RATE = 1000  # messages per second
DEFAULT_SAMPLE = 3
SAMPLE_BYTES = 120
IDLE_TIMEOUT_S = 30.0  # reading stops with an error when no record arrives for this long
PROGRESS_EVERY_S = 0.5  # on a terminal; a line every PROGRESS_LINE_EVERY_S otherwise
PROGRESS_LINE_EVERY_S = 5.0
FLUSH_TIMEOUT_S = 60.0

EPILOG = f"""\
what is read:
  The whole source topic, or a part of it: --since/--until (record timestamps, ISO 8601 with a
  time zone; --until excluded), --start-offset/--end-offset (both included; with --partition
  when the topic has several partitions). The range ends where the topic ended when the
  command started.

what is written:
  Each record's key, value and headers, to the target topic (its partition chosen by its key,
  as the data plane's Kafka sink does; the timestamp is the time of writing). The error
  headers udsink adds ({", ".join(sorted(ERROR_HEADERS))}) are removed unless
  --keep-error-headers. Nothing is written without --execute.

defaults from a UDSink file (-f):
  --source = spec.sink.fallback.kafka.topic, --target = spec.source.kafka.topics (when it is
  one topic), brokers = spec.source.kafka.brokers (reading and writing use one cluster).

exit codes:
  0 done (or dry run), 1 failed (brokers unreachable, a record not confirmed by the broker),
  2 invalid input (flags, file, a topic or partition that does not exist), 130 Ctrl-C (what
  was sent is flushed and counted first).
"""


@dataclass(frozen=True)
class Range:
    """Offsets [start, end) of one source partition."""

    partition: int
    start: int
    end: int

    @property
    def count(self) -> int:
        return max(0, self.end - self.start)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="udsink replay",
        description="Write a dead-letter topic's records (or a range of them) to a topic, "
        "keys and headers intact, error headers removed. A dry run unless --execute.",
        epilog=EPILOG + "\n" + SECRETS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_args(p)
    p.add_argument("--source", metavar="TOPIC", help="the topic to read (the dead-letter topic)")
    p.add_argument("--target", metavar="TOPIC", help="the topic to write to")
    p.add_argument(
        "--partition", type=int, action="append", metavar="N", help="read only this partition"
    )
    p.add_argument("--since", metavar="DATETIME", help="first record timestamp to replay")
    p.add_argument("--until", metavar="DATETIME", help="replay records before this timestamp")
    p.add_argument("--start-offset", type=int, metavar="N", help="first offset to replay")
    p.add_argument("--end-offset", type=int, metavar="N", help="last offset to replay")
    p.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        metavar="MSGS_PER_S",
        help=f"at most this many records per second (default {DEFAULT_RATE}; 0 = unlimited)",
    )
    p.add_argument("--keep-error-headers", action="store_true", help="keep udsink's error headers")
    p.add_argument(
        "--allow-same-topic",
        action="store_true",
        help="allow --target to be the source topic (the range is fixed first, so it ends)",
    )
    p.add_argument(
        "--sample",
        type=int,
        default=DEFAULT_SAMPLE,
        metavar="N",
        help=f"dry run: show this many records (default {DEFAULT_SAMPLE})",
    )
    p.add_argument("--execute", action="store_true", help="write (without it: a dry run)")
    p.add_argument("--json", action="store_true", help="print the plan or summary as JSON")
    args = p.parse_args(argv)
    if args.rate < 0:
        p.error(f"--rate must be >= 0 messages per second (got {args.rate:g})")
    if args.sample < 0:
        p.error(f"--sample must be >= 0 (got {args.sample})")
    for flag in ("start_offset", "end_offset"):
        value = getattr(args, flag)
        if value is not None and value < 0:
            p.error(f"--{flag.replace('_', '-')} must be >= 0 (got {value})")
    if args.partition and any(n < 0 for n in args.partition):
        p.error(f"--partition must be >= 0 (got {min(args.partition)})")
    return args


def _topics(args: argparse.Namespace, conn: Connection) -> tuple[str, str]:
    source, target = args.source, args.target
    spec = conn.udsink.spec if conn.udsink is not None else None
    if source is None and spec is not None:
        fallback = spec.sink.fallback
        if fallback is not None and fallback.kafka is not None:
            source = fallback.kafka.topic
    if target is None and spec is not None:
        kafka = spec.source.kafka
        if kafka is not None and len(kafka.topics) == 1:
            target = kafka.topics[0]
    if source is None:
        raise CliError(
            "give --source TOPIC (or -f a UDSink whose spec.sink.fallback is a kafka topic)",
            EXIT_USAGE,
        )
    if target is None:
        raise CliError(
            "give --target TOPIC (or -f a UDSink whose spec.source.kafka has one topic)",
            EXIT_USAGE,
        )
    if source == target and not args.allow_same_topic:
        raise CliError(
            f"--target {target} is the source topic: its records would be written again next to "
            "themselves; pass --allow-same-topic if that is what you want",
            EXIT_USAGE,
        )
    return source, target


def _offset_for_time(consumer: Any, topic: str, partition: int, ms: int, high: int) -> int:
    from confluent_kafka import TopicPartition

    [tp] = consumer.offsets_for_times([TopicPartition(topic, partition, ms)], timeout=TIMEOUT_S)
    # No record at or after the time: the partition's end.
    return high if tp.offset < 0 else int(tp.offset)


def plan_ranges(
    consumer: Any, args: argparse.Namespace, topic: str, partitions: list[int]
) -> list[Range]:
    """Each partition's [start, end), fixed now so that later writes are not read."""
    from confluent_kafka import TopicPartition

    since = parse_datetime("--since", args.since) if args.since else None
    until = parse_datetime("--until", args.until) if args.until else None
    if since is not None and until is not None and since >= until:
        raise CliError(f"--since {args.since} is not before --until {args.until}", EXIT_USAGE)
    if args.start_offset is not None and args.end_offset is not None:  # noqa: SIM102
        if args.start_offset > args.end_offset:
            raise CliError(
                f"--start-offset {args.start_offset} is after --end-offset {args.end_offset}",
                EXIT_USAGE,
            )
    ranges = []
    for p in partitions:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, p), timeout=TIMEOUT_S, cached=False
        )
        start, end = int(low), int(high)
        if args.start_offset is not None:
            start = max(start, args.start_offset)
        if args.end_offset is not None:
            end = min(end, args.end_offset + 1)
        if since is not None:
            start = max(start, _offset_for_time(consumer, topic, p, since, high))
        if until is not None:
            end = min(end, _offset_for_time(consumer, topic, p, until, high))
        ranges.append(Range(p, start, max(start, end)))
    return ranges


def read_ranges(
    consumer: Any,
    topic: str,
    ranges: list[Range],
    limit: int | None = None,
    stop: threading.Event | None = None,
) -> Iterator[Any]:
    """The records of `ranges` (per-partition order), at most `limit` of them, until `stop`."""
    from confluent_kafka import KafkaError, KafkaException, TopicPartition

    ends = {r.partition: r.end for r in ranges if r.count > 0}
    if not ends or limit == 0:
        return
    consumer.assign([TopicPartition(topic, r.partition, r.start) for r in ranges if r.count])
    done: set[int] = set()
    given = 0
    last_read = time.monotonic()
    while len(done) < len(ends) and not (stop is not None and stop.is_set()):
        msgs = consumer.consume(num_messages=500, timeout=0.2)
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(err)
            p, offset = msg.partition(), msg.offset()
            if p in done or offset >= ends[p]:
                done.add(p)
                continue
            last_read = time.monotonic()
            yield msg
            given += 1
            if limit is not None and given >= limit:
                return
            if offset >= ends[p] - 1:
                done.add(p)
        if not msgs:
            # Offsets may be missing at the end (compaction, transaction markers): a partition
            # whose position reached its end is done even if no record had the last offset.
            open_tps = [TopicPartition(topic, p) for p in ends if p not in done]
            for tp in consumer.position(open_tps):
                if tp.offset >= ends[tp.partition]:
                    done.add(tp.partition)
            if time.monotonic() - last_read > IDLE_TIMEOUT_S and len(done) < len(ends):
                waiting = sorted(set(ends) - done)
                raise CliError(
                    f"no record read from {topic} partitions {waiting} for {IDLE_TIMEOUT_S:g}s"
                )


def _headers(msg: Any, keep_errors: bool) -> list[tuple[str, bytes | None]]:
    headers: list[tuple[str, bytes | None]] = list(msg.headers() or [])
    if keep_errors:
        return headers
    return [(k, v) for k, v in headers if k not in ERROR_HEADERS]


def _preview(data: bytes | None) -> str | None:
    if data is None:
        return None
    text = data[:SAMPLE_BYTES].decode("utf-8", errors="backslashreplace")
    return text + ("…" if len(data) > SAMPLE_BYTES else "")


def _describe(msg: Any, keep_errors: bool) -> dict[str, Any]:
    return {
        "partition": msg.partition(),
        "offset": msg.offset(),
        "timestamp": format_ms(msg.timestamp()[1]),
        "key": _preview(msg.key()),
        "headers": {k: _preview(v) for k, v in (msg.headers() or [])},
        "written_headers": [k for k, _ in _headers(msg, keep_errors)],
        "value": _preview(msg.value()),
    }


class Progress:
    """A progress line on stderr: redrawn in place on a terminal, a line now and then else."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream = stream
        self.total = total
        self.tty = stream.isatty()
        self.started = self.shown = time.monotonic()

    def update(self, sent: int, confirmed: int, force: bool = False) -> None:
        now = time.monotonic()
        every = PROGRESS_EVERY_S if self.tty else PROGRESS_LINE_EVERY_S
        if not force and now - self.shown < every:
            return
        self.shown = now
        elapsed = max(now - self.started, 1e-9)
        line = (
            f"replay: sent {sent}/{self.total}, confirmed {confirmed}, "
            f"{sent / elapsed:.0f} msg/s, {elapsed:.0f}s"
        )
        if self.tty:
            self.stream.write("\r\x1b[2K" + line + ("\n" if force else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


@dataclass
class Tally:
    read: Counter[int]
    written: Counter[int]
    failed: int = 0
    stripped: int = 0
    first_errors: list[str] | None = None

    def on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.written[msg.partition()] += 1
            return
        self.failed += 1
        if self.first_errors is None:
            self.first_errors = []
        if len(self.first_errors) < 5:
            self.first_errors.append(str(err))


def _produce(producer: Any, target: str, msg: Any, headers: list[Any], tally: Tally) -> None:
    while True:
        try:
            producer.produce(
                target,
                value=msg.value(),
                key=msg.key(),
                headers=headers or None,
                on_delivery=tally.on_delivery,
            )
            return
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.1)


def execute(
    conn: Connection,
    args: argparse.Namespace,
    source: str,
    target: str,
    ranges: list[Range],
    err: TextIO,
) -> tuple[Tally, bool]:
    """Read the ranges and write them to `target`; (tally, interrupted)."""
    from confluent_kafka import Consumer, Producer

    from sink_runtime.dataplane.kafka_settings import PRODUCER_DEFAULTS

    producer = Producer(
        {
            # The data plane's partitioner, so keyed records land where its Kafka sink puts them.
            "partitioner": PRODUCER_DEFAULTS["partitioner"],
            "linger.ms": "5",
            **conn.settings,
            "enable.idempotence": True,
            "acks": "all",
        }
    )
    consumer = Consumer(_reader_settings(conn))
    tally = Tally(read=Counter(), written=Counter())
    total = sum(r.count for r in ranges)
    progress = Progress(err, total)
    # Ctrl-C sets a flag the loops check between records, so that no record is half counted:
    # each one read is produced and counted, then reading stops and the producer is flushed.
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    started = time.monotonic()
    try:
        for n, msg in enumerate(read_ranges(consumer, source, ranges, stop=stop)):
            if args.rate > 0:  # record n goes out no earlier than n/rate seconds after the start
                wait = started + n / args.rate - time.monotonic()
                while wait > 0 and not stop.is_set():
                    producer.poll(min(wait, 0.1))
                    wait = started + n / args.rate - time.monotonic()
            headers = _headers(msg, args.keep_error_headers)
            if len(headers) != len(msg.headers() or []):
                tally.stripped += 1
            _produce(producer, target, msg, headers, tally)
            tally.read[msg.partition()] += 1
            producer.poll(0)
            progress.update(n + 1, sum(tally.written.values()))
            if stop.is_set():
                break
    finally:
        signal.signal(signal.SIGINT, previous)
        consumer.close()
        # Whatever was sent is confirmed (or counted as failed) before the summary.
        remaining = producer.flush(FLUSH_TIMEOUT_S)
        tally.failed += remaining
        progress.update(sum(tally.read.values()), sum(tally.written.values()), force=True)
    return tally, stop.is_set()


def _reader_settings(conn: Connection) -> dict[str, Any]:
    return {
        **conn.settings,
        "group.id": f"udsink-replay-{uuid.uuid4().hex[:12]}",  # never committed to
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
        "auto.offset.reset": "earliest",
    }


def _print_plan(plan: dict[str, Any], out: TextIO) -> None:
    headers = "error headers kept" if plan["keep_error_headers"] else "error headers removed"
    rate = f"at most {plan['rate']:g} msg/s" if plan["rate"] else "unlimited rate"
    print(
        f"replay {plan['source']} -> {plan['target']} on {plan['brokers']} ({headers}, {rate})",
        file=out,
    )
    print(f"{'partition':>9}  {'first':>10}  {'last':>10}  {'records':>8}", file=out)
    for r in plan["partitions"]:
        first = "-" if not r["records"] else r["first_offset"]
        last = "-" if not r["records"] else r["last_offset"]
        print(f"{r['partition']:>9}  {first:>10}  {last:>10}  {r['records']:>8}", file=out)
    print(f"{'total':>9}  {'':>10}  {'':>10}  {plan['records']:>8}", file=out)
    for s in plan.get("sample", []):
        print(
            f"sample: partition {s['partition']} offset {s['offset']} at {s['timestamp']} "
            f"key={s['key']!r} headers={s['headers']} value={s['value']!r}",
            file=out,
        )


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    out, err = sys.stdout, sys.stderr
    try:
        return _main(args, out, err)
    except CliError as e:
        print(f"udsink replay: {e}", file=err)
        return e.code
    finally:
        remove_private_dirs()


def _main(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Plan (the ranges to copy, a sample of them on a dry run), execute (with --execute),
    report (the plan, then what was read and written, or JSON)."""
    from confluent_kafka import KafkaException

    conn = connect(args)
    source, target = _topics(args, conn)
    ranges, samples = _plan(args, conn, source, target)
    plan = {
        "source": source,
        "target": target,
        "brokers": conn.brokers,
        "keep_error_headers": args.keep_error_headers,
        "rate": args.rate,
        "records": sum(r.count for r in ranges),
        "partitions": [
            {
                "partition": r.partition,
                "first_offset": r.start,
                "last_offset": r.end - 1,
                "records": r.count,
            }
            for r in ranges
        ],
    }
    if not args.execute:
        plan["dry_run"] = True
        plan["sample"] = samples
        if args.json:
            print(json.dumps(plan, indent=2), file=out)
        else:
            _print_plan(plan, out)
            print("dry run: nothing written; add --execute to write these records", file=out)
        return EXIT_OK
    if not args.json:
        _print_plan(plan, out)
        out.flush()
    try:
        tally, interrupted = execute(conn, args, source, target, ranges, err)
    except KafkaException as e:
        raise CliError(f"replay failed on {conn.brokers}: {e.args[0]}") from None
    return _report(args, plan, tally, interrupted, out, err)


def _plan(
    args: argparse.Namespace, conn: Connection, source: str, target: str
) -> tuple[list[Range], list[dict[str, Any]]]:
    """The offset range of each chosen partition of `source`, and (on a dry run) a sample
    of the records they hold; both topics must exist."""
    from confluent_kafka import Consumer, KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(conn.settings)
    partitions = partitions_of(admin, source, "--source", conn.brokers)
    partitions_of(admin, target, "--target", conn.brokers)
    wanted = sorted(set(args.partition)) if args.partition else partitions
    check_partitions("--partition", wanted, partitions, source)
    offsets_given = args.start_offset is not None or args.end_offset is not None
    if offsets_given and len(wanted) > 1:
        raise CliError(
            f"--start-offset/--end-offset: topic {source} has {len(wanted)} partitions; "
            "give --partition N (offsets belong to one partition)",
            EXIT_USAGE,
        )
    consumer = Consumer(_reader_settings(conn))
    try:
        ranges = plan_ranges(consumer, args, source, wanted)
        sample = [] if args.execute else list(read_ranges(consumer, source, ranges, args.sample))
        return ranges, [_describe(m, args.keep_error_headers) for m in sample]
    except KafkaException as e:
        raise CliError(f"cannot read {source} on {conn.brokers}: {e.args[0]}") from None
    finally:
        consumer.close()


def _report(
    args: argparse.Namespace,
    plan: dict[str, Any],
    tally: Tally,
    interrupted: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    """What the run did, and its exit status: interrupted, failed (some record not
    confirmed by the broker) or completed."""
    read, written = sum(tally.read.values()), sum(tally.written.values())
    summary = {
        **plan,
        "dry_run": False,
        "outcome": "interrupted" if interrupted else ("failed" if tally.failed else "completed"),
        "read": plain(tally.read),
        "written": plain(tally.written),
        "read_total": read,
        "written_total": written,
        "failed": tally.failed,
        "error_headers_removed_from": tally.stripped,
        "errors": tally.first_errors or [],
    }
    if args.json:
        print(json.dumps(summary, indent=2), file=out)
    else:
        per = ", ".join(f"{p}: {n}" for p, n in sorted(tally.written.items())) or "none"
        print(
            f"{summary['outcome']}: read {read}, written {written} to {plan['target']} "
            f"(per partition {per}), failed {tally.failed}",
            file=out,
        )
        if not args.keep_error_headers:
            print(f"error headers removed from {tally.stripped} records", file=out)
        for error in tally.first_errors or []:
            print(f"delivery error: {error}", file=out)
    if interrupted:
        return EXIT_INTERRUPTED
    if tally.failed or written != read:
        print(
            f"udsink replay: {read - written} of {read} records not confirmed by the broker",
            file=err,
        )
        return EXIT_FAILED
    return EXIT_OK
