"""`udsink offsets`: a UDSink's consumer group, its lag per partition, and a safe reset.

Showing: for each partition of the UDSink's topics, the group's committed offset, the
partition's start and end, and the lag (end minus committed). Resetting (to the earliest or
latest offset, to a timestamp, or to an offset of one partition) is how an operator rewinds
after a bad deploy or skips a poison record. It prints the plan (per partition: current ->
new) and changes nothing unless `--execute` is given.

A reset is refused while the group has members: the UDSink's pods would keep their own
position and commit over the new offsets. Only a group the broker reports Empty (or Dead: it
has no members and maybe no offsets yet) is changed, which is the case once the UDSink is
paused (spec.lifecycle.desiredPhase: Paused) and its pods are gone. The broker enforces the same
rule on the write itself, so a pod that starts between our check and the write is refused too.

The group name is the one the operator gives the data plane (udsink_operator.build), so a
UDSink file is enough to find it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar

from udsink_cli.kafkaconn import (
    EXIT_OK,
    EXIT_USAGE,
    TIMEOUT_S,
    CliError,
    Connection,
    add_connection_args,
    check_partitions,
    connect,
    parse_datetime,
    partitions_of,
    remove_private_dirs,
)
from udsink_cli.local_secrets import HELP as SECRETS_HELP

RESETTABLE_STATES = ("EMPTY", "DEAD")
RETRY_PAUSE_S = 0.2
K = TypeVar("K")


def _coordinator_moving() -> frozenset[int]:
    from confluent_kafka import KafkaError

    return frozenset(
        {
            KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
            KafkaError.COORDINATOR_NOT_AVAILABLE,
            KafkaError.NOT_COORDINATOR,
        }
    )


EPILOG = """\
examples:
  udsink offsets -f udsink.yaml                         lag per partition
  udsink offsets -f udsink.yaml --to-datetime 2024-05-01T12:00:00Z          the plan
  udsink offsets -f udsink.yaml --to-datetime 2024-05-01T12:00:00Z --execute
  udsink offsets -f udsink.yaml --topic orders --partition 3 --to-offset 1043 --execute

resetting:
  Only while the group has no members: pause the UDSink first
    kubectl patch udsink NAME --type merge -p '{"spec":{"lifecycle":{"desiredPhase":"Paused"}}}'
  and wait for its pods to go. --to-datetime moves each partition to its first record at or
  after the time (to its end when there is none). --to-offset needs --partition and one topic,
  and an offset between the partition's start and end.

exit codes:
  0 shown (or planned, or reset), 1 failed (brokers unreachable, the group has members, the
  broker refused the change), 2 invalid input (flags, file, a topic, partition or offset that
  does not exist).
"""


@dataclass(frozen=True)
class Row:
    topic: str
    partition: int
    committed: int | None  # None: the group has committed nothing here
    start: int
    end: int
    lag: int


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="udsink offsets",
        description="Show a UDSink's consumer group lag per partition, or reset its offsets "
        "(a dry run unless --execute; refused while the group has members).",
        epilog=EPILOG + "\n" + SECRETS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_args(p)
    p.add_argument(
        "-n",
        "--namespace",
        help="the UDSink's namespace, for its default group <namespace>.<name> "
        "(default: the file's metadata.namespace)",
    )
    p.add_argument("--group", help="the consumer group (default: the UDSink file's)")
    p.add_argument(
        "--topic",
        action="append",
        metavar="TOPIC",
        help="only this topic (repeatable; default: the UDSink's topics, else the group's)",
    )
    p.add_argument(
        "--partition",
        type=int,
        action="append",
        metavar="N",
        help="only this partition (repeatable)",
    )
    to = p.add_mutually_exclusive_group()
    to.add_argument("--to-earliest", action="store_true", help="reset to each partition's start")
    to.add_argument("--to-latest", action="store_true", help="reset to each partition's end")
    to.add_argument(
        "--to-datetime",
        metavar="DATETIME",
        help="reset to the first record at/after this time (ISO 8601 with a time zone)",
    )
    to.add_argument("--to-offset", type=int, metavar="N", help="reset one partition to offset N")
    p.add_argument("--execute", action="store_true", help="apply the reset (else: print the plan)")
    p.add_argument("--json", action="store_true", help="print the table or plan as JSON")
    args = p.parse_args(argv)
    if args.partition and any(n < 0 for n in args.partition):
        p.error(f"--partition must be >= 0 (got {min(args.partition)})")
    if args.to_offset is not None and args.to_offset < 0:
        p.error(f"--to-offset must be >= 0 (got {args.to_offset})")
    if args.execute and not resetting(args):
        p.error("--execute needs one of --to-earliest, --to-latest, --to-datetime, --to-offset")
    return args


def resetting(args: argparse.Namespace) -> bool:
    return bool(
        args.to_earliest or args.to_latest or args.to_datetime or args.to_offset is not None
    )


def group_of(args: argparse.Namespace, conn: Connection) -> str:
    if args.group:
        return str(args.group)
    if conn.udsink is None:
        raise CliError("give --group NAME, or a UDSink file with -f", EXIT_USAGE)
    from udsink_operator.build import build_runtime_config

    from sink_runtime.config import KafkaSourceConfig, revised

    udsink = conn.udsink
    if args.namespace:
        udsink = revised(udsink, metadata=revised(udsink.metadata, namespace=args.namespace))
    source = build_runtime_config(udsink).source  # the operator's own derivation
    if not isinstance(source, KafkaSourceConfig):
        raise CliError(f"{args.filename}: spec.source is not kafka (no group)", EXIT_USAGE)
    return source.consumer_group


def _results(request: Callable[[], Mapping[K, Any]], what: str, conn: Connection) -> dict[K, Any]:
    """Each future's result of an admin request, asked again while the broker says to retry
    (a group coordinator loading or moving, after a broker restart or failover)."""
    from confluent_kafka import KafkaError, KafkaException

    deadline = time.monotonic() + TIMEOUT_S
    while True:
        futures = request()
        try:
            return {k: f.result(timeout=TIMEOUT_S) for k, f in futures.items()}
        except KafkaException as err:
            kerr: KafkaError = err.args[0]
            again = kerr.retriable() or kerr.code() in _coordinator_moving()
            if not again or time.monotonic() > deadline:
                raise CliError(f"{what} on {conn.brokers}: {kerr.name()}: {kerr.str()}") from None
            time.sleep(RETRY_PAUSE_S)
        except TimeoutError:
            raise CliError(f"{what} on {conn.brokers}: no answer in {TIMEOUT_S:g}s") from None


def _result(request: Callable[[], Any], what: str, conn: Connection) -> Any:
    return _results(lambda: {0: request()}, what, conn)[0]


def describe_group(admin: Any, group: str, conn: Connection) -> tuple[str, list[str]]:
    """The group's state name and its members (client id @ host)."""
    desc = _result(
        lambda: admin.describe_consumer_groups([group], request_timeout=TIMEOUT_S)[group],
        f"describing group {group}",
        conn,
    )
    members = [f"{m.client_id}@{m.host}" for m in desc.members]
    return desc.state.name, members


def _topics(args: argparse.Namespace, conn: Connection, admin: Any, group: str) -> list[str]:
    if args.topic:
        return sorted(set(args.topic))
    if conn.udsink is not None and conn.udsink.spec.source.kafka is not None:
        return sorted(set(conn.udsink.spec.source.kafka.topics))
    from confluent_kafka import ConsumerGroupTopicPartitions

    res = _result(
        lambda: admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=TIMEOUT_S
        )[group],
        f"reading group {group}'s offsets",
        conn,
    )
    topics = sorted({tp.topic for tp in res.topic_partitions})
    if not topics:
        raise CliError(f"group {group} has no committed offsets; give --topic TOPIC", EXIT_USAGE)
    return topics


def _list_offsets(
    admin: Any, specs: dict[Any, Any], conn: Connection
) -> dict[tuple[str, int], int]:
    found = _results(
        lambda: admin.list_offsets(specs, request_timeout=TIMEOUT_S), "reading offsets", conn
    )
    return {(tp.topic, tp.partition): int(info.offset) for tp, info in found.items()}


def rows(
    admin: Any, conn: Connection, group: str, tps: list[tuple[str, int]], start_offset: str
) -> list[Row]:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    res = _result(
        lambda: admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in tps])],
            request_timeout=TIMEOUT_S,
        )[group],
        f"reading group {group}'s offsets",
        conn,
    )
    committed = {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions}
    parts = [TopicPartition(t, p) for t, p in tps]
    starts = _list_offsets(admin, {tp: offset_spec("earliest") for tp in parts}, conn)
    ends = _list_offsets(admin, {tp: offset_spec("latest") for tp in parts}, conn)
    out = []
    for t, p in tps:
        c = committed.get((t, p), -1)
        start, end = starts[(t, p)], ends[(t, p)]
        # Nothing committed: the group starts at its startOffset.
        from_start = end - start if start_offset == "earliest" else 0
        lag = max(0, end - c) if c >= 0 else from_start
        out.append(Row(t, p, c if c >= 0 else None, start, end, lag))
    return out


def targets(
    args: argparse.Namespace, admin: Any, conn: Connection, table: list[Row]
) -> dict[tuple[str, int], int]:
    """The new offset of each partition, checked against what exists."""
    from confluent_kafka import TopicPartition

    if args.to_earliest:
        return {(r.topic, r.partition): r.start for r in table}
    if args.to_latest:
        return {(r.topic, r.partition): r.end for r in table}
    if args.to_datetime:
        ms = parse_datetime("--to-datetime", args.to_datetime)
        found = _list_offsets(
            admin,
            {TopicPartition(r.topic, r.partition): offset_spec("for_timestamp", ms) for r in table},
            conn,
        )
        # No record at or after the time: the partition's end (nothing to re-read).
        return {
            (r.topic, r.partition): found[(r.topic, r.partition)]
            if found[(r.topic, r.partition)] >= 0
            else r.end
            for r in table
        }
    [row] = table  # --to-offset: one topic, one partition (checked before)
    if not row.start <= args.to_offset <= row.end:
        raise CliError(
            f"--to-offset {args.to_offset}: partition {row.partition} of {row.topic} holds "
            f"offsets {row.start}..{row.end} (the end = after the last record)",
            EXIT_USAGE,
        )
    return {(row.topic, row.partition): args.to_offset}


def offset_spec(kind: str, *args: int) -> Any:
    """An admin OffsetSpec (earliest, latest, for_timestamp); the class has no type hints."""
    import confluent_kafka.admin

    return getattr(vars(confluent_kafka.admin)["OffsetSpec"], kind)(*args)


def _show(v: int | None) -> str:
    return "-" if v is None else str(v)


def print_table(group: str, state: str, members: list[str], table: list[Row], out: TextIO) -> None:
    who = f", {len(members)} member(s): {', '.join(members)}" if members else ", no members"
    print(f"group {group}: {state}{who}", file=out)
    width = max([len("total lag"), *(len(r.topic) for r in table)])
    print(
        f"{'topic':<{width}}  {'partition':>9}  {'committed':>10}  {'start':>10}  "
        f"{'end':>10}  {'lag':>8}",
        file=out,
    )
    for r in table:
        print(
            f"{r.topic:<{width}}  {r.partition:>9}  {_show(r.committed):>10}  {r.start:>10}  "
            f"{r.end:>10}  {r.lag:>8}",
            file=out,
        )
    print(
        f"{'total lag':<{width}}  {'':>9}  {'':>10}  {'':>10}  {'':>10}  "
        f"{sum(r.lag for r in table):>8}",
        file=out,
    )


def _row_json(r: Row) -> dict[str, Any]:
    return {
        "topic": r.topic,
        "partition": r.partition,
        "committed": r.committed,
        "start": r.start,
        "end": r.end,
        "lag": r.lag,
    }


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        return _main(args, sys.stdout, sys.stderr)
    except CliError as e:
        print(f"udsink offsets: {e}", file=sys.stderr)
        return e.code
    finally:
        remove_private_dirs()


def _main(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Plan (the group, its partitions, where each would move), execute (only with
    --execute, and only while nothing consumes), report (a table, the plan, or JSON)."""
    from confluent_kafka.admin import AdminClient

    conn = connect(args)
    group = group_of(args, conn)
    admin = AdminClient(conn.settings)
    tps = _selected_partitions(args, conn, admin, group)
    kafka = conn.udsink.spec.source.kafka if conn.udsink is not None else None
    start_offset = kafka.start_offset if kafka is not None else "earliest"
    state, members = describe_group(admin, group, conn)
    table = rows(admin, conn, group, tps, start_offset)
    report: dict[str, Any] = {
        "group": group,
        "state": state,
        "members": members,
        "partitions": [_row_json(r) for r in table],
        "lag": sum(r.lag for r in table),
    }
    if not resetting(args):
        if args.json:
            print(json.dumps(report, indent=2), file=out)
        else:
            print_table(group, state, members, table, out)
        return EXIT_OK

    new = targets(args, admin, conn, table)
    plan = [(r, new[(r.topic, r.partition)]) for r in table]
    report["plan"] = [
        {"topic": r.topic, "partition": r.partition, "current": r.committed, "new": to}
        for r, to in plan
    ]
    report["dry_run"] = not args.execute
    if not args.json:
        _print_plan(group, state, members, plan, out)
    refusal = _busy(conn, group, state, members)
    if args.execute:
        if refusal is not None:
            raise CliError(f"not resetting: {refusal}")
        _apply(admin, conn, group, plan)
        report["applied"] = True
    elif refusal is not None:
        report["refused"] = refusal
    if args.json:
        print(json.dumps(report, indent=2), file=out)
    if args.execute:
        if not args.json:
            print(f"reset {len(plan)} partition(s) of group {group}", file=out)
    elif refusal is not None:
        print(f"dry run: --execute would be refused now: {refusal}", file=err)
    elif not args.json:
        print("dry run: nothing changed; add --execute to apply this plan", file=out)
    return EXIT_OK


def _selected_partitions(
    args: argparse.Namespace, conn: Connection, admin: Any, group: str
) -> list[tuple[str, int]]:
    """The (topic, partition) pairs the command looks at: every partition of the group's
    topics, or those --topic/--partition name; --to-offset needs exactly one."""
    topics = _topics(args, conn, admin, group)
    tps: list[tuple[str, int]] = []
    for topic in topics:
        existing = partitions_of(admin, topic, "--topic", conn.brokers)
        if args.partition:
            check_partitions("--partition", sorted(set(args.partition)), existing, topic)
        tps += [(topic, p) for p in existing if not args.partition or p in args.partition]
    if args.to_offset is not None and len(tps) != 1:
        raise CliError(
            f"--to-offset {args.to_offset} moves one partition; {len(tps)} selected "
            f"(topics {', '.join(topics)}): give one --topic and one --partition",
            EXIT_USAGE,
        )
    return tps


def _print_plan(
    group: str, state: str, members: list[str], plan: list[tuple[Row, int]], out: TextIO
) -> None:
    print(f"group {group}: {state}, {len(members)} member(s)", file=out)
    for r, to in plan:
        change = "" if r.committed is None else f" ({to - r.committed:+d})"
        print(
            f"  {r.topic} partition {r.partition}: {_show(r.committed)} -> {to}{change}", file=out
        )


def _busy(conn: Connection, group: str, state: str, members: list[str]) -> str | None:
    """Why a reset may not run now (the group has members), or None."""
    if state in RESETTABLE_STATES:
        return None
    paused = conn.udsink is not None and conn.udsink.spec.paused
    hint = (
        "its pods are still in the group; wait until they are gone"
        if paused
        else "pause the UDSink (spec.lifecycle.desiredPhase: Paused) and wait for its pods to go"
    )
    return (
        f"group {group} is {state} with {len(members)} member(s) "
        f"({', '.join(members) or 'none listed'}): {hint}"
    )


def _apply(admin: Any, conn: Connection, group: str, plan: list[tuple[Row, int]]) -> None:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(r.topic, r.partition, to) for r, to in plan]
    )
    result = _result(  # setting offsets is idempotent: asking again is safe
        lambda: admin.alter_consumer_group_offsets([request], request_timeout=TIMEOUT_S)[group],
        f"resetting group {group}",
        conn,
    )
    failed = [f"{t.topic}[{t.partition}]: {t.error}" for t in result.topic_partitions if t.error]
    if failed:
        raise CliError(f"the broker refused part of the reset of {group}: {'; '.join(failed)}")
