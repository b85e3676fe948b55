"""Sinks the forwarder writes to: user-defined (gRPC), Kafka, log and blackhole.

Each module holds one sink; the app picks one by the config's `type`. The Kafka sink is
imported lazily by the app, so the other sinks work without librdkafka.
"""
