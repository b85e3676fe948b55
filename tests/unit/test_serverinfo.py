"""Socket and server-info paths, and the server-info file format Numaflow's reader expects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sink_runtime.config import constants
from sink_runtime.serverinfo import (
    ServerInfo,
    ServerInfoError,
    read_server_info,
    resolve_paths,
    wait_for_server_info,
    write_server_info,
)

INFO = ServerInfo("uds", "python", "1.4.0-z", "0.14.0", {"udsink.batch": "v1"})


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        constants.CONTAINER_TYPE_ENV,
        constants.SOCKET_PATH_ENV,
        constants.SERVER_INFO_PATH_ENV,
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("container_type", "socket", "info"),
    [
        (None, "sink.sock", "sinker-server-info"),
        ("udsink", "sink.sock", "sinker-server-info"),
        ("fb-udsink", "fb-sink.sock", "fb-sinker-server-info"),
        ("ons-udsink", "ons-sink.sock", "ons-sinker-server-info"),
    ],
)
def test_container_type_chooses_the_numaflow_paths(
    container_type: str | None, socket: str, info: str
) -> None:
    assert resolve_paths(container_type) == (
        f"/var/run/numaflow/{socket}",
        f"/var/run/numaflow/{info}",
    )


def test_container_type_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMAFLOW_UD_CONTAINER_TYPE", "fb-udsink")
    assert resolve_paths()[0] == "/var/run/numaflow/fb-sink.sock"
    monkeypatch.setenv("NUMAFLOW_UD_CONTAINER_TYPE", "")
    assert resolve_paths()[0] == "/var/run/numaflow/sink.sock"


def test_an_unknown_container_type_is_refused_with_the_accepted_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NUMAFLOW_UD_CONTAINER_TYPE", "sinker")
    with pytest.raises(ValueError) as e:
        resolve_paths()
    assert str(e.value) == (
        "NUMAFLOW_UD_CONTAINER_TYPE='sinker' is not a sink container type; "
        "accepted: udsink, fb-udsink, ons-udsink"
    )
    with pytest.raises(ValueError, match=r"container_type='x' is not a sink container type"):
        resolve_paths("x")


def test_arguments_win_over_environment_which_wins_over_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UDSINK_SOCKET_PATH", "/env/s.sock")
    # The server-info file follows the socket into its directory.
    assert resolve_paths() == ("/env/s.sock", "/env/sinker-server-info")
    assert resolve_paths("fb-udsink") == ("/env/s.sock", "/env/fb-sinker-server-info")
    monkeypatch.setenv("UDSINK_SERVER_INFO_PATH", "/env/info")
    assert resolve_paths() == ("/env/s.sock", "/env/info")
    assert resolve_paths(socket_path="/arg/s", server_info_path="/arg/i") == ("/arg/s", "/arg/i")
    assert resolve_paths(socket_path="/arg/s") == ("/arg/s", "/env/info")


def test_the_file_is_json_immediately_followed_by_the_marker(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "sinker-server-info"
    write_server_info(path, INFO)
    text = path.read_text()
    assert text.endswith("U+005C__END__") and len(constants.SERVER_INFO_END_MARKER) == 13
    assert json.loads(text[:-13]) == {
        "protocol": "uds",
        "language": "python",
        "minimum_numaflow_version": "1.4.0-z",
        "version": "0.14.0",
        "metadata": {"udsink.batch": "v1"},
    }
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["sinker-server-info"]  # no temp left
    assert read_server_info(path) == INFO
    assert INFO.supports_batch()
    assert not ServerInfo("uds", "python", "1", "1").supports_batch()


def test_absent_or_unfinished_files_read_as_none(tmp_path: Path) -> None:
    path = tmp_path / "info"
    assert read_server_info(path) is None
    path.write_text('{"protocol": "uds"')
    assert read_server_info(path) is None


def test_a_file_written_by_pynumaflow_reads(tmp_path: Path) -> None:
    # pynumaflow writes json.dump's default separators and a metadata of its own.
    path = tmp_path / "info"
    path.write_text(
        '{"protocol": "uds", "language": "python", "minimum_numaflow_version": "1.4.0-z", '
        '"version": "0.14.0", "metadata": {}}U+005C__END__'
    )
    info = read_server_info(path)
    assert info is not None and info.version == "0.14.0" and not info.supports_batch()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json U+005C__END__", "not valid JSON before the end marker"),
        ("[1, 2]U+005C__END__", "expected a JSON object"),
        ('{"protocol": 1}U+005C__END__', "field 'protocol' must be a string, got 1"),
        (
            '{"protocol":"uds","language":"python","minimum_numaflow_version":"1",'
            '"version":"1","metadata":{"a":1}}U+005C__END__',
            "'metadata' must map strings to strings",
        ),
    ],
)
def test_malformed_files_name_the_path_and_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "info"
    path.write_text(content)
    with pytest.raises(ServerInfoError) as e:
        read_server_info(path)
    assert str(path) in str(e.value) and problem in str(e.value)


async def test_wait_returns_once_the_file_is_complete(tmp_path: Path) -> None:
    path = tmp_path / "info"
    write_server_info(path, INFO)
    assert await wait_for_server_info(path, timeout_s=1) == INFO


async def test_wait_times_out_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "info"
    with pytest.raises(ServerInfoError, match=r"info does not exist after 0.1s: is the sink"):
        await wait_for_server_info(path, timeout_s=0.1, poll_s=0.02)
    path.write_text("{}")
    with pytest.raises(ServerInfoError, match=r"info has no end marker after 0.1s"):
        await wait_for_server_info(path, timeout_s=0.1, poll_s=0.02)
