"""The UDSink models: defaults, every rule of docs/design/api.md, and messages that name the field,
the value and what is accepted."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from udsink_operator import api, reference

from sink_runtime.config.errors import FALLBACK_NEEDED
from tests.support.udsink_doc import udsink_doc

EXAMPLES = sorted(Path(__file__).parents[2].glob("examples/*/udsink.yaml"))


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "source": {"kafka": {"brokers": ["kafka:9092"], "topics": ["orders"]}},
        "sink": {"udsink": {"container": {"image": "ghcr.io/acme/sink:1"}}},
    }
    base.update(copy.deepcopy(overrides))
    return base


def kafka_sink(**overrides: Any) -> dict[str, Any]:
    return {"kafka": {"brokers": ["kafka:9092"], "topic": "out", **overrides}}


def issues_of(raw_spec: dict[str, Any]) -> list[str]:
    with pytest.raises(api.SpecError) as caught:
        api.parse_spec(raw_spec)
    return caught.value.issues


def test_minimal_spec_gets_the_documented_defaults() -> None:
    parsed = api.parse_spec(spec())
    assert parsed.replicas == 1
    assert parsed.lifecycle.desired_phase == "Running"
    assert (parsed.batch.size, parsed.batch.timeout) == (500, "1s")
    assert parsed.sink.retry_strategy.on_failure == "retry"
    backoff = parsed.sink.retry_strategy.backoff
    assert (backoff.interval, backoff.factor, backoff.cap, backoff.steps, backoff.jitter) == (
        "100ms",
        2.0,
        "30s",
        10,
        0.1,
    )
    assert (parsed.nack.delay, parsed.nack.max_deliveries) == ("1s", 0)
    kafka = parsed.source.kafka
    assert kafka is not None
    assert (kafka.start_offset, kafka.keys_from_headers, kafka.consumer_group) == (
        "earliest",
        True,
        None,
    )
    assert parsed.runtime.log_level == "info"
    assert parsed.pod.automount_service_account_token is False


def test_kafka_sink_defaults_keep_keys() -> None:
    parsed = api.parse_spec(spec(sink=kafka_sink()))
    assert parsed.sink.kafka is not None
    assert parsed.sink.kafka.set_key is True
    assert parsed.sink.kafka.key_separator == ":"
    assert parsed.sink.kafka.headers.keys == "split"
    assert parsed.sink.kafka.headers.propagate is True


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_examples_are_valid(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        api.parse_udsink(doc)


def test_camel_case_aliases_round_trip() -> None:
    raw = spec(
        sink={
            **kafka_sink(setKey=False, keySeparator="|"),
            "retryStrategy": {"onFailure": "drop"},
            "onSuccess": {"log": {"valuePreviewBytes": 8}},
        }
    )
    parsed = api.parse_spec(raw)
    dumped = parsed.model_dump(by_alias=True, exclude_defaults=True)
    assert dumped["sink"]["kafka"]["setKey"] is False
    assert dumped["sink"]["onSuccess"] == {"log": {"valuePreviewBytes": 8}}
    assert api.parse_spec(dumped) == parsed


def required_node_term(term: dict[str, Any]) -> dict[str, Any]:
    """spec.pod with one required node-affinity term."""
    required = {"nodeSelectorTerms": [term]}
    return {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}
    }


# (spec, the exact issue). Each row is one rule of docs/design/api.md or a bound of a field.
def spread(**constraint: Any) -> dict[str, Any]:
    """A spec with one topology spread constraint: a zone, DoNotSchedule, unless changed."""
    given = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone"}
    return spec(
        pod={
            "topologySpreadConstraints": [
                {**given, "whenUnsatisfiable": "DoNotSchedule", **constraint}
            ]
        }
    )


INVALID: list[tuple[str, dict[str, Any], str]] = [
    (
        "source-none",
        spec(source={}),
        "spec.source: exactly one of kafka, generator must be set (got none)",
    ),
    (
        "source-two",
        spec(source={"kafka": {"brokers": ["k:1"], "topics": ["t"]}, "generator": {}}),
        "spec.source: exactly one of kafka, generator must be set (got kafka, generator)",
    ),
    (
        "sink-two",
        spec(sink={**kafka_sink(), "log": {}}),
        "spec.sink: exactly one of udsink, kafka, log, blackhole must be set (got kafka, log)",
    ),
    ("sink-missing", {"source": spec()["source"]}, "spec.sink: required field is missing"),
    (
        "fallback-required",
        spec(sink={"log": {}, "retryStrategy": {"onFailure": "fallback"}}),
        f"spec.sink: {FALLBACK_NEEDED}",
    ),
    (
        "fallback-nested-fallback",
        spec(sink={"log": {}, "fallback": {"log": {}, "fallback": {"log": {}}}}),
        "spec.sink.fallback: a fallback or onSuccess sink cannot have its own fallback: "
        "only spec.sink has fallback, onSuccess, serve and retryStrategy",
    ),
    (
        "on-success-nested-serve",
        spec(sink={"log": {}, "onSuccess": {"blackhole": {}, "serve": {"log": {}}}}),
        "spec.sink.onSuccess: a fallback or onSuccess sink cannot have its own serve: "
        "only spec.sink has fallback, onSuccess, serve and retryStrategy",
    ),
    (
        "fallback-union",
        spec(sink={"log": {}, "fallback": {}}),
        "spec.sink.fallback: exactly one of udsink, kafka, log, blackhole must be set (got none)",
    ),
    (
        "serve-udsink",
        spec(sink={"log": {}, "serve": {"udsink": {"container": {"image": "x"}}}}),
        "spec.sink.serve.udsink: unknown field (accepted: kafka, log)",
    ),
    (
        "serve-union",
        spec(sink={"log": {}, "serve": {}}),
        "spec.sink.serve: exactly one of kafka, log must be set (got none)",
    ),
    (
        "topic-pattern",
        spec(source={"kafka": {"brokers": ["kafka:9092"], "topics": ["bad topic!"]}}),
        "spec.source.kafka.topics[0]: must be a Kafka topic: 1-249 characters of A-Z a-z 0-9 . _ - "
        '(got "bad topic!")',
    ),
    (
        "topic-length",
        spec(sink=kafka_sink(topic="t" * 250)),
        "spec.sink.kafka.topic: must be a Kafka topic: 1-249 characters of A-Z a-z 0-9 . _ - "
        '(got "ttt',
    ),
    (
        "broker-pattern",
        spec(source={"kafka": {"brokers": ["kafka"], "topics": ["t"]}}),
        'spec.source.kafka.brokers[0]: must be host:port, for example kafka:9092 (got "kafka")',
    ),
    (
        "brokers-empty",
        spec(source={"kafka": {"brokers": [], "topics": ["t"]}}),
        "spec.source.kafka.brokers: List should have at least 1 item after validation, not 0 "
        "(got [])",
    ),
    (
        "batch-size-low",
        spec(batch={"size": 0}),
        "spec.batch.size: Input should be greater than or equal to 1 (got 0)",
    ),
    (
        "batch-size-high",
        spec(batch={"size": 10001}),
        "spec.batch.size: Input should be less than or equal to 10000 (got 10001)",
    ),
    (
        "batch-bytes-low",
        spec(batch={"maxBytes": 1000}),
        "spec.batch.maxBytes: Input should be greater than or equal to 1024 (got 1000)",
    ),
    (
        "batch-bytes-text",
        spec(batch={"maxBytes": "16Mi"}),
        'spec.batch.maxBytes: must be an integer (got the string "16Mi")',
    ),
    (
        "duration-syntax",
        spec(batch={"timeout": "1 second"}),
        "spec.batch.timeout: must be a Go-style duration such as 100ms, 1s, 2m30s, 1h "
        '(units ns, us, ms, s, m, h; at most 6 digits before a decimal point) (got "1 second")',
    ),
    (
        "duration-bounds",
        spec(batch={"timeout": "20m"}),
        'spec.batch.timeout: must be between 1ms and 10m (got "20m")',
    ),
    (
        "duration-below",
        spec(sink={"log": {}, "retryStrategy": {"backoff": {"interval": "500us"}}}),
        'spec.sink.retryStrategy.backoff.interval: must be between 1ms and 1h (got "500us")',
    ),
    (
        "cap-below-interval",
        spec(sink={"log": {}, "retryStrategy": {"backoff": {"interval": "1s", "cap": "50ms"}}}),
        "spec.sink.retryStrategy.backoff: cap (50ms) must be at least interval (1s)",
    ),
    (
        "jitter-bounds",
        spec(sink={"log": {}, "retryStrategy": {"backoff": {"jitter": 1.5}}}),
        "spec.sink.retryStrategy.backoff.jitter: Input should be less than or equal to 1 (got 1.5)",
    ),
    (
        "on-failure-enum",
        spec(sink={"log": {}, "retryStrategy": {"onFailure": "ignore"}}),
        "spec.sink.retryStrategy.onFailure: Input should be 'retry', 'fallback' or 'drop' "
        '(got "ignore")',
    ),
    (
        "start-offset-enum",
        spec(source={"kafka": {"brokers": ["k:1"], "topics": ["t"], "startOffset": "first"}}),
        "spec.source.kafka.startOffset: Input should be 'earliest' or 'latest' (got \"first\")",
    ),
    (
        "config-group-id",
        spec(source={"kafka": {"brokers": ["k:1"], "topics": ["t"], "config": {"group.id": "g"}}}),
        "spec.source.kafka.config: key 'group.id' is owned by udsink (set consumerGroup); "
        "keys udsink owns: ",
    ),
    (
        "config-sasl-prefix",
        spec(sink=kafka_sink(config={"linger.ms": "5", "sasl.password": "hunter2"})),
        "spec.sink.kafka.config: keys starting with 'sasl.' are owned by udsink "
        "(set sasl (credentials come from Secrets)); keys udsink owns: ",
    ),
    (
        "config-bootstrap",
        spec(sink=kafka_sink(config={"bootstrap.servers": "a:1"})),
        "spec.sink.kafka.config: key 'bootstrap.servers' is owned by udsink (set brokers); ",
    ),
    (
        "config-value-type",
        spec(sink=kafka_sink(config={"linger.ms": 5})),
        "spec.sink.kafka.config.linger.ms: must be a string (got the number 5)",
    ),
    (
        "reserved-sidecar-name",
        spec(pod={"sidecars": [{"name": "runtime", "image": "proxy:1"}]}),
        "spec.pod.sidecars[0].name: container name 'runtime' is reserved "
        "(reserved: fb-udsink, ons-udsink, runtime, udsink)",
    ),
    (
        "reserved-sidecar-fb",
        spec(pod={"sidecars": [{"name": "fb-udsink", "image": "proxy:1"}]}),
        "spec.pod.sidecars[0].name: container name 'fb-udsink' is reserved",
    ),
    (
        "duplicate-sidecars",
        spec(pod={"sidecars": [{"name": "p", "image": "a"}, {"name": "p", "image": "b"}]}),
        "spec.pod: sidecar names must be unique (repeated: p)",
    ),
    (
        "reserved-env",
        spec(
            sink={
                "udsink": {
                    "container": {
                        "image": "x",
                        "env": [{"name": "NUMAFLOW_UD_CONTAINER_TYPE", "value": "udsink"}],
                    }
                }
            }
        ),
        "spec.sink.udsink.container.env[0].name: NUMAFLOW_UD_CONTAINER_TYPE is set by udsink "
        "and may not be set here",
    ),
    (
        "duplicate-env",
        spec(
            sink={
                "udsink": {
                    "container": {
                        "image": "x",
                        "env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}],
                    }
                }
            }
        ),
        "spec.sink.udsink.container: env names must be unique (repeated: A)",
    ),
    (
        "env-value-and-ref",
        spec(
            sink={
                "udsink": {
                    "container": {
                        "image": "x",
                        "env": [
                            {
                                "name": "A",
                                "value": "1",
                                "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
                            }
                        ],
                    }
                }
            }
        ),
        "spec.sink.udsink.container.env[0]: set value or valueFrom, not both",
    ),
    (
        "inline-secret-refused",
        spec(
            source={
                "kafka": {
                    "brokers": ["k:1"],
                    "topics": ["t"],
                    "tls": {"caCert": "-----BEGIN CERTIFICATE-----"},
                }
            }
        ),
        "spec.source.kafka.tls.caCert: unknown field; did you mean 'caCertSecret'? "
        "(accepted: caCertSecret, certSecret, keySecret, insecureSkipVerify)",
    ),
    (
        "secret-ref-shape",
        spec(
            source={"kafka": {"brokers": ["k:1"], "topics": ["t"], "tls": {"caCertSecret": "pem"}}}
        ),
        'spec.source.kafka.tls.caCertSecret: must be an object (got the string "pem")',
    ),
    (
        "secret-ref-name",
        spec(sink=kafka_sink(tls={"caCertSecret": {"name": "Bad_Name", "key": "ca.crt"}})),
        "spec.sink.kafka.tls.caCertSecret.name: must be a DNS subdomain: lower-case a-z, 0-9, "
        "'-' and '.' (got \"Bad_Name\")",
    ),
    (
        "tls-cert-without-key",
        spec(sink=kafka_sink(tls={"certSecret": {"name": "c", "key": "tls.crt"}})),
        "spec.sink.kafka.tls: certSecret and keySecret must be set together "
        "(client certificate auth)",
    ),
    (
        "sasl-member-mismatch",
        spec(
            source={
                "kafka": {
                    "brokers": ["k:1"],
                    "topics": ["t"],
                    "sasl": {
                        "mechanism": "PLAIN",
                        "scramsha512": {
                            "userSecret": {"name": "u", "key": "user"},
                            "passwordSecret": {"name": "u", "key": "pass"},
                        },
                    },
                }
            }
        ),
        "spec.source.kafka.sasl: mechanism PLAIN needs plain and only it (got scramsha512)",
    ),
    (
        "unknown-field-suggestion",
        spec(sink={"kafka": {"brokers": ["k:1"], "topc": "t"}}),
        "spec.sink.kafka.topc: unknown field; did you mean 'topic'?",
    ),
    (
        "reserved-pod-label",
        spec(pod={"metadata": {"labels": {"udsink.dev/name": "other"}}}),
        "spec.pod.metadata: labels under udsink.dev/ are reserved: udsink sets them "
        "(got 'udsink.dev/name')",
    ),
    (
        "argocd-pod-label",
        spec(pod={"metadata": {"labels": {"app.kubernetes.io/instance": "shop"}}}),
        "spec.pod.metadata: label 'app.kubernetes.io/instance' is Argo CD's tracking label and "
        "stays off pods",
    ),
    (
        "string-for-integer",
        spec(batch={"size": "10"}),
        'spec.batch.size: must be an integer (got the string "10")',
    ),
    (
        "string-for-boolean",
        spec(sink=kafka_sink(setKey="true")),
        'spec.sink.kafka.setKey: must be true or false (got the string "true")',
    ),
    (
        "number-for-string",
        spec(pod={"metadata": {"annotations": {"example.com/n": 5}}}),
        "spec.pod.metadata.annotations.example.com/n: must be a string (got the number 5)",
    ),
    (
        "requests-above-limits",
        spec(runtime={"resources": {"requests": {"cpu": "1500m"}, "limits": {"cpu": 1}}}),
        "spec.runtime.resources: requests.cpu (1500m) must not exceed limits (1)",
    ),
    (
        "toleration-seconds",
        spec(pod={"tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]}),
        "spec.pod.tolerations[0]: tolerationSeconds applies to effect NoExecute only "
        "(got effect NoSchedule)",
    ),
    (
        "selector-gt-not-a-number",
        spec(
            pod=required_node_term(
                {"matchExpressions": [{"key": "n", "operator": "Gt", "values": ["x"]}]}
            )
        ),
        "spec.pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
        'nodeSelectorTerms[0].matchExpressions[0]: operator Gt compares with an integer (got "x")',
    ),
    (
        "match-fields-key",
        spec(
            pod=required_node_term(
                {"matchFields": [{"key": "zone", "operator": "In", "values": ["a"]}]}
            )
        ),
        "spec.pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
        "nodeSelectorTerms[0]: matchFields supports only key metadata.name with operator In or "
        "NotIn (got zone In)",
    ),
    (
        "localhost-profile-dotdot",
        spec(
            pod={
                "securityContext": {
                    "seccompProfile": {"type": "Localhost", "localhostProfile": "a/../../etc"}
                }
            }
        ),
        "spec.pod.securityContext.seccompProfile.localhostProfile: must be a path relative to "
        "the kubelet's seccomp profile root (not absolute, no '..') (got \"a/../../etc\")",
    ),
    (
        "field-ref-api-version",
        spec(
            sink={
                "udsink": {
                    "container": {
                        "image": "x",
                        "env": [
                            {
                                "name": "N",
                                "valueFrom": {
                                    "fieldRef": {"fieldPath": "metadata.name", "apiVersion": "v2"}
                                },
                            }
                        ],
                    }
                }
            }
        ),
        "spec.sink.udsink.container.env[0].valueFrom.fieldRef.apiVersion: Input should be 'v1'",
    ),
    (
        "static-key-header",
        spec(sink=kafka_sink(headers={"static": {"__key_len": "2"}})),
        "spec.sink.kafka.headers.static: header names starting with '__key' carry keys and are "
        "reserved (got '__key_len')",
    ),
    (
        "quantity",
        spec(runtime={"resources": {"limits": {"cpu": "lots"}}}),
        "spec.runtime.resources.limits.cpu: must be a Kubernetes quantity such as 500m, 1, "
        '256Mi (got "lots")',
    ),
    (
        "replicas-negative",
        spec(replicas=-1),
        "spec.replicas: Input should be greater than or equal to 0 (got -1)",
    ),
    (
        "seccomp-localhost",
        spec(pod={"securityContext": {"seccompProfile": {"type": "Localhost"}}}),
        "spec.pod.securityContext.seccompProfile: type Localhost needs localhostProfile",
    ),
    (
        "seccomp-unconfined",
        spec(pod={"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
        "spec.pod.securityContext.seccompProfile.type: Input should be 'RuntimeDefault' or "
        "'Localhost' (got \"Unconfined\")",
    ),
    (
        "run-as-root",
        spec(pod={"securityContext": {"runAsUser": 0}}),
        "spec.pod.securityContext.runAsUser: Input should be greater than or equal to 1 (got 0)",
    ),
    (
        "spread-min-domains",
        spread(whenUnsatisfiable="ScheduleAnyway", minDomains=3),
        "spec.pod.topologySpreadConstraints[0]: minDomains applies to whenUnsatisfiable "
        "DoNotSchedule only (got whenUnsatisfiable ScheduleAnyway)",
    ),
    (
        "spread-pair-twice",
        spec(
            pod={
                "topologySpreadConstraints": [
                    {"maxSkew": s, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": w}
                    for s, w in ((1, "DoNotSchedule"), (2, "ScheduleAnyway"), (3, "DoNotSchedule"))
                ]
            }
        ),
        "spec.pod: each topologyKey and whenUnsatisfiable pair may appear once (repeated: "
        "kubernetes.io/hostname DoNotSchedule)",
    ),
    (
        "spread-skew-zero",
        spread(maxSkew=0),
        "spec.pod.topologySpreadConstraints[0].maxSkew: Input should be greater than or equal "
        "to 1 (got 0)",
    ),
    (
        "spread-key",
        spread(topologyKey="a b"),
        "spec.pod.topologySpreadConstraints[0].topologyKey: must be a label key",
    ),
    (
        "desired-phase",
        spec(lifecycle={"desiredPhase": "Stopped"}),
        "spec.lifecycle.desiredPhase: Input should be 'Running' or 'Paused' (got \"Stopped\")",
    ),
]


@pytest.mark.parametrize(
    ("raw", "expected"), [row[1:] for row in INVALID], ids=[r[0] for r in INVALID]
)
def test_invalid_specs_name_field_value_and_what_is_accepted(
    raw: dict[str, Any], expected: str
) -> None:
    issues = issues_of(raw)
    assert any(issue.startswith(expected) for issue in issues), issues


def test_every_problem_is_reported_at_once() -> None:
    raw = spec(batch={"size": 0, "timeout": "forever"}, replicas=-2)
    issues = issues_of(raw)
    assert len(issues) == 3
    assert [i.split(":")[0] for i in issues] == [
        "spec.replicas",
        "spec.batch.size",
        "spec.batch.timeout",
    ]
    error = api.SpecError(issues)
    assert str(error) == "; ".join(issues)


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("orders-to-pg", True),
        ("a", True),
        ("1orders", False),
        ("Orders", False),
        ("orders.pg", False),
        ("o" * 55, True),
        ("o" * 56, False),
    ],
)
def test_resource_name_must_fit_the_children_names(name: str, accepted: bool) -> None:
    doc = udsink_doc(name, spec())
    if accepted:
        assert api.parse_udsink(doc).metadata.name == name
        return
    with pytest.raises(api.SpecError) as caught:
        api.parse_udsink(doc)
    assert caught.value.issues[0].startswith("metadata.name: ")
    assert f'(got "{name}")' in caught.value.issues[0]


def test_wrong_kind_names_the_field() -> None:
    doc = {
        "apiVersion": "udsink.dev/v1",
        "kind": "UDSink",
        "metadata": {"name": "x"},
        "spec": spec(),
    }
    with pytest.raises(api.SpecError) as caught:
        api.parse_udsink(doc)
    assert caught.value.issues == [
        "apiVersion: Input should be 'udsink.dev/v1alpha1' (got \"udsink.dev/v1\")"
    ]


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("0s", 0),
        ("1ms", 1),
        ("100ms", 100),
        ("1s", 1000),
        ("1.5s", 1500),
        ("2m30s", 150_000),
        ("1h", 3_600_000),
        ("500us", 1),
        ("1500us", 2),
        ("250000ns", 1),
        (".5s", 500),
    ],
)
def test_go_durations(text: str, millis: int) -> None:
    assert api.duration_ms(text) == millis


@pytest.mark.parametrize("text", ["", "0", "1", "1d", "s", "1 s", "-1s", "1.s5"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="Go-style duration"):
        api.duration_ms(text)


def test_secret_refs_lists_every_referenced_key_with_its_path() -> None:
    raw = spec(
        source={
            "kafka": {
                "brokers": ["k:1"],
                "topics": ["t"],
                "tls": {"caCertSecret": {"name": "ca", "key": "ca.crt"}},
                "sasl": {
                    "mechanism": "OAUTHBEARER",
                    "oauth": {
                        "clientID": {"name": "oidc", "key": "id"},
                        "clientSecret": {"name": "oidc", "key": "secret"},
                        "tokenEndpoint": "https://idp/token",
                    },
                },
            }
        },
        sink={
            "log": {},
            "retryStrategy": {"onFailure": "fallback"},
            "fallback": kafka_sink(
                tls={
                    "certSecret": {"name": "client", "key": "tls.crt"},
                    "keySecret": {"name": "client", "key": "tls.key"},
                }
            ),
        },
    )
    refs = [(path, ref.name, ref.key) for path, ref in api.parse_spec(raw).secret_refs()]
    assert refs == [
        ("spec.source.kafka.tls.caCertSecret", "ca", "ca.crt"),
        ("spec.source.kafka.sasl.oauth.clientID", "oidc", "id"),
        ("spec.source.kafka.sasl.oauth.clientSecret", "oidc", "secret"),
        ("spec.sink.fallback.kafka.tls.certSecret", "client", "tls.crt"),
        ("spec.sink.fallback.kafka.tls.keySecret", "client", "tls.key"),
    ]


# A bound (`1..100`, not a header name's `__key_0..__key_{N-1}`), a default, a range.
HAND_TYPED = re.compile(r"(?<![\w_])[\d.]+[a-z]*\.\.\d|\bDefault\b|\bRange\b")


def test_descriptions_state_no_bound_or_default_by_hand() -> None:
    """Bounds and defaults reach the CRD and docs/reference.md from each field's metadata
    (`described`); typed into a description they would drift from the check, or show twice."""
    typed = [
        f"{path}: {info.description}"
        for path, info in reference.fields(api.UDSink, "")
        if info.description and HAND_TYPED.search(info.description)
    ]
    assert typed == []
