"""One validation, on the real API server: its words, its verdicts, and children that a
refused spec leaves alone.

These tests need the API server and no node, so this module starts its own control plane on
loopback (the same binaries and setup as the session's, tests/e2e/support/control_plane.py)
with only the CRD installed: it starts in seconds and runs no pod. The operator runs as the
real `udsink operator` process with the admin's kubeconfig.

- The API server's own messages for bad UDSinks name the value and what is accepted, in the
  words `udsink render` uses (`kubectl apply`, its stderr asserted).
- A UDSink whose Deployment the API server refuses changes no child: the operator's
  server-side dry run of every child comes first (Deployment, ConfigMap and Service keep their
  resourceVersion and content), and the UDSink's status names the child, field and reason.
- Specs generated from the models, valid and mutated, are accepted or refused alike by the
  operator's validation and by the API server (a dry-run create).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from udsink_cli import convert
from udsink_cli.lifeline import tied_to_parent
from udsink_operator import api, constants, crd
from udsink_operator.cluster import ApiError, Cluster, load_configuration

from tests.e2e.support.control_plane import ROOT, ControlPlane, running_control_plane
from tests.e2e.support.reports import eventually
from tests.e2e.support.udsinks import child_refs
from tests.support.processes import terminate
from tests.support.udsink_doc import udsink_doc

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

NAMESPACE = "checks"


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane on loopback with the UDSink CRD established and one namespace."""
    with running_control_plane(tmp_path_factory.mktemp("apiserver"), "127.0.0.1") as plane:
        plane.kubectl("apply", "--server-side", "-f", str(ROOT / "crds" / "udsink.yaml"))
        plane.kubectl(
            "wait", "--for=condition=Established", f"crd/{constants.CRD_NAME}", "--timeout=60s"
        )
        plane.kubectl("create", "namespace", NAMESPACE)
        yield plane


@pytest.fixture(scope="module")
def cluster(api_server: ControlPlane) -> Iterator[Cluster]:
    """The operator's own API client, as the cluster admin."""
    connection = Cluster(load_configuration(str(api_server.admin_kubeconfig)))
    yield connection
    connection.close()


def udsink(name: str, **spec: Any) -> dict[str, Any]:
    """A valid UDSink (generator source, log sink) with top-level spec keys replaced."""
    base = {"source": {"generator": {"rate": 10}}, "sink": {"log": {}}}
    return udsink_doc(name, {**base, **spec}, namespace=NAMESPACE)


# --- The API server's words ---

# (what, spec overrides, the message kubectl prints). Each is also what `udsink render` says.
WORDED: list[tuple[str, dict[str, Any], str]] = [
    (
        "broker",
        {"source": {"kafka": {"brokers": ["kafka"], "topics": ["t"]}}},
        'must be host:port, for example kafka:9092 (got "kafka")',
    ),
    (
        "duration-out-of-range",
        {"batch": {"timeout": "11m"}},
        'must be between 1ms and 10m (got "11m")',
    ),
    (
        "duration-overflow",
        {"batch": {"timeout": "9999999999h"}},
        "must be a Go-style duration such as 100ms, 1s, 2m30s, 1h",
    ),
    (
        "owned-kafka-key",
        {"source": {"kafka": {"brokers": ["k:1"], "topics": ["t"], "config": {"group.id": "g"}}}},
        "key 'group.id' is owned by udsink (set consumerGroup); keys udsink owns: acks,",
    ),
    (
        "two-sinks",
        {"sink": {"log": {}, "blackhole": {}}},
        "exactly one of udsink, kafka, log, blackhole must be set (got log, blackhole)",
    ),
    (
        "toleration-exists-value",
        {"pod": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}},
        'operator Exists matches any value: remove value "v" or use operator Equal',
    ),
    (
        "annotation-key",
        {"pod": {"metadata": {"annotations": {"bad key!": "x"}}}},
        "annotation keys must be [prefix/]name: a DNS subdomain prefix",
    ),
    (
        "field-ref",
        {
            "sink": {
                "udsink": {
                    "container": {
                        "image": "sink:1",
                        "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.x"}}}],
                    }
                }
            }
        },
        "must be a pod field the API server exposes: metadata.name, metadata.namespace, "
        "metadata.uid, metadata.labels['<key>']",
    ),
    (
        "node-affinity-in-without-values",
        {
            "pod": {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": "zone", "operator": "In"}]}
                            ]
                        }
                    }
                }
            }
        },
        "operator In needs one or more values",
    ),
    (
        "absolute-localhost-profile",
        {
            "pod": {
                "securityContext": {
                    "seccompProfile": {"type": "Localhost", "localhostProfile": "/etc/p.json"}
                }
            }
        },
        "must be a path relative to the kubelet's seccomp profile root (not absolute, no '..') "
        '(got "/etc/p.json")',
    ),
]


@pytest.mark.parametrize(("spec", "expected"), [w[1:] for w in WORDED], ids=[w[0] for w in WORDED])
def test_api_server_says_what_render_says(
    api_server: ControlPlane, spec: dict[str, Any], expected: str
) -> None:
    body = udsink("worded", **spec)
    result = api_server.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body), check=False)
    assert result.returncode != 0, "the API server accepted an invalid UDSink"
    assert expected in result.stderr, result.stderr
    # Words only: no CEL evaluation error (a duration `duration()` could not convert).
    assert "conversion" not in result.stderr and "no such overload" not in result.stderr
    with pytest.raises(api.SpecError) as refused:
        api.parse_udsink(body)
    assert any(expected in issue for issue in refused.value.issues), refused.value.issues


def test_strings_are_not_numbers_for_either(api_server: ControlPlane) -> None:
    body = udsink("strict", batch={"size": "10"}, source={"generator": {"count": "5"}})
    result = api_server.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body), check=False)
    assert result.returncode != 0 and "spec.batch.size" in result.stderr, result.stderr
    assert "spec.source.generator.count" in result.stderr, result.stderr
    with pytest.raises(api.SpecError) as refused:
        api.parse_udsink(body)
    assert refused.value.issues == [
        'spec.source.generator.count: must be an integer (got the string "5")',
        'spec.batch.size: must be an integer (got the string "10")',
    ]


# --- A refused Deployment changes no child ---

# Valid to the operator and to the CRD, refused by the API server in the Deployment: an
# extended resource must request exactly what it limits.
GPU_REQUEST_BELOW_LIMIT = {
    "resources": {"requests": {"example.com/gpu": 1}, "limits": {"example.com/gpu": 2}}
}


def children_state(api_server: ControlPlane, name: str) -> dict[str, Any]:
    """What a write of the operator would change in each child: its content, annotations,
    generation, the operator's own managedFields entry (time and fields), and for the
    ConfigMap and Service the resourceVersion (the Deployment's also moves with the status the
    deployment controller writes, which is not the operator's doing)."""
    found: dict[str, Any] = {}
    for kind, child in child_refs(name).values():
        obj = api_server.get_json(kind, child, f"--namespace={NAMESPACE}")
        meta = obj["metadata"]
        found[kind] = {
            "generation": meta.get("generation"),
            "annotations": meta.get("annotations"),
            "content": obj.get("data") or obj.get("spec"),
            "written by the operator": [
                entry
                for entry in meta.get("managedFields") or []
                if entry.get("manager") == constants.FIELD_MANAGER
            ],
        }
        if kind != "deployment":
            found[kind]["resourceVersion"] = meta["resourceVersion"]
    return found


@pytest.fixture
def operator_process(api_server: ControlPlane, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """`udsink operator` watching the test namespace; yields a reader of its log."""
    log_path = tmp_path / "operator.log"
    argv = [
        str(Path(sys.executable).parent / "udsink"),
        "operator",
        f"--kubeconfig={api_server.admin_kubeconfig}",
        f"--namespace={NAMESPACE}",
        "--standalone",
        "--liveness=",
        "--metrics-port=0",
        "--log-format=text",
        "--recheck-interval=2",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            tied_to_parent(argv, env=env, cwd=ROOT),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
        )
        try:
            yield lambda: log_path.read_text(errors="replace")[-6000:]
        finally:
            terminate(process, grace_s=20, kill_wait_s=5)


def test_refused_deployment_changes_no_child(
    api_server: ControlPlane, operator_process: Callable[[], str]
) -> None:
    name = "atomic"
    good = udsink(name, replicas=1)
    api_server.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(good))

    def running() -> dict[str, Any] | None:
        obj = api_server.get_json("udsink", name, f"--namespace={NAMESPACE}")
        ready = obj.get("status", {}).get("conditions")
        has_all = all(
            api_server.kubectl(
                "get", kind, child, f"--namespace={NAMESPACE}", check=False
            ).returncode
            == 0
            for kind, child in child_refs(name).values()
        )
        return obj if ready and has_all else None

    eventually(running, "the UDSink's three children", operator_process)
    before = children_state(api_server, name)

    # The batch size changes the ConfigMap, so a reconcile that wrote children one by one
    # would rewrite it before the Deployment is refused.
    bad = udsink(
        name,
        replicas=1,
        batch={"size": 7},
        runtime=GPU_REQUEST_BELOW_LIMIT,
    )
    api.parse_udsink(bad)  # the operator's own validation lets it through
    api_server.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(bad))

    def failed() -> dict[str, Any] | None:
        obj = api_server.get_json("udsink", name, f"--namespace={NAMESPACE}")
        status = obj.get("status") or {}
        return obj if status.get("phase") == constants.PHASE_FAILED else None

    refused = eventually(failed, "phase Failed", operator_process)
    message = refused["status"]["message"]
    assert f"the API server refuses Deployment {name}" in message, message
    assert "example.com/gpu" in message and "must be equal to example.com/gpu limit" in message
    assert children_state(api_server, name) == before

    # Requests above limits: refused by the operator's own validation (CEL cannot compare a
    # map's quantities within the CRD's cost budget), before any dry run; nothing changes.
    over = udsink(
        name,
        replicas=1,
        batch={"size": 7},
        runtime={"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
    )
    api_server.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(over))

    def reported() -> dict[str, Any] | None:
        obj = api_server.get_json("udsink", name, f"--namespace={NAMESPACE}")
        words = "spec.runtime.resources: requests.cpu (2) must not exceed limits (1)"
        return obj if words in (obj.get("status") or {}).get("message", "") else None

    eventually(reported, "the operator's refusal of requests above limits", operator_process)
    assert children_state(api_server, name) == before

    # Fixed again: the children converge on the fixed spec (the ConfigMap now changes).
    fixed = udsink(name, replicas=1, batch={"size": 7})
    api_server.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(fixed))

    def rewritten() -> dict[str, Any] | None:
        now = children_state(api_server, name)
        moved = now["configmap"]["resourceVersion"] != before["configmap"]["resourceVersion"]
        return now if moved else None

    after = eventually(rewritten, "the ConfigMap of the fixed spec", operator_process)
    assert after["deployment"]["generation"] != before["deployment"]["generation"]


def test_refused_first_deployment_creates_no_child(
    api_server: ControlPlane, operator_process: Callable[[], str]
) -> None:
    name = "never"
    bad = udsink(
        name,
        runtime=GPU_REQUEST_BELOW_LIMIT,
    )
    api_server.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(bad))

    def failed() -> dict[str, Any] | None:
        obj = api_server.get_json("udsink", name, f"--namespace={NAMESPACE}")
        return obj if (obj.get("status") or {}).get("phase") == constants.PHASE_FAILED else None

    eventually(failed, "phase Failed", operator_process)
    for kind, child in child_refs(name).values():
        result = api_server.kubectl("get", kind, child, f"--namespace={NAMESPACE}", check=False)
        assert "NotFound" in result.stderr, f"{kind}/{child} exists: {result.stdout}"


# --- Generated specs: the operator and the API server agree ---

# Valid specs that reach most of the schema; mutations start from one of them.
BASES: list[dict[str, Any]] = [
    {"source": {"generator": {"rate": 10, "count": 5}}, "sink": {"log": {}}},
    yaml.safe_load((ROOT / "examples" / "02-fallback" / "udsink.yaml").read_text())["spec"],
    yaml.safe_load((ROOT / "examples" / "03-kafka-to-kafka-headers" / "udsink.yaml").read_text())[
        "spec"
    ],
    {
        "source": {"generator": {}},
        "sink": {"blackhole": {}, "retryStrategy": {"backoff": {"interval": "1s", "cap": "5s"}}},
        "runtime": {"resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": 1}}},
        "pod": {
            "metadata": {"labels": {"team": "a"}, "annotations": {"example.com/x": "y"}},
            "tolerations": [{"key": "k", "operator": "Equal", "value": "v"}],
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "z", "operator": "In", "values": ["a"]}]}
                        ]
                    }
                }
            },
        },
    },
]


def leaves(schema: dict[str, Any], value: Any, path: tuple[Any, ...] = ()) -> Iterator[Any]:
    """(path, schema node) of every field of `value` and every field its objects could have."""
    if "properties" in schema and isinstance(value, dict):
        for name, child in schema["properties"].items():
            if name in value:
                yield from leaves(child, value[name], (*path, name))
            yield (*path, name), child
        yield (*path, "unknownField"), {"type": "unknown"}
    elif isinstance(schema.get("additionalProperties"), dict) and isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(schema["additionalProperties"], item, (*path, key))
        yield (*path, "new-key"), schema["additionalProperties"]
    elif "items" in schema and isinstance(value, list) and value:
        yield from leaves(schema["items"], value[0], (*path, 0))


def candidates(node: dict[str, Any]) -> list[Any]:
    """Values in and just out of what a schema node (generated from the models) accepts."""
    kind = node.get("type")
    if node.get("x-kubernetes-int-or-string"):
        return [1, "500m", "1.5Gi", "2", "abc", "1e3", -1, True, "0.1.2"]
    if "enum" in node:
        return [*node["enum"], str(node["enum"][0]).lower() + "x", "", 1]
    if kind == "integer":
        low, high = node.get("minimum", 0), node.get("maximum", 100)
        return [low, high, low - 1, high + 1, str(low), 1.5, True, None]
    if kind == "number":
        low, high = node.get("minimum", 0), node.get("maximum", 10)
        return [low, high, high + 0.5, low - 1, "1", True]
    if kind == "boolean":
        return [True, False, "true", 1]
    if kind == "string":
        longest = node.get("maxLength", 300)
        return [
            "a",
            "",
            "x" * (longest + 1),
            5,
            "kafka:9092",
            "kafka",
            "1s",
            "11m",
            "0.5ms",
            "99999999h",
            "Bad_Name",
            "a b",
            "/abs/p",
            "metadata.name",
            "__key_x",
            "example.com/x",
        ]
    if kind == "object":
        return [{}, {"unknownField": 1}, "text", []]
    if kind == "array":
        return [[], ["a"], [{}], "text"]
    return [1, "x", {}]


def with_value(spec: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(spec)
    node: Any = changed
    for part in path[:-1]:
        node = node[part]
    if value is None:
        if isinstance(node, dict):
            node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return changed


def server_verdict(cluster: Cluster, body: dict[str, Any]) -> str | None:
    """None when the API server would create `body`, else its message (a dry run, with
    kubectl's strict field validation)."""
    try:
        cluster.request(
            "POST",
            f"/apis/{constants.API_VERSION}/namespaces/{NAMESPACE}/{constants.PLURAL}",
            body=body,
            query=[("dryRun", "All"), ("fieldValidation", "Strict")],
        )
    except ApiError as err:
        if err.status not in (400, 422):
            raise
        return err.message
    return None


def operator_verdict(body: dict[str, Any]) -> str | None:
    try:
        api.parse_udsink(body)
    except api.SpecError as err:
        return str(err)
    return None


SPEC_SCHEMA = crd.openapi_schema()["properties"]["spec"]


@settings(
    # A few hundred specs: each costs one dry-run request (well under a minute in all).
    max_examples=800,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_operator_and_api_server_agree_on_generated_specs(
    cluster: Cluster, data: st.DataObject
) -> None:
    spec = data.draw(st.sampled_from(BASES), label="base")
    changes = []
    for _ in range(data.draw(st.integers(0, 2), label="changes")):
        fields = sorted(leaves(SPEC_SCHEMA, spec), key=repr)
        path, node = data.draw(st.sampled_from(fields), label="field")
        value = data.draw(st.sampled_from(candidates(node)), label="value")
        spec = with_value(spec, path, value)
        changes.append(f"spec.{'.'.join(map(str, path))} = {value!r}")
    body = udsink("generated")
    body["spec"] = spec
    server, operator = server_verdict(cluster, body), operator_verdict(body)
    assert (server is None) == (operator is None), (
        f"{'; '.join(changes) or 'unchanged'}: "
        f"API server {'accepts' if server is None else 'refuses: ' + server}; "
        f"operator {'accepts' if operator is None else 'refuses: ' + operator}"
    )


def _converted_numaflow() -> list[tuple[str, dict[str, Any]]]:
    """Every UDSink `udsink convert` makes of the Numaflow manifests in tests/data/numaflow."""
    made = []
    for path in sorted((ROOT / "tests" / "data" / "numaflow").glob("*.yaml")):
        result = convert.convert_object(yaml.safe_load(path.read_text()))
        if result.udsink is not None:
            made.append((path.name, result.udsink))
    return made


CONVERTED = _converted_numaflow()


@pytest.mark.parametrize(("name", "body"), CONVERTED, ids=[c[0] for c in CONVERTED])
def test_converted_numaflow_manifests_pass_the_api_servers_dry_run(
    cluster: Cluster, name: str, body: dict[str, Any]
) -> None:
    body = copy.deepcopy(body)
    body["metadata"]["namespace"] = NAMESPACE
    assert server_verdict(cluster, body) is None, name


def test_every_convertible_numaflow_manifest_is_dry_run() -> None:
    # MonoVertex and Pipeline, Kafka and generator sources: a change that made fewer of the
    # manifests convertible would quietly shrink the test above.
    assert len(CONVERTED) == 7, [c[0] for c in CONVERTED]
