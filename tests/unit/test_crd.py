"""The generated CRD: committed copies are current, the schema is structural, and the API
server's own checks (OpenAPI + CEL) agree with the operator's validation."""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator, Mapping
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml
from udsink_cli import generate
from udsink_operator import api, constants, crd, reference

from sink_runtime.config.errors import FALLBACK_NEEDED
from tests.support.kube_schemas import check_manifest, crd_violations

ROOT = Path(__file__).parents[2]
COMMITTED = ROOT / "crds" / "udsink.yaml"
CHART_COPY = ROOT / "charts" / "udsink-operator" / "crds" / "udsink.yaml"
EXAMPLES = sorted(ROOT.glob("examples/*/udsink.yaml"))


def test_committed_crd_is_the_generators_output() -> None:
    assert COMMITTED.read_text() == crd.render_yaml(), (
        "crds/udsink.yaml is stale: run `udsink crd > crds/udsink.yaml` and copy it to "
        "charts/udsink-operator/crds/udsink.yaml"
    )


def test_chart_copy_is_identical() -> None:
    assert CHART_COPY.read_bytes() == COMMITTED.read_bytes()


def test_udsink_crd_command_prints_the_committed_file() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert generate.crd_main([]) == 0
    assert out.getvalue() == COMMITTED.read_text()


def test_crd_is_a_valid_kubernetes_object() -> None:
    check_manifest(crd.crd())


def _nodes(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path or ".", schema
    for name, child in schema.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from _nodes(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[*]")


def test_schema_is_structural() -> None:
    schema = crd.openapi_schema()
    for path, node in _nodes(schema):
        int_or_string = node.get("x-kubernetes-int-or-string") is True
        assert "type" in node or int_or_string, f"{path}: no type"
        assert not {"$ref", "$defs", "allOf", "oneOf", "not", "const", "title"} & set(node), path
        assert node.get("additionalProperties") is not False, path
        assert not ("properties" in node and "additionalProperties" in node), path
        if "anyOf" in node:
            assert int_or_string and node["anyOf"] == [{"type": "integer"}, {"type": "string"}]
            assert "type" not in node, path
        if node.get("type") == "array":
            assert "items" in node, f"{path}: array without items"


def test_every_spec_field_has_a_description_for_kubectl_explain() -> None:
    schema = crd.openapi_schema()
    for path, node in _nodes(schema):
        if path.startswith(".metadata") or path.endswith("*]") or path.endswith(".*"):
            continue
        assert node.get("description"), f"{path}: no description"


def test_only_replicas_has_a_server_side_default() -> None:
    defaults = {p for p, node in _nodes(crd.openapi_schema()) if "default" in node}
    assert defaults == {".spec.replicas"}


def test_names_subresources_and_printer_columns() -> None:
    obj = crd.crd()
    assert obj["metadata"]["name"] == "udsinks.udsink.dev"
    assert obj["spec"]["names"]["shortNames"] == ["uds"]
    assert obj["spec"]["scope"] == "Namespaced"
    (version,) = obj["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Phase": ".status.phase",
        "Desired": ".spec.replicas",
        "Ready": ".status.readyReplicas",
        "Age": ".metadata.creationTimestamp",
        "Message": ".status.message",
    }


def test_conditions_are_a_map_list_keyed_by_type() -> None:
    conditions = crd.openapi_schema()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_cel_rules_cover_the_cross_field_rules() -> None:
    rules = crd.cel_rules()
    for path, start in [
        (".spec.source", "exactly one of kafka, generator must be set"),
        (".spec.sink", "exactly one of udsink, kafka, log, blackhole must be set"),
        (".spec.sink", FALLBACK_NEEDED),
        (".spec.sink.fallback", "exactly one of udsink, kafka, log, blackhole must be set"),
        (".spec.sink.onSuccess", "exactly one of udsink, kafka, log, blackhole must be set"),
        (".spec.sink.serve", "exactly one of kafka, log must be set"),
        (".spec.batch.timeout", "must be between 1ms and 10m"),
        (".spec.sink.retryStrategy.backoff", "cap (cap) must be at least interval"),
    ]:
        assert any(p == path and r["message"].startswith(start) for p, r in rules), start
    # fallback/onSuccess cannot nest: their schema simply has no such fields.
    sink = crd.openapi_schema()["properties"]["spec"]["properties"]["sink"]["properties"]
    for secondary in ("fallback", "onSuccess"):
        assert not {"fallback", "onSuccess", "serve", "retryStrategy"} & set(
            sink[secondary]["properties"]
        )
    assert set(sink["serve"]["properties"]) == {"kafka", "log"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_examples_pass_the_api_servers_checks(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        assert crd_violations(doc) == []


def _example(mutate: Any) -> dict[str, Any]:
    doc = copy.deepcopy(yaml.safe_load((ROOT / "examples/02-fallback/udsink.yaml").read_text()))
    mutate(doc["spec"])
    return doc


def _set(path: str, value: Any) -> Any:
    def mutate(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last)
        else:
            node[last] = value

    return mutate


# Each rule the API server enforces, with the message `kubectl apply` prints, alongside the
# operator's own validation of the same input (both must refuse it).
REFUSED: list[tuple[str, Any, str]] = [
    ("no-source", _set("source", {}), ".spec.source: exactly one of kafka, generator"),
    (
        "two-sinks",
        _set("sink.log", {}),
        ".spec.sink: exactly one of udsink, kafka, log, blackhole must be set",
    ),
    (
        "fallback-required",
        _set("sink.fallback", None),
        f".spec.sink: {FALLBACK_NEEDED}",
    ),
    (
        "fallback-nested",
        _set("sink.fallback.fallback", {"log": {}}),
        ".spec.sink.fallback.fallback: unknown field",
    ),
    (
        "serve-two",
        _set("sink.serve", {"log": {}, "kafka": {"brokers": ["a:1"], "topic": "t"}}),
        ".spec.sink.serve: exactly one of kafka, log must be set",
    ),
    ("timeout-bound", _set("batch.timeout", "11m"), ".spec.batch.timeout: must be between 1ms"),
    (
        "timeout-syntax",
        _set("batch.timeout", "1 sec"),
        ".spec.batch.timeout: must be a Go-style duration such as 100ms, 1s, 2m30s, 1h "
        '(units ns, us, ms, s, m, h; at most 6 digits before a decimal point) (got "1 sec")',
    ),
    ("batch-size", _set("batch.size", 0), ".spec.batch.size: 0 is less than the minimum of 1"),
    (
        "cap-interval",
        _set("sink.retryStrategy.backoff.cap", "100ms"),
        ".spec.sink.retryStrategy.backoff: cap (100ms) must be at least interval (200ms)",
    ),
    (
        "owned-kafka-key",
        _set("source.kafka.config", {"security.protocol": "SSL"}),
        ".spec.source.kafka.config: key 'security.protocol' is owned by udsink (set tls and sasl); "
        "keys udsink owns: acks,",
    ),
    (
        "owned-kafka-prefix",
        _set("sink.fallback.kafka.config", {"ssl.key.password": "x"}),
        ".spec.sink.fallback.kafka.config: keys starting with 'ssl.' are owned by udsink (set tls "
        "(certificates come from Secrets)); keys udsink owns: acks,",
    ),
    (
        "topic",
        _set("sink.fallback.kafka.topic", "a/b"),
        ".spec.sink.fallback.kafka.topic: must be a Kafka topic: 1-249 characters of A-Z a-z 0-9 "
        '. _ - (got "a/b")',
    ),
    (
        "reserved-env",
        _set("sink.udsink.container.env", [{"name": "NUMAFLOW_UD_CONTAINER_TYPE", "value": "x"}]),
        ".spec.sink.udsink.container.env[0]: NUMAFLOW_UD_CONTAINER_TYPE is set by udsink",
    ),
    (
        "reserved-sidecar",
        _set("pod", {"sidecars": [{"name": "udsink", "image": "proxy"}]}),
        ".spec.pod.sidecars[0]: container name 'udsink' is reserved (reserved: fb-udsink, "
        "ons-udsink, runtime, udsink)",
    ),
    (
        "reserved-label",
        _set("pod", {"metadata": {"labels": {"app.kubernetes.io/instance": "x"}}}),
        ".spec.pod.metadata.labels: label 'app.kubernetes.io/instance' is Argo CD's tracking "
        "label and stays off pods",
    ),
    (
        "inline-secret",
        _set("source.kafka.tls", {"caCert": "PEM"}),
        ".spec.source.kafka.tls.caCert: unknown field",
    ),
    (
        "tls-pair",
        _set("source.kafka.tls", {"certSecret": {"name": "c", "key": "k"}}),
        ".spec.source.kafka.tls: certSecret and keySecret must be set together",
    ),
    (
        "sasl-member",
        _set(
            "source.kafka.sasl",
            {
                "mechanism": "PLAIN",
                "scramsha256": {
                    "userSecret": {"name": "u", "key": "u"},
                    "passwordSecret": {"name": "u", "key": "p"},
                },
            },
        ),
        ".spec.source.kafka.sasl: PLAIN needs plain",
    ),
    (
        "string-for-integer",
        _set("batch.size", "10"),
        ".spec.batch.size: '10' is not of type 'integer'",
    ),
    (
        "toleration-exists-value",
        _set("pod", {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}),
        '.spec.pod.tolerations[0]: operator Exists matches any value: remove value "v" or use '
        "operator Equal",
    ),
    (
        "toleration-empty-key",
        _set("pod", {"tolerations": [{"operator": "Equal", "value": "v"}]}),
        ".spec.pod.tolerations[0]: an empty key matches every taint and needs operator Exists "
        "(got operator Equal)",
    ),
    (
        "annotation-key",
        _set("pod", {"metadata": {"annotations": {"a b": "x"}}}),
        ".spec.pod.metadata.annotations: annotation keys must be [prefix/]name",
    ),
    (
        "label-value",
        _set("pod", {"metadata": {"labels": {"team": "a b"}}}),
        ".spec.pod.metadata.labels.team: must be a label value: up to 63 characters of A-Z a-z 0-9 "
        '- _ . (got "a b")',
    ),
    (
        "field-ref",
        _set(
            "sink.udsink.container.env",
            [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}}],
        ),
        ".spec.sink.udsink.container.env[0].valueFrom.fieldRef.fieldPath: must be a pod field the "
        "API server exposes",
    ),
    (
        "node-affinity-in-without-values",
        _set(
            "pod",
            {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": "zone", "operator": "In"}]}
                            ]
                        }
                    }
                }
            },
        ),
        ".spec.pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
        "nodeSelectorTerms[0].matchExpressions[0]: operator In needs one or more values",
    ),
    (
        "absolute-localhost-profile",
        _set(
            "pod",
            {
                "securityContext": {
                    "seccompProfile": {"type": "Localhost", "localhostProfile": "/p.json"}
                }
            },
        ),
        ".spec.pod.securityContext.seccompProfile.localhostProfile: must be a path relative to "
        "the kubelet's seccomp profile root (not absolute, no '..') (got \"/p.json\")",
    ),
    (
        "duration-overflow",
        _set("batch.timeout", "9999999999h"),
        ".spec.batch.timeout: must be a Go-style duration",
    ),
    (
        "spread-min-domains",
        _set(
            "pod",
            {
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "minDomains": 2,
                    }
                ]
            },
        ),
        ".spec.pod.topologySpreadConstraints[0]: minDomains applies to whenUnsatisfiable "
        "DoNotSchedule only (got whenUnsatisfiable ScheduleAnyway)",
    ),
    (
        "static-key-header",
        _set("sink.fallback.kafka.headers.static", {"__key_0": "x"}),
        ".spec.sink.fallback.kafka.headers.static: header names starting with '__key' carry keys "
        "and are reserved",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_api_server_and_operator_refuse_the_same_specs(mutate: Any, expected: str) -> None:
    doc = _example(mutate)
    violations = crd_violations(doc)
    assert any(v.startswith(expected) for v in violations), violations
    with pytest.raises(api.SpecError):
        api.parse_udsink(doc)


def test_name_rule_at_the_root() -> None:
    doc = _example(lambda spec: None)
    doc["metadata"]["name"] = "x" * (constants.NAME_MAX_LENGTH + 1)
    assert crd_violations(doc) == [
        ".: metadata.name must be a DNS-1035 label of at most 55 characters "
        f'(it names a Service `<name>-metrics`) (got "{doc["metadata"]["name"]}")'
    ]


# Rules whose words come from one table (udsink_operator.messages) for both homes; the others
# are the API server's own schema checks (unknown field, type, bounds).
SAME_WORDS = {
    "no-source",
    "two-sinks",
    "serve-two",
    "timeout-bound",
    "timeout-syntax",
    "cap-interval",
    "owned-kafka-key",
    "owned-kafka-prefix",
    "topic",
    "reserved-sidecar",
    "reserved-label",
    "toleration-exists-value",
    "toleration-empty-key",
    "annotation-key",
    "label-value",
    "field-ref",
    "node-affinity-in-without-values",
    "absolute-localhost-profile",
    "duration-overflow",
    "spread-min-domains",
    "static-key-header",
}


@pytest.mark.parametrize(
    "mutate",
    [r[1] for r in REFUSED if r[0] in SAME_WORDS],
    ids=[r[0] for r in REFUSED if r[0] in SAME_WORDS],
)
def test_operator_and_api_server_say_the_same_words(mutate: Any) -> None:
    doc = _example(mutate)
    server = {v.split(": ", 1)[1] for v in crd_violations(doc)}
    with pytest.raises(api.SpecError) as refused:
        api.parse_udsink(doc)
    operator = {issue.split(": ", 1)[1] for issue in refused.value.issues}
    # The operator may add the value the API server cannot name: "... (got 'the key')".
    assert any(o.startswith(m) for o in operator for m in server), (
        f"API server: {server}\noperator: {operator}"
    )


def test_descriptions_state_the_bounds_and_default_each_field_enforces() -> None:
    # The "Range: min..max. Default: X." of a description is written from the field's own
    # checks and default (or its ShownDefault), once, so the CRD, kubectl explain and
    # docs/reference.md never disagree with the validation.
    size = api.described(api.Batch.model_fields["size"])
    assert size == "Largest batch. Range: 1..10000. Default: 500."
    timeout = api.described(api.Batch.model_fields["timeout"])
    assert timeout == "Longest wait to fill a batch. Range: 1ms..10m. Default: 1s."
    group = api.described(api.KafkaSource.model_fields["consumer_group"])
    assert group == "Consumer group id. Default: <namespace>.<name>."
    checked = 0
    for _, info in reference.fields(api.UDSink, ""):
        text = api.described(info)
        if text is None:
            continue
        bounds, default = api.field_bounds(info), api.plain_default(info)
        assert text.count("Range: ") == (bounds is not None), text
        assert text.count("Default: ") == (default is not None), text
        if bounds is not None:
            assert f"Range: {bounds[0]}..{bounds[1]}." in text, text
            checked += 1
        if default is not None:
            assert text.endswith(f"Default: {default}."), text
    assert checked > 20
