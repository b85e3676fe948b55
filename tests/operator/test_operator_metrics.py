"""The operator's /metrics, scraped over HTTP while the real operator reconciles UDSinks in
kmock's emulator: reconciles counted and timed, UDSinks counted by the phase in their status
(and forgotten when deleted), the process collectors and build info present."""

from __future__ import annotations

import pytest
from udsink_operator import constants
from udsink_operator.handlers import WaitingFor
from udsink_operator.metrics import OperatorMetrics

from tests.support.emulated_apiserver import (
    UDSINK_PATH,
    ApplyingEmulator,
    create,
    delete,
    eventually,
    running_operator,
    settle,
    udsink_object,
)
from tests.support.ports import free_port
from tests.support.prometheus import scrape


def scrape_port(port: int) -> dict[str, float]:
    return scrape(f"http://127.0.0.1:{port}/metrics")


def phase(port: int, name: str) -> float:
    return scrape_port(port)[f'udsink_operator_udsinks{{phase="{name}"}}']


async def test_reconciles_and_udsinks_by_phase_are_served(emulator: ApplyingEmulator) -> None:
    metrics, port = OperatorMetrics(), free_port()
    metrics.serve(port, host="127.0.0.1")
    at_start = scrape_port(port)
    assert at_start["udsink_operator_reconciles_total"] == 0
    assert at_start["udsink_operator_reconcile_errors_total"] == 0  # present before any error
    assert {at_start[f'udsink_operator_udsinks{{phase="{p}"}}'] for p in ("Pending", "Failed")} == {
        0
    }
    assert "process_cpu_seconds_total" in at_start
    assert any(k.startswith("python_info{") for k in at_start)
    assert any(k.startswith("udsink_operator_build_info{version=") for k in at_start)

    invalid = udsink_object(
        name="broken",
        sink={
            "udsink": {"container": {"image": "ghcr.io/acme/sink:1"}},
            "retryStrategy": {"onFailure": "fallback"},
        },
    )
    async with running_operator(emulator, metrics=metrics):
        await create(emulator, UDSINK_PATH, udsink_object())
        await create(emulator, UDSINK_PATH, invalid)
        await eventually(lambda: phase(port, constants.PHASE_PENDING) == 1 or None)
        await eventually(lambda: phase(port, constants.PHASE_FAILED) == 1 or None)
        await settle(emulator)
        after = scrape_port(port)
        assert after["udsink_operator_reconciles_total"] >= 2
        assert after["udsink_operator_reconcile_seconds_count"] >= 2
        assert after["udsink_operator_reconcile_errors_total"] == 0

        await delete(emulator, f"{UDSINK_PATH}/broken")
        await eventually(lambda: phase(port, constants.PHASE_FAILED) == 0 or None)
        assert phase(port, constants.PHASE_PENDING) == 1


def test_a_reconcile_that_raises_counts_as_an_error() -> None:
    metrics = OperatorMetrics()
    try:
        with metrics.reconciling():
            raise RuntimeError("API server gone")
    except RuntimeError:
        pass
    assert metrics.registry.get_sample_value("udsink_operator_reconcile_errors_total") == 1
    assert metrics.registry.get_sample_value("udsink_operator_reconciles_total") == 1
    # Waiting for a referenced Secret to appear is a state, not an error.
    with pytest.raises(WaitingFor), metrics.reconciling(not_errors=(WaitingFor,)):
        raise WaitingFor("Secret 'kafka-ca'")
    assert metrics.registry.get_sample_value("udsink_operator_reconcile_errors_total") == 1
    assert metrics.registry.get_sample_value("udsink_operator_reconciles_total") == 2
