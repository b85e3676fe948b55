"""Which consumer group a local run with a Kafka source reads as, said before it starts.

By default a private group (plan.private_group): the UDSink's own group, its deployed pods and
their offsets are not touched. `--join-group` joins the UDSink's own group; that is refused
while the group has members (the deployed pods would share their partitions with a laptop,
and what the laptop acknowledges would be committed for them), unless `--force`.
"""

from __future__ import annotations

from typing import Any

from sink_runtime.config import KafkaSourceConfig
from sink_runtime.dataplane.kafka_settings import connection_settings
from udsink_cli.run import EXIT_USAGE, RunError

WHAT_JOINING_MEANS = (
    "the group's members (the UDSink's pods) give partitions to this run, and what this run "
    "acknowledges is committed for them: they never see those records"
)


def group_header(source: KafkaSourceConfig, *, joined: bool) -> str:
    topics = ",".join(source.topics)
    brokers = ",".join(source.brokers)
    if joined:
        return (
            f"udsink run: reading {topics} on {brokers} as a member of the UDSink's consumer "
            f"group {source.consumer_group}; commits go to that group"
        )
    return (
        f"udsink run: reading {topics} on {brokers} with private consumer group "
        f"{source.consumer_group}, from {source.start_offset}; commits go to that group only"
    )


def join_warning(source: KafkaSourceConfig, *, force: bool) -> str:
    """The warning of --join-group; RunError while the group has members and not `force`."""
    from confluent_kafka.admin import AdminClient

    from udsink_cli.kafkaconn import CliError, Connection
    from udsink_cli.offsets import describe_group

    settings: dict[str, Any] = dict(connection_settings(source, "source"))
    conn = Connection(settings=settings, udsink=None, kafka=source)
    try:
        state, members = describe_group(AdminClient(settings), source.consumer_group, conn)
    except CliError as err:
        raise RunError(str(err)) from None
    group = source.consumer_group
    if members and not force:
        raise RunError(
            f"--join-group {group}: the group is {state} with {len(members)} member(s) "
            f"({', '.join(members)}); joining now means {WHAT_JOINING_MEANS}. Pause the UDSink "
            "(spec.lifecycle.desiredPhase: Paused) and wait for its pods to go, run without "
            "--join-group (a private group), or pass --force",
            EXIT_USAGE,
        )
    who = f"{len(members)} member(s) ({', '.join(members)})" if members else "no members now"
    return f"udsink run: WARNING: joining consumer group {group} ({who}): {WHAT_JOINING_MEANS}"
