"""Fixtures of the contract tier: short socket directories (a Unix socket path has a limit)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture
def sock_dir() -> Iterator[str]:
    # pytest's tmp_path can exceed the 107 bytes of a socket path; /tmp/uds-XXXX cannot.
    path = tempfile.mkdtemp(prefix="uds-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)
