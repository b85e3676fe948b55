"""Session fixtures shared by every tier."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.pynumaflow_env import ensure_pynumaflow_python


@pytest.fixture(scope="session")
def pynumaflow_python() -> Path:
    """The python of a venv with pynumaflow 0.14.0 (built on first use; fails if it cannot)."""
    return ensure_pynumaflow_python()
