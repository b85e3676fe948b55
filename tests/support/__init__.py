"""Shared test support: real components (Kafka broker, pynumaflow venv) and wire clients."""
