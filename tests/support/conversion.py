"""The Kafka source's record conversion with its C module switched off (the Python reference).

`sources/kafka_record.py` converts the usual records in C and reads headers through the C
module's checked call; inside `python_only()` neither is used, as in a build without a C
compiler, so tests can hold the two paths to the same answers on the same records.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sink_runtime.dataplane.sources import kafka_record


@contextlib.contextmanager
def python_only() -> Iterator[None]:
    saved = kafka_record._fastrecords, kafka_record._checked_headers
    kafka_record._fastrecords = kafka_record._checked_headers = None
    try:
        yield
    finally:
        kafka_record._fastrecords, kafka_record._checked_headers = saved
