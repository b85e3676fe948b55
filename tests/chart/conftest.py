"""The chart tier's fixture: a real helm binary, built once per machine and cached.

`scripts/ensure_helm.sh` builds helm from Go modules into ~/.cache/udsink/helm-<version>/ on
first use (a few minutes) and only prints its path afterwards. When it cannot, the tier fails
with the build output: a chart test never runs without the real helm.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
ENSURE_HELM = ROOT / "scripts" / "ensure_helm.sh"


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    """Path of the helm v3 binary (built on first use; fails loudly if it cannot)."""
    result = subprocess.run(
        ["bash", str(ENSURE_HELM)], capture_output=True, text=True, timeout=1800, check=False
    )
    path = Path(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else None
    if result.returncode != 0 or path is None or not path.is_file():
        pytest.fail(
            f"cannot provide helm with {ENSURE_HELM} (exit {result.returncode}):\n"
            f"{result.stderr[-4000:]}",
            pytrace=False,
        )
    return path
