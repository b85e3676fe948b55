"""The generator and JSON-lines file sources: ids, keys, partitions, exhaustion, errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from sink_runtime.config import FileSourceConfig, GeneratorSourceConfig
from sink_runtime.dataplane.sources.file import FileSource, FileSourceError
from sink_runtime.dataplane.sources.generator import GeneratorSource


async def test_generator_ids_keys_partitions_and_exhaustion() -> None:
    src = GeneratorSource(
        GeneratorSourceConfig(rate=0, count=7, value_size=16, key_count=4, partitions=2)
    )
    await src.start()
    first = await src.read(5, 1.0)
    second = await src.read(5, 1.0)
    assert src.exhausted
    assert (await src.read(5, 0.01)).datums == []
    datums = first.datums + second.datums
    assert len(datums) == 7
    # key i always lands on partition i % 2, offsets count per partition.
    assert [(d.id, d.keys) for d in datums] == [
        ("generator:0:0", ("key-0",)),
        ("generator:1:0", ("key-1",)),
        ("generator:0:1", ("key-2",)),
        ("generator:1:1", ("key-3",)),
        ("generator:0:2", ("key-0",)),
        ("generator:1:2", ("key-1",)),
        ("generator:0:3", ("key-2",)),
    ]
    assert all(len(d.value) == 16 for d in datums)
    assert len({d.value for d in datums}) == 7  # the sequence number is stamped in
    await src.ack(first)
    assert src.committed == {0: 3, 1: 2}
    await src.ack(second)
    assert src.committed == {0: 4, 1: 3}
    assert src.acked == 7


async def test_generator_rate_limits_a_read_to_what_the_rate_allows() -> None:
    now = [100.0]
    src = GeneratorSource(GeneratorSourceConfig(rate=10, count=0), clock=lambda: now[0])
    await src.start()
    batch = await src.read(100, 0.0)  # no time passed: only the first message is due
    assert len(batch.datums) == 1
    now[0] += 1.0  # a second later, ten more are allowed
    assert len((await src.read(100, 0.0)).datums) == 10
    assert not src.exhausted


async def test_file_source_reads_values_keys_headers(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    first = {"value": "hello", "keys": ["a", "b"], "headers": {"h": "1"}}
    third = {"valueBase64": base64.b64encode(b"\x00\xff").decode()}
    # Line 2 is blank: skipped, but it still counts for the line numbers (the ids).
    path.write_text(json.dumps(first) + "\n\n" + json.dumps(third) + "\n")
    src = FileSource(FileSourceConfig(path=str(path)))
    await src.start()
    batch = await src.read(10, 0.1)
    assert src.exhausted
    assert [(d.id, d.value, d.keys, dict(d.headers)) for d in batch.datums] == [
        ("file:0:1", b"hello", ("a", "b"), {"h": "1"}),
        ("file:0:3", b"\x00\xff", (), {}),
    ]
    await src.ack(batch)
    assert src.acked_ids == ["file:0:1", "file:0:3"]
    assert src.committed == {0: 4}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"value": 3}', 'line 2: field "value" must be a string, got 3'),
        ('{"keys": ["a"]}', 'line 2: exactly one of "value" or "valueBase64" is required'),
        (
            '{"value": "x", "keys": "a"}',
            "line 2: field \"keys\" must be a list of strings, got 'a'",
        ),
        ('{"value": "x", "headers": {"a": 1}}', 'line 2: field "headers" must map strings'),
        ('{"valueBase64": "!!"}', 'line 2: field "valueBase64" is not valid base64'),
        ('{"value": "x", "key": ["a"]}', "line 2: unknown field 'key'; accepted fields: value"),
        ('{"value": "x", "eventTime": "yesterday"}', 'line 2: field "eventTime" is not an ISO'),
        ("[1]", "line 2: expected a JSON object, got list"),
        ("{oops", "line 2: not valid JSON"),
    ],
)
async def test_file_source_errors_name_line_and_field(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"value": "fine"}\n' + line + "\n")
    src = FileSource(FileSourceConfig(path=str(path)))
    with pytest.raises(FileSourceError) as err:
        await src.start()
    assert str(err.value).startswith(f"{path}:2: ")
    assert message.split(": ", 1)[1] in str(err.value)


async def test_file_source_missing_file_is_named(tmp_path: Path) -> None:
    src = FileSource(FileSourceConfig(path=str(tmp_path / "nope.jsonl")))
    with pytest.raises(FileSourceError, match=r"cannot read source file .*nope\.jsonl"):
        await src.start()
