"""`helm test` for the udsink operator: the checks a platform team runs after an install or
an upgrade, from inside the cluster, with the Python of the operator's own image (no other
image to mirror, standard library only).

1. The UDSink API is served: the API server's discovery lists `udsinks` in the CRD's group
   version (the CRD is installed and established).
2. Every operator pod of the release is Ready, and each one answers on its pod address:
   `/healthz` (kopf's liveness endpoint) and, when enabled, `/metrics` with the operator's own
   metric families.

The chart passes everything as environment variables (see templates/tests/). Each check prints
one line; the first failure exits 1 with what was expected and what was found.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.parse
import urllib.request
from typing import Any, NoReturn

ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
TIMEOUT = 10


def fail(message: str) -> NoReturn:
    print(f"FAIL {message}", flush=True)
    sys.exit(1)


def api_get(path: str) -> Any:
    """GET a path of the API server as the pod's ServiceAccount, parsed from JSON."""
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    with open(f"{ACCOUNT}/token") as token_file:
        token = token_file.read().strip()
    context = ssl.create_default_context(cafile=f"{ACCOUNT}/ca.crt")
    request = urllib.request.Request(f"https://{host}:{port}{path}")
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:
            return json.load(response)
    except (OSError, ValueError) as err:
        fail(f"GET {path} from the API server at {host}:{port}: {err}")


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.status, response.read().decode(errors="replace")
    except OSError as err:
        fail(f"GET {url}: {err}")


def check_api_served(group_version: str, plural: str) -> None:
    found = api_get(f"/apis/{group_version}")
    names = [r.get("name") for r in found.get("resources", [])]
    if plural not in names:
        fail(f"the API server serves {group_version} without {plural} (resources: {names})")
    print(f"ok   {plural}.{group_version} is served", flush=True)


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def check_operator_pods(
    namespace: str, selector: str, health_port: int, metrics_port: int, metric_prefix: str
) -> None:
    query = urllib.parse.urlencode({"labelSelector": selector})
    pods = api_get(f"/api/v1/namespaces/{namespace}/pods?{query}").get("items", [])
    running = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    if not running:
        fail(f"no operator pod in namespace {namespace} matches {selector}")
    for pod in running:
        name, ip = pod["metadata"]["name"], pod.get("status", {}).get("podIP")
        if not ready(pod) or not ip:
            fail(f"operator pod {namespace}/{name} is not Ready (status: {pod.get('status')})")
        address = f"[{ip}]" if ":" in ip else ip
        status, _ = http_get(f"http://{address}:{health_port}/healthz")
        if status != 200:
            fail(f"operator pod {name}: /healthz answered {status}, expected 200")
        print(f"ok   operator pod {name} is Ready and answers /healthz", flush=True)
        if metrics_port:
            status, text = http_get(f"http://{address}:{metrics_port}/metrics")
            families = sorted(
                {
                    line.split()[2]
                    for line in text.splitlines()
                    if line.startswith("# TYPE ") and line.split()[2].startswith(metric_prefix)
                }
            )
            if status != 200 or not families:
                fail(
                    f"operator pod {name}: /metrics answered {status} with no "
                    f"{metric_prefix}* family"
                )
            print(f"ok   operator pod {name} serves /metrics ({', '.join(families)})", flush=True)


def main() -> None:
    env = os.environ
    check_api_served(env["UDSINK_API"], env["UDSINK_PLURAL"])
    check_operator_pods(
        env["OPERATOR_NAMESPACE"],
        env["OPERATOR_SELECTOR"],
        int(env["OPERATOR_HEALTH_PORT"]),
        int(env["OPERATOR_METRICS_PORT"]),
        env["OPERATOR_METRIC_PREFIX"],
    )
    print("the udsink operator is installed and answers", flush=True)


if __name__ == "__main__":
    main()
