"""The one way tests write a UDSink object: the resource's own apiVersion and kind, a name,
an optional namespace and further metadata, and the spec given (copied, so a shared default
spec is never changed through one test's object)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from udsink_operator import constants


def udsink_doc(
    name: str,
    spec: Mapping[str, Any] | None,
    *,
    namespace: str | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    """A UDSink as `kubectl apply` takes it (`spec` None: an object with no spec at all)."""
    doc: dict[str, Any] = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": name, **({"namespace": namespace} if namespace else {}), **metadata},
    }
    if spec is not None:
        doc["spec"] = copy.deepcopy(dict(spec))
    return doc
