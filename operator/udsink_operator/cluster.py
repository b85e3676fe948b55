"""The few API calls the operator makes, over the `kubernetes` client's connection.

Separate from the handlers so the kopf wiring reads as "validate, build, compare, apply" and
so there is one place that knows URL paths, server-side apply and error shapes. Responses are
plain dicts (no generated models): the operator compares them with the builders' dicts.
Writes are server-side apply with one fixed field manager, or merge patches of the status.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config

from udsink_operator import constants

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
MERGE_PATCH_CONTENT_TYPE = "application/merge-patch+json"

_PLURALS = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Service"): "services",
    ("v1", "Secret"): "secrets",
    ("apps/v1", "Deployment"): "deployments",
    (constants.API_VERSION, constants.KIND): constants.PLURAL,
}


class ApiError(Exception):
    """A non-2xx answer of the API server, with its Status reason and message."""

    def __init__(self, status: int, reason: str, message: str, method: str, path: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{method} {path}: {status} {reason}: {message}")


def object_path(api_version: str, kind: str, namespace: str, name: str) -> str:
    plural = _PLURALS[(api_version, kind)]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{plural}/{name}"


def manifest_path(manifest: Mapping[str, Any]) -> str:
    meta = manifest["metadata"]
    return object_path(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])


def load_configuration(
    kubeconfig: str | None = None, context: str | None = None
) -> kubernetes.client.Configuration:
    """In-cluster credentials when running in a pod, else the kubeconfig (like kubectl)."""
    config = kubernetes.client.Configuration()
    if kubeconfig is None and context is None:
        try:
            kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
            return config
        except kubernetes.config.ConfigException:
            pass
    if kubeconfig is not None:
        where, paths = "--kubeconfig", [kubeconfig]
    elif os.environ.get("KUBECONFIG"):
        where, paths = "KUBECONFIG", os.environ["KUBECONFIG"].split(os.pathsep)
    else:
        where, paths = "the default path", ["~/.kube/config"]
    path = ", ".join(str(Path(p).expanduser()) for p in paths)
    if not any(Path(p).expanduser().is_file() for p in paths):
        raise KubeconfigError(
            f"no kubeconfig at {path} (from {where})"
            + ("" if kubeconfig else ", and not running in a pod")
            + "; give --kubeconfig FILE or set KUBECONFIG"
        )
    try:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=config
        )
    except kubernetes.config.ConfigException as err:
        raise KubeconfigError(f"kubeconfig {path}: {err}") from None
    return config


class KubeconfigError(Exception):
    """No usable cluster credentials; the message names the kubeconfig path tried."""


def bearer_token(config: kubernetes.client.Configuration) -> str | None:
    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix(
        "authorization"
    )
    if not header:
        return None
    token: str = header.split(" ", 1)[-1]
    return token


class Cluster:
    """Synchronous API access (kopf runs sync handlers in its thread pool)."""

    def __init__(self, config: kubernetes.client.Configuration) -> None:
        self.config = config
        self._client = kubernetes.client.ApiClient(config)

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Sequence[tuple[str, str]] = (),
        content_type: str | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        serialized = self._client.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._client.call_api(*serialized, _request_timeout=30)
        raw: bytes = response.read()  # type: ignore[no-untyped-call]
        data = json.loads(raw) if raw else None
        if not 200 <= response.status <= 299:
            info = data if isinstance(data, Mapping) else {}
            raise ApiError(
                response.status,
                str(info.get("reason") or response.reason),
                str(info.get("message") or raw[:200].decode(errors="replace")),
                method,
                path,
            )
        return data

    def get(self, path: str) -> dict[str, Any] | None:
        """The object at `path`, or None when it does not exist."""
        try:
            found: dict[str, Any] = self.request("GET", path)
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        return found

    def apply(self, manifest: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply with the operator's field manager (creates when absent). With
        `dry_run`, the API server runs every check (schema, defaulting, admission) and
        persists nothing: a refusal then costs no write."""
        query = [("fieldManager", constants.FIELD_MANAGER), ("force", "true")]
        if dry_run:
            query.append(("dryRun", "All"))
        applied: dict[str, Any] = self.request(
            "PATCH",
            manifest_path(manifest),
            body=dict(manifest),
            query=query,
            content_type=APPLY_CONTENT_TYPE,
        )
        return applied

    def patch_status(
        self,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Merge-patch the UDSink's status subresource; with `resource_version`, only if the
        object did not change since it was read (a 409 otherwise)."""
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        path = object_path(constants.API_VERSION, constants.KIND, namespace, name) + "/status"
        patched: dict[str, Any] = self.request(
            "PATCH",
            path,
            body=body,
            query=[("fieldManager", constants.FIELD_MANAGER)],
            content_type=MERGE_PATCH_CONTENT_TYPE,
        )
        return patched

    def get_udsink(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(object_path(constants.API_VERSION, constants.KIND, namespace, name))

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(object_path("apps/v1", "Deployment", namespace, name))

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """The pods in `namespace` matching the label `selector`."""
        found: dict[str, Any] = self.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods", query=[("labelSelector", selector)]
        )
        return list(found.get("items") or [])

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(object_path("v1", "Secret", namespace, name))

    def server_version(self) -> dict[str, Any]:
        version: dict[str, Any] = self.request("GET", "/version")
        return version
