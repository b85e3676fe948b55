"""How `udsink run` launches sinks: images from a UDSink's containers, commands checked first."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from udsink_cli.isolation import ImageSink, IsolationError, image_command, image_sinks, launch
from udsink_operator.api import UDSink, parse_udsink


def _udsink() -> UDSink:
    container = {
        "image": "ghcr.io/acme/pg-sink:1.4",
        "imagePullPolicy": "Never",
        "command": ["/bin/sink", "--serve"],
        "args": ["--verbose"],
        "env": [
            {"name": "DB_HOST", "value": "db"},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "pg", "key": "pw"}}},
        ],
    }
    return parse_udsink(
        {
            "apiVersion": "udsink.dev/v1alpha1",
            "kind": "UDSink",
            "metadata": {"name": "x"},
            "spec": {
                "source": {"generator": {"count": 1}},
                "sink": {
                    "udsink": {"container": container},
                    "fallback": {"udsink": {"container": {"image": "ghcr.io/acme/dlq:2"}}},
                },
            },
        }
    )


def test_images_come_from_the_spec_and_the_flag() -> None:
    udsink = _udsink()
    images = image_sinks(udsink, ["udsink", "fb-udsink"], None)
    primary = images["udsink"]
    assert primary.image == "ghcr.io/acme/pg-sink:1.4"
    assert primary.pull == "never"
    assert primary.env == {"DB_HOST": "db"}
    assert primary.unresolved_env == ["DB_PASSWORD"]
    assert images["fb-udsink"] == ImageSink(image="ghcr.io/acme/dlq:2")
    flagged = image_sinks(udsink, ["udsink"], "localhost/mine:1")
    assert flagged["udsink"] == ImageSink(image="localhost/mine:1")


def test_image_command_mounts_the_socket_dir_without_network() -> None:
    udsink = _udsink()
    sink = image_sinks(udsink, ["udsink"], None)["udsink"]
    argv = image_command(
        ["podman"], sink, name="n1", socket_dir=Path("/tmp/s"), container_type="fb-udsink"
    )
    assert argv[:4] == ["podman", "run", "--rm", "--name"]
    pairs = list(itertools.pairwise(argv))
    assert ("--network", "none") in pairs
    assert ("--pull", "never") in pairs
    assert ("-v", "/tmp/s:/var/run/numaflow") in pairs
    assert ("-e", "DB_HOST=db") in pairs
    assert ("-e", "NUMAFLOW_UD_CONTAINER_TYPE=fb-udsink") in pairs
    # Kubernetes' command replaces the entrypoint; its args follow the image.
    assert ("--entrypoint", "/bin/sink") in pairs
    assert argv[argv.index(sink.image) :] == [sink.image, "--serve", "--verbose"]


def test_a_missing_sink_program_is_named_before_any_wrapping(tmp_path: Path) -> None:
    for program in ("./not-built-yet", "no-such-sink-command"):
        with pytest.raises(IsolationError, match=f"{program}: no such file or command"):
            launch("udsink", [program, "--flag"], tmp_path, None, cwd=tmp_path)
    (tmp_path / "sink").write_text("#!/bin/sh\n")
    ready = launch("udsink", ["./sink"], tmp_path, None, cwd=tmp_path)
    try:
        assert ready.argv[-1] == "./sink"
    finally:
        ready.undo()
