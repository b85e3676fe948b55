"""Writing a kubeconfig for one cluster and one token user (emulated or real API server)."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_kubeconfig(
    path: Path, server: str, user: str, token: str, *, ca_file: Path | None = None
) -> Path:
    """A kubeconfig with a single context; readable only by its owner (it holds a token)."""
    cluster: dict[str, str] = {"server": server}
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "test", "cluster": cluster}],
                "users": [{"name": user, "user": {"token": token}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
                "current-context": "test",
            }
        )
    )
    path.chmod(0o600)
    return path
