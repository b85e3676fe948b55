"""Numaflow's own data plane (its Rust MonoVertex processor) as a benchmark peer, run as a process.

A measuring instrument only: the binary is never part of this repository. It is looked for, in
order, at `$UDSINK_NUMAFLOW_PEER` (the `.xz` or the unpacked binary), at
`<repo>/../shared/peers/numaflow/numaflow-rs.xz`, then as an already unpacked
`$UDSINK_CACHE/numaflow-rs` (default `~/.cache/udsink`). A compressed one is unpacked into that
cache (under a file lock, so concurrent sessions share it) and its SHA-256 checked against the
build the bench was written for; an unpacked binary named by `$UDSINK_NUMAFLOW_PEER` is taken
as it is (its checksum is reported). When none exists, PeerMissing says where it looked.

The process gets what the Numaflow controller gives a MonoVertex pod's main container: the
MonoVertex object (base64 of its JSON) and the pod's names in the environment. It binds fixed
ports on every address (tests/support/private_network.py keeps that to a namespace of its own)
and, with a user-defined sink, reaches it at /var/run/numaflow (the caller runs it and the sink
with the same private directory there: udsink_cli.isolation.private_run_dir).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import lzma
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.cached_venv import cache_dir

PEER_ENV = "UDSINK_NUMAFLOW_PEER"
# Beside the repository's checkout (the shared folder of the machine's sessions).
SHARED_XZ = Path(__file__).resolve().parents[2].parent / "shared/peers/numaflow/numaflow-rs.xz"
CACHED_NAME = "numaflow-rs"
# The unpacked binary the bench was written against: numaproj/numaflow 63ba4e8, its `rust/`
# workspace's release profile, stripped (the peer folder's README states the same sum).
SHA256 = "d4663365bc3f27ae2949f14320ba8585fb4a3a615dd4e70163e8b13b56178d0f"
_XZ_MAGIC = b"\xfd7zXZ\x00"


class PeerMissing(RuntimeError):
    """The peer binary is not available (or not the expected build); the message says why."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_xz(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(len(_XZ_MAGIC)) == _XZ_MAGIC


def _unpack(xz: Path, out: Path) -> None:
    """`xz` unpacked to `out` (atomically, under a lock), its checksum checked."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.exists() and _sha256(out) == SHA256:
            return  # another session unpacked it while we waited
        part = out.with_name(f"{out.name}.part-{os.getpid()}")
        try:
            with lzma.open(xz) as src, part.open("wb") as dst:
                for block in iter(lambda: src.read(1 << 20), b""):
                    dst.write(block)
            got = _sha256(part)
            if got != SHA256:
                raise PeerMissing(
                    f"{xz} unpacks to a binary with SHA-256 {got}, not the expected {SHA256}: "
                    "not the build the bench's peer rows are written for"
                )
            part.chmod(0o755)
            part.replace(out)
        finally:
            part.unlink(missing_ok=True)


def peer_binary() -> Path:
    """The Numaflow data plane binary, unpacked into the cache when it comes compressed."""
    cached = cache_dir() / CACHED_NAME
    tried: list[str] = []
    given = os.environ.get(PEER_ENV, "").strip()
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise PeerMissing(f"{PEER_ENV}={given}: no such file (give the .xz or the binary)")
        if not _is_xz(path):
            if not os.access(path, os.X_OK):
                raise PeerMissing(f"{PEER_ENV}={given}: not executable and not an .xz file")
            return path
        _unpack(path, cached)
        return cached
    tried.append(f"{PEER_ENV} (unset)")
    if SHARED_XZ.is_file():
        _unpack(SHARED_XZ, cached)
        return cached
    tried.append(str(SHARED_XZ))
    if cached.is_file():
        got = _sha256(cached)
        if got != SHA256:
            raise PeerMissing(f"{cached} has SHA-256 {got}, not the expected {SHA256}")
        return cached
    tried.append(str(cached))
    raise PeerMissing(
        "the Numaflow peer binary is not here; looked at: " + ", ".join(tried) + f". Set "
        f"{PEER_ENV} to its .xz (or unpacked binary), or unpack it to {cached}"
    )


def describe(binary: Path) -> str:
    """What the report says of the binary measured."""
    got = _sha256(binary)
    which = "the expected build" if got == SHA256 else "NOT the expected build"
    return f"{binary} (SHA-256 {got[:16]}..., {which})"


def mono_vertex(
    name: str,
    *,
    brokers: list[str],
    topic: str,
    group: str,
    batch: int,
    read_timeout_ms: int,
    consumer_config: Mapping[str, str] | None = None,
    user_sink: bool,
) -> dict[str, Any]:
    """The MonoVertex object: a Kafka source, and a blackhole or a user-defined sink (whose
    image is never pulled: the sink is the process at /var/run/numaflow)."""
    kafka: dict[str, Any] = {"brokers": brokers, "topic": topic, "consumerGroup": group}
    if consumer_config:
        # A string in the API; the data plane reads a `key: value` line per librdkafka
        # setting, quotes and all (so none).
        kafka["config"] = "".join(f"{key}: {value}\n" for key, value in consumer_config.items())
    sink: dict[str, Any] = (
        {"udsink": {"container": {"image": "udsink-bench/sink-process:local"}}}
        if user_sink
        else {"blackhole": {}}
    )
    return {
        "apiVersion": "numaflow.numaproj.io/v1alpha1",
        "kind": "MonoVertex",
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {
            "source": {"kafka": kafka},
            "sink": sink,
            "limits": {"readBatchSize": batch, "readTimeout": f"{read_timeout_ms}ms"},
        },
    }


def peer_env(vertex: Mapping[str, Any], base: Mapping[str, str]) -> dict[str, str]:
    """`base` plus what a MonoVertex pod's main container gets from the controller.

    One tokio worker thread, as a pod with the default CPU request gets; the limit is the
    machine's cores. `VERSION` is left out: without it the controller-compatibility check is
    skipped (there is no controller).
    """
    name = vertex["metadata"]["name"]
    env = {k: v for k, v in base.items() if k != "VERSION"}
    env.update(
        {
            "NUMAFLOW_MONO_VERTEX_OBJECT": base64.b64encode(json.dumps(vertex).encode()).decode(),
            "NUMAFLOW_MONO_VERTEX_NAME": name,
            "NUMAFLOW_NAMESPACE": vertex["metadata"]["namespace"],
            "NUMAFLOW_POD": f"{name}-mv-0",
            "NUMAFLOW_REPLICA": "0",
            "NUMAFLOW_READ_AHEAD": "false",
            "NUMAFLOW_CPU_REQUEST": "1",
            "NUMAFLOW_CPU_LIMIT": str(os.cpu_count() or 1),
        }
    )
    return env


def peer_command(binary: Path) -> list[str]:
    """The argv of the MonoVertex processor (as its pod runs it)."""
    return [str(binary), "processor"]
