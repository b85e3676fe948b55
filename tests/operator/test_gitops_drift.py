"""Nothing the operator does makes Argo CD show drift: through a whole life (create, a spec
change, pause, a Deployment becoming ready, an invalid update) it never writes a UDSink's
spec, and its children never carry Argo CD's tracking label, even when the UDSink does."""

from __future__ import annotations

from typing import Any

from udsink_operator import constants

from tests.support.emulated_apiserver import (
    DEPLOYMENTS_PATH,
    UDSINK_PATH,
    UDSINKS,
    ApplyingEmulator,
    create,
    eventually,
    patch,
    running_operator,
    settle,
    stored,
    udsink_object,
)

ARGO_LABELS = {constants.LABEL_ARGOCD_INSTANCE: "shop-udsinks"}
ARGO_ANNOTATIONS = {"argocd.argoproj.io/tracking-id": "shop-udsinks:udsink.dev/UDSink:shop/orders"}


def _phase(emu: ApplyingEmulator) -> str | None:
    body = stored(emu, UDSINKS, "orders") or {}
    phase: str | None = (body.get("status") or {}).get("phase")
    return phase


def _operator_writes_to_the_udsink(emu: ApplyingEmulator) -> list[tuple[str, str, Any]]:
    """(method, path, body) of every write to the UDSink object made by the operator (kopf or
    the operator's own client), not by this test's client (aiohttp)."""
    found = []
    for request in list(emu):
        if request.method.value not in {"POST", "PUT", "PATCH"}:
            continue
        if not request.url.path.startswith(f"{UDSINK_PATH}/orders"):
            continue
        if "aiohttp" in request.headers.get("User-Agent", ""):
            continue
        found.append((request.method.value, request.url.path, request.data))
    return found


async def test_operator_never_writes_spec_nor_copies_the_tracking_label(
    emulator: ApplyingEmulator,
) -> None:
    body = udsink_object()
    body["metadata"] |= {"labels": ARGO_LABELS, "annotations": ARGO_ANNOTATIONS}
    async with running_operator(emulator):
        await create(emulator, UDSINK_PATH, body)
        await eventually(lambda: _phase(emulator) == constants.PHASE_PENDING)
        await patch(emulator, f"{UDSINK_PATH}/orders", {"spec": {"batch": {"size": 42}}})
        await patch(
            emulator,
            f"{DEPLOYMENTS_PATH}/orders/status",
            {"status": {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2}},
        )
        await eventually(lambda: _phase(emulator) == constants.PHASE_RUNNING)
        paused = {"spec": {"lifecycle": {"desiredPhase": "Paused"}}}
        await patch(emulator, f"{UDSINK_PATH}/orders", paused)
        await eventually(lambda: _phase(emulator) == constants.PHASE_PAUSED)
        invalid = {"spec": {"batch": {"size": 0}}}
        await patch(emulator, f"{UDSINK_PATH}/orders", invalid)
        await eventually(lambda: _phase(emulator) == constants.PHASE_FAILED)
        await settle(emulator)

    writes = _operator_writes_to_the_udsink(emulator)
    assert any(path.endswith("/status") for _, path, _ in writes)  # it did report
    for method, path, data in writes:
        assert "spec" not in (data or {}), f"{method} {path} wrote spec: {data}"
    final = stored(emulator, UDSINKS, "orders") or {}
    assert final["spec"]["batch"] == {"size": 0}  # exactly what the user wrote, nothing added
    assert final["spec"]["replicas"] == 2
    assert final["metadata"]["labels"] == ARGO_LABELS

    for resource, name in [
        ("apps/v1/deployments", "orders"),
        ("v1/configmaps", "orders-config"),
        ("v1/services", "orders-metrics"),
    ]:
        child = stored(emulator, resource, name)
        assert child is not None, name
        assert constants.LABEL_ARGOCD_INSTANCE not in child["metadata"].get("labels", {})
        assert not set(ARGO_ANNOTATIONS) & set(child["metadata"].get("annotations", {}))
