"""Sinks the forwarder writes to: user-defined (gRPC), Kafka, log and blackhole.

`udsink`, `kafka`, `log` and `blackhole` each hold one sink; the app picks one by the config's
`type`. The user-defined sink's client reaches its server through `transport.SinkTransport`:
`sink_v1_transport` (over `grpc_stream`) or `grpcio_transport` (the batch extension). The
Kafka sink is imported lazily by the app, so the other sinks work without librdkafka.
"""
