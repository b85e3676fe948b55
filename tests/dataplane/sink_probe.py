"""Run a data plane from a RuntimeConfig in this process and print what happened, as JSON.

The hostile-sink suite (test_hostile_sinks.py) runs this as a subprocess, so the memory it
reports is the data plane's alone (the misbehaving sink lives in the test process): the
resident set once the data plane's objects are built, before anything talks to the sink
(`rss_base_kib`), and the peak resident set from then to the end (`rss_peak_kib`: Linux's
VmHWM, reset at the base through /proc/self/clear_refs, so what imports took and freed
before does not count).

Usage: python -m tests.dataplane.sink_probe CONFIG_JSON. The source must be a file source. It
runs until the source is exhausted and acknowledged, start-up fails, or SIGTERM: then the
in-flight batch is abandoned unacknowledged. The last line of stdout is the report: the ids
acknowledged, the error that ended the run, the time from start to end, the memory, the
records logged at WARNING and above, and the sink metrics the suite asserts on.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import signal
import sys
import time
from typing import Any, get_args

from sink_runtime.config import FileSourceConfig, load_config
from sink_runtime.contract import ViolationKind
from sink_runtime.dataplane.app import DataPlane
from sink_runtime.dataplane.protocols import PRIMARY
from sink_runtime.dataplane.sources.file import FileSource


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[dict[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(
            {"logger": record.name, "level": record.levelname, "message": record.getMessage()}
        )


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        found = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    assert found is not None, field
    return int(found.group(1))


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


async def _run(config_path: str) -> dict[str, Any]:
    config = load_config(config_path)
    assert isinstance(config.source, FileSourceConfig)
    source = FileSource(config.source)
    dp = DataPlane(config, source=source, serve_http=False)
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGTERM, lambda: dp.stop(abandon_in_flight=True)
    )
    gc.collect()
    _reset_peak_rss()
    base = _status_kib("VmRSS")
    started = time.monotonic()
    error = None
    try:
        await dp.run()
    except Exception as err:
        error = f"{type(err).__name__}: {err}"
    elapsed = time.monotonic() - started
    value = dp.metrics.value
    return {
        "acked": source.acked_ids,
        "error": error,
        "elapsed_s": elapsed,
        "rss_base_kib": base,
        "rss_peak_kib": _status_kib("VmHWM"),
        "violations": {
            kind: value("udsink_contract_violations_total", sink=PRIMARY, kind=kind)
            for kind in get_args(ViolationKind)
        },
        "write_timeouts": value("udsink_sink_write_timeouts_total", sink=PRIMARY),
    }


def main() -> None:
    collect = _Collect()
    logging.getLogger().addHandler(collect)
    logging.getLogger().setLevel(logging.WARNING)
    report = asyncio.run(_run(sys.argv[1]))
    report["logs"] = collect.records
    print(json.dumps(report))


if __name__ == "__main__":
    main()
