"""The data plane: sources, sinks, the forwarder that routes results, retries and commits."""
