"""What `import sink_runtime` offers, and what importing the config alone costs."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sink_runtime


def test_every_exported_name_resolves() -> None:
    for name in sink_runtime.__all__:
        assert getattr(sink_runtime, name) is not None, name
    with pytest.raises(AttributeError, match="has no attribute 'Server'"):
        sink_runtime.Server  # noqa: B018


def test_the_config_does_not_load_grpc() -> None:
    # The operator imports sink_runtime.config only; the SDK server must not come along.
    code = "import sys, sink_runtime.config; print('grpc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_test_kit_exports_resolve() -> None:
    import sink_runtime.testing as kit

    for name in kit.__all__:
        assert getattr(kit, name) is not None, name
