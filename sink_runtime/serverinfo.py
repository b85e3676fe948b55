"""Where a sink server listens, and the server-info file that tells a client it is ready.

Both ends need these facts and must agree on them: the SDK server writes the file after it
listens, the data plane waits for it before it connects (and reads the batch-extension flag
from it). Numaflow's own client reads the same file, so the format is fixed: JSON followed
immediately by the 13-character end marker.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sink_runtime.config import constants


class ServerInfoError(Exception):
    """The server-info file is malformed, or did not appear in time."""


@dataclass(frozen=True)
class ServerInfo:
    """The content of a server-info file."""

    protocol: str
    language: str
    minimum_numaflow_version: str
    version: str
    metadata: dict[str, str] = field(default_factory=dict)

    def supports_batch(self) -> bool:
        """True when the server also serves udsink's batch extension (udsink.v1.BatchSink)."""
        return self.metadata.get(constants.BATCH_EXTENSION_KEY) == constants.BATCH_EXTENSION_VERSION


def _container_type(container_type: str | None) -> str:
    if container_type is not None:
        source, value = "container_type", container_type
    else:
        source = constants.CONTAINER_TYPE_ENV
        value = os.environ.get(source, "") or constants.CONTAINER_UDSINK
    if value not in constants.SOCKET_FILES:
        accepted = ", ".join(constants.SOCKET_FILES)
        raise ValueError(f"{source}={value!r} is not a sink container type; accepted: {accepted}")
    return value


def resolve_paths(
    container_type: str | None = None,
    socket_path: str | None = None,
    server_info_path: str | None = None,
) -> tuple[str, str]:
    """The (socket path, server-info path) a sink server of this container type uses.

    Each path comes from, in order: the argument; the environment (UDSINK_SOCKET_PATH,
    UDSINK_SERVER_INFO_PATH) for local runs; the container type (the argument, else
    NUMAFLOW_UD_CONTAINER_TYPE, default `udsink`) under /var/run/numaflow. The server-info
    file defaults to the socket's directory, so a socket moved elsewhere takes its file along.
    """
    kind = _container_type(container_type)
    socket = (
        socket_path
        or os.environ.get(constants.SOCKET_PATH_ENV)
        or os.path.join(constants.SOCKET_DIR, constants.SOCKET_FILES[kind])
    )
    info = (
        server_info_path
        or os.environ.get(constants.SERVER_INFO_PATH_ENV)
        or os.path.join(os.path.dirname(socket), constants.SERVER_INFO_FILES[kind])
    )
    return socket, info


def write_server_info(path: str | os.PathLike[str], info: ServerInfo) -> None:
    """Write `info` atomically: a reader sees no file or the whole file, never a part."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(asdict(info), separators=(",", ":")) + constants.SERVER_INFO_END_MARKER
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            # mkstemp makes it 0600; the client may run as another user of the shared volume.
            os.fchmod(f.fileno(), 0o644)
            f.write(payload)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _field(data: dict[str, object], name: str, path: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise ServerInfoError(
            f"server-info file {path}: field {name!r} must be a string, got {value!r}"
        )
    return value


def parse_server_info(text: str, path: str = "<text>") -> ServerInfo | None:
    """The ServerInfo in `text`, or None when the end marker is not there (still being written)."""
    marker = constants.SERVER_INFO_END_MARKER
    body = text.rstrip("\n")
    if not body.endswith(marker):
        return None
    body = body[: -len(marker)]
    try:
        data = json.loads(body)
    except json.JSONDecodeError as e:
        raise ServerInfoError(
            f"server-info file {path}: not valid JSON before the end marker: {e}"
        ) from e
    if not isinstance(data, dict):
        raise ServerInfoError(f"server-info file {path}: expected a JSON object, got {body!r}")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ServerInfoError(
            f"server-info file {path}: 'metadata' must map strings to strings, got {metadata!r}"
        )
    return ServerInfo(
        protocol=_field(data, "protocol", path),
        language=_field(data, "language", path),
        minimum_numaflow_version=_field(data, "minimum_numaflow_version", path),
        version=_field(data, "version", path),
        metadata=dict(metadata),
    )


def read_server_info(path: str | os.PathLike[str]) -> ServerInfo | None:
    """The server's info, or None when the file is absent or not complete yet."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as e:
        raise ServerInfoError(f"server-info file {path}: not UTF-8 text: {e}") from e
    return parse_server_info(text, str(path))


def _absent_state(path: str | os.PathLike[str]) -> str:
    return "has no end marker" if os.path.exists(path) else "does not exist"


async def wait_for_server_info(
    path: str | os.PathLike[str], timeout_s: float, poll_s: float = 0.05
) -> ServerInfo:
    """Wait until the server-info file is complete and return it.

    Raises ServerInfoError at once when the file is malformed, and after `timeout_s` when it
    did not appear (or never got its end marker).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        info = read_server_info(path)
        if info is not None:
            return info
        if time.monotonic() >= deadline:
            state = _absent_state(path)
            raise ServerInfoError(
                f"server-info file {path} {state} after {timeout_s:g}s: is the sink server "
                f"running, and does it use this path (see {constants.CONTAINER_TYPE_ENV}, "
                f"{constants.SERVER_INFO_PATH_ENV})?"
            )
        await asyncio.sleep(poll_s)
