"""The e2e tier's fixtures: a real Kubernetes cluster on this machine, plus a Kafka broker its
pods reach. Each fixture delegates to tests/e2e/support (one module a concern, listed in its
`__init__`).

The session fixtures make the node's bridge first (`node`), so the API server can listen on
the bridge address (pods reach it there), then start the control plane with its state in a tmp
dir and let the node join (`control_plane`). When a component does not come up, the session
fails with the last lines of every component's log; after the session the node harness
verifies it left nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.support.control_plane import ControlPlane, running_control_plane
from tests.e2e.support.node import Node
from tests.e2e.support.watch import UDSinkWatch
from tests.support.kafka_broker import KafkaBroker, running_broker


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """The node's packages, binaries and images (built now), and its bridge; `down` at the end
    stops everything the harness started and fails the session if anything was left behind."""
    harness = Node(state=tmp_path_factory.mktemp("node"))
    try:
        harness.run("prepare")
        harness.run("bridge")
        yield harness
    finally:
        harness.run("down", timeout=300)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory, node: Node) -> Iterator[ControlPlane]:
    """One control plane and its node for the whole session (torn down at its end)."""
    with running_control_plane(tmp_path_factory.mktemp("kube"), node.ip) as plane:
        try:
            # The serving certificate the API server made for itself must verify for kubectl.
            plane.kubectl("version", "--output=json")
            node.run("up", str(plane.admin_kubeconfig))
            yield plane
        finally:
            # The node goes first, while the API server still answers its kubelet.
            node.run("down", timeout=300)


@pytest.fixture(scope="session")
def broker(node: Node) -> Iterator[KafkaBroker]:
    """A real Kafka broker listening on and advertising the node's bridge address: pods reach
    it there, the tests reach it too (it is a local address). Its secured listeners (TLS,
    mTLS, SASL) present a server certificate for that address."""
    with running_broker(host=node.ip, secured=True) as started:
        yield started


@pytest.fixture(scope="module")
def udsink_watch(control_plane: ControlPlane) -> Iterator[UDSinkWatch]:
    """Watches every UDSink for a test module; fails its teardown if any version of any
    UDSink carried a finalizer."""
    watch = UDSinkWatch(control_plane)
    try:
        yield watch
    finally:
        watch.stop()
    assert not watch.with_finalizers(), "UDSinks with a finalizer:\n" + "\n".join(
        watch.with_finalizers()
    )
