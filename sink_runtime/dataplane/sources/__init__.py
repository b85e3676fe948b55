"""Sources the forwarder reads from: Kafka, the generator and JSON-lines files.

Each module holds one source; the app picks one by the config's `type`. The Kafka source is
imported lazily by the app, so the generator and file sources work without librdkafka.
"""
