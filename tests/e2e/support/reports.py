"""Waiting in this tier, and what a wait that runs out shows: `eventually` is `until`
(tests/support/waiting.py) with the tier's poll interval and a report; `Waiter` reports the
operator's log and a namespace's pods and events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tests.e2e.support.control_plane import ControlPlane
from tests.e2e.support.helm_release import OperatorRun
from tests.e2e.support.pods import pod_report
from tests.support.waiting import until

T = TypeVar("T")


def eventually(
    check: Callable[[], T | None], what: str, logs: Callable[[], str], within: float = 90
) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` with the logs."""
    return until(check, what, within=within, every=0.3, details=logs)


class Waiter:
    """`eventually` reporting the operator's log and the pods and events of `namespace`."""

    def __init__(self, plane: ControlPlane, op: OperatorRun, namespace: str) -> None:
        self.plane, self.op, self.namespace = plane, op, namespace

    def report(self) -> str:
        return self.op.logs() + "\n" + pod_report(self.plane, self.namespace)

    def until(self, check: Callable[[], Any], what: str, within: float = 180) -> Any:
        return eventually(check, what, self.report, within=within)
