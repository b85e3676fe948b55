"""The node of this tier: `scripts/e2e_node.sh` (docs/e2e-node.md) provides containerd, runc,
the CNI bridge, a kubelet and a kube-scheduler, and builds the project's images here and
imports them into the node's containerd, so the kubelet never pulls them.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.support.tools import run_tool

ROOT = Path(__file__).parents[3]
NODE_HARNESS = ROOT / "scripts" / "e2e_node.sh"
# The project's one version: the tag scripts/build_images.sh gives the images.
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
EXAMPLE_SINKS_IMAGE = f"ghcr.io/udsink/example-sinks:{PROJECT_VERSION}"


@dataclass
class Node:
    """The node harness (scripts/e2e_node.sh) for one session: its state folder and address."""

    state: Path
    name: str = ""
    ip: str = ""
    containerd_socket: str = ""
    # The numaflow-go sink image the harness builds (tests/e2e/gosink).
    go_sink_image: str = ""

    def run(self, *args: str, timeout: float = 3600) -> dict[str, str]:
        """Run one harness command; fail the session with its output if it fails. Returns the
        `KEY=value` lines it printed."""
        env = {**os.environ, "UDSINK_NODE_STATE": str(self.state)}
        result = subprocess.run(
            ["bash", str(NODE_HARNESS), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(
                f"`scripts/e2e_node.sh {' '.join(args)}` exited {result.returncode}:\n"
                f"{result.stderr[-6000:]}",
                pytrace=False,
            )
        found = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        self.name = found.get("NODE_NAME", self.name)
        self.ip = found.get("NODE_IP", self.ip)
        self.containerd_socket = found.get("CONTAINERD_SOCKET", self.containerd_socket)
        self.go_sink_image = found.get("GO_SINK_IMAGE", self.go_sink_image)
        return found

    def kill_container(self, container_id: str) -> None:
        """SIGKILL a container's process through containerd, as a crash would end it."""
        runtime, _, cid = container_id.partition("://")
        assert runtime == "containerd" and cid, f"not a containerd container id: {container_id}"
        ctr = ["ctr", f"--address={self.containerd_socket}", "--namespace=k8s.io"]
        run_tool([*ctr, "tasks", "kill", "--signal=SIGKILL", cid], env=dict(os.environ))
