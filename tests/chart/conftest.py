"""The chart tier's fixture: a real helm binary, built once per machine and cached.

`scripts/ensure_helm.sh` builds helm from Go modules into ~/.cache/udsink/helm-<version>/ on
first use (a few minutes) and only prints its path afterwards. When it cannot, the tier fails
with the build output: a chart test never runs without the real helm.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.go_tools import ensured

ROOT = Path(__file__).parents[2]
ENSURE_HELM = ROOT / "scripts" / "ensure_helm.sh"


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    """Path of the helm v3 binary (built on first use; fails loudly if it cannot)."""
    return ensured(ENSURE_HELM)
