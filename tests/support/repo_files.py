"""The repository's own files, as a clean checkout plus new files not yet committed has them."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def repository_files() -> list[Path]:
    """Every file git tracks or would track (ignored files left out), that exists."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [ROOT / p for p in listed if (ROOT / p).is_file()]


def text_of(path: Path) -> str | None:
    """The file's text, or None for a binary file (one with a NUL byte)."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")
