"""The Kafka sink's outgoing record key and headers, as produced on its hot path.

sinks/kafka.py builds each record's key and header list from caches and, for a Kafka record,
from the header bytes it arrived with. This holds that list to the documented rule, written
once in `KeyHeaderCodec.record_headers` (precedence, dropped stale key headers, text as UTF-8
with replacement and null as ""), for any header bytes and any sink configuration: a Kafka
record and the plain Datum with the same values give exactly the same record.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sink_runtime import Datum
from sink_runtime.config import KafkaSinkConfig, KeyHeadersConfig
from sink_runtime.dataplane.keyheaders import KeyHeaderCodec, record_key
from sink_runtime.dataplane.sinks.kafka import KafkaSink
from sink_runtime.dataplane.sources.kafka_record import record_datum
from sink_runtime.types import EPOCH
from tests.support.strategies import wire_text

# Names a record may carry, the key-header names of both layouts among them.
header_names = st.one_of(
    wire_text, st.sampled_from(["__key_len", "__key_0", "__key_1", "__keys", "__k", "x"])
)
header_values = st.one_of(
    st.none(), st.binary(max_size=8), wire_text.map(str.encode), st.sampled_from([b"\xff", b"2"])
)
configs = st.builds(
    KeyHeadersConfig,
    keys=st.sampled_from(["split", "single", "none"]),
    keys_header=st.sampled_from(["__keys", "__k"]),
    propagate=st.booleans(),
    static=st.dictionaries(header_names, wire_text, max_size=3),
)


def expected(
    headers_config: KeyHeadersConfig, set_key: bool, keys: tuple[str, ...], datum: Datum
) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    codec = KeyHeaderCodec(headers_config.keys, headers_config.keys_header)
    text = codec.record_headers(
        keys, datum.headers, propagate=headers_config.propagate, static=headers_config.static
    )
    key = record_key(keys, "/") if set_key else None
    return (None if key is None else key.encode()), [(n, v.encode()) for n, v in text.items()]


@given(
    headers_config=configs,
    set_key=st.booleans(),
    keys=st.lists(wire_text, max_size=3).map(tuple),
    raw=st.dictionaries(header_names, header_values, max_size=5),
)
def test_a_record_is_written_with_the_documented_key_and_headers(
    headers_config: KeyHeadersConfig,
    set_key: bool,
    keys: tuple[str, ...],
    raw: dict[str, bytes | None],
) -> None:
    config = KafkaSinkConfig(
        brokers=["localhost:9092"],
        topic="out",
        set_key=set_key,
        key_separator="/",
        headers=headers_config,
    )
    sink = KafkaSink(config)
    record = record_datum("t:0:1", b"v", keys, EPOCH, raw)
    plain = Datum("t:0:1", b"v", keys, EPOCH, EPOCH, dict(record.headers))
    want = expected(headers_config, set_key, keys, plain)
    # Twice each: the second answer comes from the caches.
    for datum in (record, plain, record, plain):
        assert sink._outgoing(datum) == want
