"""The pure builders: UDSink -> RuntimeConfig, ConfigMap, Service, Deployment.

Table tests per option; every manifest built here is also checked against the OpenAPI schema
of a real Kubernetes release (kubernetes-validate)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from udsink_operator import api, build, constants, drift, handlers

from sink_runtime.config import (
    GeneratorSourceConfig,
    KafkaSinkConfig,
    KafkaSourceConfig,
    LogSinkConfig,
    UserSinkConfig,
    parse_config,
)
from sink_runtime.config import constants as rc
from sink_runtime.config.constants import SidecarMode
from sink_runtime.config.sink_liveness import sink_probe_timing
from tests.support.kube_schemas import LATEST, check_manifest

ROOT = Path(__file__).resolve().parents[2]

Doc = dict[str, Any]


def udsink(uid: str | None = "uid-1", labels: dict[str, str] | None = None, **spec: Any) -> Doc:
    body: Doc = {
        "apiVersion": "udsink.dev/v1alpha1",
        "kind": "UDSink",
        "metadata": {"name": "orders", "namespace": "shop", "labels": labels or {}},
        "spec": {
            "source": {"kafka": {"brokers": ["kafka:9092"], "topics": ["orders"]}},
            "sink": {"udsink": {"container": {"image": "ghcr.io/acme/sink:1"}}},
        },
    }
    if uid is not None:
        body["metadata"]["uid"] = uid
    body["spec"].update(copy.deepcopy(spec))
    return body


def children(
    doc: Doc, options: build.BuildOptions | None = None, *, version: str = LATEST
) -> build.Children:
    built = build.build(api.parse_udsink(doc), options)
    for manifest in built.manifests():
        check_manifest(manifest, version)
    return built


def pod_of(built: build.Children) -> Doc:
    spec: Doc = built.deployment["spec"]["template"]["spec"]
    return spec


def container(pod: Doc, name: str) -> Doc:
    found: Doc = next(
        c for c in [*pod.get("initContainers", []), *pod["containers"]] if c["name"] == name
    )
    return found


def env_of(c: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


USER_SINK = {"udsink": {"container": {"image": "ghcr.io/acme/fb:2"}}}


# --- names, labels, ownership ---


def test_children_names_labels_and_owner() -> None:
    built = children(udsink(labels={"app.kubernetes.io/instance": "argo-app", "team": "a"}))
    expected_labels = {
        "app.kubernetes.io/name": "udsink",
        "app.kubernetes.io/managed-by": "udsink-operator",
        "udsink.dev/name": "orders",
    }
    names = [(m["kind"], m["metadata"]["name"]) for m in built.manifests()]
    assert names == [
        ("ConfigMap", "orders-config"),
        ("Service", "orders-metrics"),
        ("Deployment", "orders"),
    ]
    for manifest in built.manifests():
        meta = manifest["metadata"]
        assert meta["namespace"] == "shop"
        # Exactly ours: never the UDSink's own labels (Argo CD's tracking label among them).
        assert meta["labels"] == expected_labels
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "udsink.dev/v1alpha1",
                "kind": "UDSink",
                "name": "orders",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    assert built.deployment["spec"]["selector"] == {"matchLabels": {"udsink.dev/name": "orders"}}
    assert built.deployment["spec"]["template"]["metadata"]["labels"] == expected_labels


def test_rendered_from_a_file_there_is_no_owner() -> None:
    built = children(udsink(uid=None))
    assert all("ownerReferences" not in m["metadata"] for m in built.manifests())


def test_build_is_deterministic() -> None:
    doc = udsink(pod={"nodeSelector": {"b": "2", "a": "1"}})
    assert build.build(api.parse_udsink(doc)) == build.build(api.parse_udsink(doc))


# --- replicas, lifecycle, config hash ---


@pytest.mark.parametrize(
    ("spec", "replicas"),
    [
        ({}, 1),
        ({"replicas": 4}, 4),
        ({"replicas": 0}, 0),
        ({"replicas": 4, "lifecycle": {"desiredPhase": "Paused"}}, 0),
        ({"replicas": 4, "lifecycle": {"desiredPhase": "Running"}}, 4),
    ],
)
def test_replicas_and_pause(spec: Doc, replicas: int) -> None:
    assert children(udsink(**spec)).deployment["spec"]["replicas"] == replicas


def _hash(built: build.Children) -> str:
    found: str = built.deployment["spec"]["template"]["metadata"]["annotations"][
        constants.ANNOTATION_CONFIG_HASH
    ]
    return found


def test_config_hash_rolls_pods_on_config_changes_only() -> None:
    base = children(udsink())
    assert _hash(base) == build.config_hash(base.config_map["data"][rc.CONFIG_FILE])
    assert _hash(children(udsink(batch={"size": 7}))) != _hash(base)
    assert _hash(children(udsink(replicas=9))) == _hash(base)
    assert _hash(children(udsink(lifecycle={"desiredPhase": "Paused"}))) == _hash(base)


# --- RuntimeConfig ---


def config_of(doc: Doc) -> Any:
    built = children(doc)
    # The ConfigMap holds exactly the RuntimeConfig, and the data plane can read it back.
    assert parse_config(built.config_map["data"][rc.CONFIG_FILE]) == built.config
    return built.config


def test_runtime_config_defaults() -> None:
    config = config_of(udsink())
    assert isinstance(config.source, KafkaSourceConfig)
    assert config.source.consumer_group == "shop.orders"
    assert config.source.start_offset == "earliest"
    assert (config.batch.size, config.batch.timeout_ms) == (500, 1000)
    assert isinstance(config.sink, UserSinkConfig)
    assert config.sink.socket_path == f"{rc.SOCKET_DIR}/sink.sock"
    assert config.sink.server_info_path == f"{rc.SOCKET_DIR}/sinker-server-info"
    assert config.sink.startup_timeout_ms == 120_000
    backoff = config.retry_strategy.backoff
    assert (backoff.interval_ms, backoff.cap_ms, backoff.steps) == (100, 30_000, 10)
    assert config.observability.metrics_port == rc.METRICS_PORT
    assert config.observability.metrics_host == ""
    assert config.shutdown_grace_ms == 25_000
    assert (config.fallback, config.on_success, config.serve) == (None, None, None)


@pytest.mark.parametrize(
    ("spec", "check"),
    [
        (
            {"batch": {"size": 100, "timeout": "250ms"}},
            lambda c: (
                (c.batch.size, c.batch.timeout_ms, c.batch.max_bytes)
                == (100, 250, 16 * 1024 * 1024)
            ),
        ),
        (
            {"batch": {"maxBytes": 1048576}},
            lambda c: c.batch.max_bytes == 1048576,
        ),
        (
            {
                "source": {
                    "kafka": {
                        "brokers": ["a:1", "b:2"],
                        "topics": ["x", "y"],
                        "consumerGroup": "g1",
                        "startOffset": "latest",
                        "keysFromHeaders": False,
                        "keysHeader": "k",
                        "config": {"fetch.min.bytes": "1", "client.rack": "eu:1a"},
                    }
                }
            },
            lambda c: (
                (
                    c.source.brokers,
                    c.source.topics,
                    c.source.consumer_group,
                    c.source.start_offset,
                    c.source.keys_from_headers,
                    c.source.keys_header,
                    c.source.config,
                )
                == (
                    ["a:1", "b:2"],
                    ["x", "y"],
                    "g1",
                    "latest",
                    False,
                    "k",
                    {"fetch.min.bytes": "1", "client.rack": "eu:1a"},
                )
            ),
        ),
        (
            {"source": {"generator": {"rate": 5, "count": 9, "valueSize": 3, "keyCount": 2}}},
            lambda c: (
                c.source
                == GeneratorSourceConfig(rate=5, count=9, value_size=3, key_count=2, partitions=1)
            ),
        ),
        (
            {
                "sink": {
                    "kafka": {
                        "brokers": ["k:9"],
                        "topic": "out",
                        "setKey": False,
                        "keySeparator": "|",
                        "headers": {
                            "keys": "single",
                            "keysHeader": "__ks",
                            "propagate": False,
                            "static": {"x-a": "b"},
                        },
                    }
                }
            },
            lambda c: (
                isinstance(c.sink, KafkaSinkConfig)
                and (c.sink.topic, c.sink.set_key, c.sink.key_separator) == ("out", False, "|")
                and (c.sink.headers.keys, c.sink.headers.keys_header) == ("single", "__ks")
                and (c.sink.headers.propagate, c.sink.headers.static) == (False, {"x-a": "b"})
            ),
        ),
        (
            {"sink": {"log": {"valuePreviewBytes": 5}}},
            lambda c: c.sink == LogSinkConfig(value_preview_bytes=5),
        ),
        ({"sink": {"blackhole": {}}}, lambda c: c.sink.type == "blackhole"),
        (
            {
                "sink": {
                    "udsink": {
                        "container": {"image": "i"},
                        "startupTimeout": "30s",
                        "maxMessageBytes": 2048,
                    }
                }
            },
            lambda c: (c.sink.startup_timeout_ms, c.sink.max_message_bytes) == (30_000, 2048),
        ),
        (
            {
                "sink": {
                    "log": {},
                    "retryStrategy": {
                        "backoff": {
                            "interval": "1s",
                            "factor": 3,
                            "cap": "1m",
                            "steps": 4,
                            "jitter": 0,
                        },
                        "onFailure": "fallback",
                    },
                    "fallback": USER_SINK,
                    "onSuccess": {"udsink": {"container": {"image": "ons"}}},
                }
            },
            lambda c: (
                (
                    c.retry_strategy.on_failure,
                    c.retry_strategy.backoff.interval_ms,
                    c.retry_strategy.backoff.factor,
                    c.retry_strategy.backoff.cap_ms,
                    c.retry_strategy.backoff.steps,
                    c.retry_strategy.backoff.jitter,
                    c.fallback.container_type,
                    c.fallback.socket_path,
                    c.on_success.container_type,
                    c.on_success.server_info_path,
                )
                == (
                    "fallback",
                    1000,
                    3.0,
                    60_000,
                    4,
                    0.0,
                    "fb-udsink",
                    f"{rc.SOCKET_DIR}/fb-sink.sock",
                    "ons-udsink",
                    f"{rc.SOCKET_DIR}/ons-sinker-server-info",
                )
            ),
        ),
        (
            {"sink": {"log": {}, "serve": {"kafka": {"brokers": ["k:1"], "topic": "served"}}}},
            lambda c: isinstance(c.serve, KafkaSinkConfig) and c.serve.topic == "served",
        ),
        (
            {"sink": {"log": {}, "serve": {"log": {}}}},
            lambda c: isinstance(c.serve, LogSinkConfig),
        ),
        (
            {"nack": {"delay": "0s", "maxDeliveries": 3}},
            lambda c: (c.nack.delay_ms, c.nack.max_deliveries) == (0, 3),
        ),
        (
            {"runtime": {"logLevel": "debug", "logFormat": "text", "shutdownGracePeriod": "1m"}},
            lambda c: (
                (c.observability.log_level, c.observability.log_format, c.shutdown_grace_ms)
                == ("debug", "text", 60_000)
            ),
        ),
    ],
    ids=[
        "batch",
        "batch-max-bytes",
        "kafka-source",
        "generator",
        "kafka-sink",
        "log",
        "blackhole",
        "udsink-options",
        "retry-fallback-on-success",
        "serve-kafka",
        "serve-log",
        "nack",
        "runtime",
    ],
)
def test_runtime_config_options(spec: Doc, check: Callable[[Any], bool]) -> None:
    assert check(config_of(udsink(**spec)))


# --- Secrets: file paths in the config, volumes mounted into runtime only ---

SECURE_SOURCE = {
    "kafka": {
        "brokers": ["kafka:9093"],
        "topics": ["orders"],
        "tls": {
            "caCertSecret": {"name": "kafka-ca", "key": "ca.crt"},
            "insecureSkipVerify": True,
        },
        "sasl": {
            "mechanism": "SCRAM-SHA-256",
            "scramsha256": {
                "userSecret": {"name": "kafka-user", "key": "username"},
                "passwordSecret": {"name": "kafka-user", "key": "password"},
            },
        },
    }
}


def test_secrets_become_files_mounted_into_runtime_only() -> None:
    built = children(
        udsink(
            source=SECURE_SOURCE,
            sink={
                "udsink": {"container": {"image": "s"}},
                "retryStrategy": {"onFailure": "fallback"},
                "fallback": {
                    "kafka": {
                        "brokers": ["dlq:9093"],
                        "topic": "dlq",
                        "tls": {
                            "certSecret": {"name": "dlq-client", "key": "tls.crt"},
                            "keySecret": {"name": "dlq-client", "key": "tls.key"},
                        },
                        "sasl": {
                            "mechanism": "OAUTHBEARER",
                            "oauth": {
                                "clientID": {"name": "oidc", "key": "id"},
                                "clientSecret": {"name": "oidc", "key": "secret"},
                                "tokenEndpoint": "https://idp.example/token",
                                "scope": "kafka",
                            },
                        },
                    }
                },
            },
        )
    )
    config = built.config
    root = rc.SECRETS_DIR
    assert config.source.tls.ca_file == f"{root}/kafka-ca/ca.crt"
    assert config.source.tls.insecure_skip_verify is True
    assert config.source.sasl.mechanism == "SCRAM-SHA-256"
    assert config.source.sasl.username_file == f"{root}/kafka-user/username"
    assert config.source.sasl.password_file == f"{root}/kafka-user/password"
    assert config.fallback.tls.cert_file == f"{root}/dlq-client/tls.crt"
    assert config.fallback.tls.key_file == f"{root}/dlq-client/tls.key"
    assert config.fallback.sasl.client_id_file == f"{root}/oidc/id"
    assert config.fallback.sasl.client_secret_file == f"{root}/oidc/secret"
    assert config.fallback.sasl.token_endpoint == "https://idp.example/token"
    assert config.fallback.sasl.scope == "kafka"

    pod = pod_of(built)
    secret_volumes = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    assert secret_volumes == {
        "secret-dlq-client": {
            "secretName": "dlq-client",
            "items": [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}],
        },
        "secret-kafka-ca": {
            "secretName": "kafka-ca",
            "items": [{"key": "ca.crt", "path": "ca.crt"}],
        },
        "secret-kafka-user": {
            "secretName": "kafka-user",
            "items": [
                {"key": "password", "path": "password"},
                {"key": "username", "path": "username"},
            ],
        },
        "secret-oidc": {
            "secretName": "oidc",
            "items": [{"key": "id", "path": "id"}, {"key": "secret", "path": "secret"}],
        },
    }
    runtime_mounts = {m["name"]: m for m in container(pod, "runtime")["volumeMounts"]}
    for name, volume in secret_volumes.items():
        mount = runtime_mounts[name]
        assert mount == {
            "name": name,
            "mountPath": f"{root}/{volume['secretName']}",
            "readOnly": True,
        }
    sidecar_mounts = [m["name"] for m in container(pod, "udsink").get("volumeMounts", [])]
    assert sidecar_mounts == [constants.VOLUME_SOCKETS]
    # Never a secret value in the ConfigMap: only the paths above.
    assert "hunter2" not in built.config_map["data"][rc.CONFIG_FILE]


def test_long_secret_names_get_valid_volume_names() -> None:
    long_name = "kafka-client-certificates." + "x" * 60 + ".example"
    built = children(
        udsink(
            source={
                "kafka": {
                    "brokers": ["k:1"],
                    "topics": ["t"],
                    "tls": {"caCertSecret": {"name": long_name, "key": "ca.crt"}},
                }
            }
        )
    )
    (volume,) = [v for v in pod_of(built)["volumes"] if "secret" in v]
    assert len(volume["name"]) <= 63
    assert volume["name"].startswith("secret-kafka-client-certificates-")
    assert volume["secret"]["secretName"] == long_name
    assert build.secret_volume_name(long_name) != build.secret_volume_name(long_name + "y")


# --- Pod layout ---


def test_runtime_container() -> None:
    runtime = container(pod_of(children(udsink())), "runtime")
    assert runtime["image"] == constants.DEFAULT_RUNTIME_IMAGE
    assert runtime["command"] == ["python", "-m", "sink_runtime.dataplane"]
    assert runtime["args"] == ["--config", "/etc/udsink/config.json"]
    assert runtime["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    assert runtime["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert runtime["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert runtime["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "readOnlyRootFilesystem": True,
    }
    mounts = {m["mountPath"]: m for m in runtime["volumeMounts"]}
    assert mounts["/etc/udsink"] == {"name": "config", "mountPath": "/etc/udsink", "readOnly": True}
    assert mounts[rc.SOCKET_DIR]["name"] == constants.VOLUME_SOCKETS
    assert mounts["/tmp"]["name"] == constants.VOLUME_TMP  # writable scratch, root fs read-only
    assert "restartPolicy" not in runtime
    # Where the runtime leaves why it ended, for the UDSink's status; the sinks' are their own.
    assert runtime["terminationMessagePath"] == rc.TERMINATION_MESSAGE_PATH
    assert runtime["terminationMessagePolicy"] == "File"
    assert "terminationMessagePath" not in container(pod_of(children(udsink())), "udsink")


def test_runtime_image_and_resources() -> None:
    built = children(
        udsink(
            runtime={
                "image": "registry.local/udsink:dev",
                "imagePullPolicy": "Always",
                "resources": {
                    "requests": {"cpu": 1, "memory": "128Mi"},
                    "limits": {"memory": "1Gi"},
                },
            }
        ),
        build.BuildOptions(runtime_image="ghcr.io/udsink/udsink:9"),
    )
    runtime = container(pod_of(built), "runtime")
    assert runtime["image"] == "registry.local/udsink:dev"
    assert runtime["imagePullPolicy"] == "Always"
    # Quantities as strings, as the API server stores them (no spurious re-applies).
    assert runtime["resources"] == {
        "requests": {"cpu": "1", "memory": "128Mi"},
        "limits": {"memory": "1Gi"},
    }
    default = container(
        pod_of(children(udsink(), build.BuildOptions(runtime_image="img:9"))), "runtime"
    )
    assert default["image"] == "img:9"


# The built-in resources of the runtime container, by its settings: the memory bound worked
# out by hand from docs/operations.md ("Memory"): 75 MiB + prefetch queue + one fetch + n x
# batch.maxBytes (n = 6 with a user-defined sink, else 4).
KAFKA_LOG = {"sink": {"log": {}}}
MEMORY_BOUNDS = [
    ("kafka-user-sink", {}, 75 + 16 + 16 + 6 * 16),
    ("kafka-log-sink", KAFKA_LOG, 75 + 16 + 16 + 4 * 16),
    (
        "larger-batches-and-queue",
        {
            "batch": {"maxBytes": 64 * 1024 * 1024},
            "source": {
                "kafka": {
                    "brokers": ["kafka:9092"],
                    "topics": ["orders"],
                    "config": {"queued.max.messages.kbytes": "65536", "fetch.max.bytes": "8388608"},
                }
            },
        },
        75 + 64 + 8 + 6 * 64,
    ),
    ("generator-no-prefetch", {"source": {"generator": {}}, **KAFKA_LOG}, 75 + 4 * 16),
    (
        "user-sink-as-fallback",
        {"sink": {"log": {}, "fallback": USER_SINK}},
        75 + 16 + 16 + 6 * 16,
    ),
]


@pytest.mark.parametrize(
    ("spec", "mib"), [m[1:] for m in MEMORY_BOUNDS], ids=[m[0] for m in MEMORY_BOUNDS]
)
def test_runtime_resources_default_to_the_memory_bound_of_its_settings(spec: Doc, mib: int) -> None:
    runtime = container(pod_of(children(udsink(**spec))), "runtime")
    memory = f"{mib}Mi"
    assert runtime["resources"] == {
        "requests": {"cpu": constants.DEFAULT_RUNTIME_CPU_REQUEST, "memory": memory},
        "limits": {"cpu": constants.DEFAULT_RUNTIME_CPU_LIMIT, "memory": memory},
    }


def test_operations_doc_quotes_the_bounds_the_operator_applies() -> None:
    text = " ".join((ROOT / "docs" / "operations.md").read_text(encoding="utf-8").split())
    user_sink, built_in = MEMORY_BOUNDS[0][2], MEMORY_BOUNDS[1][2]
    assert f"= {built_in} MiB, or {user_sink} MiB with a user-defined sink" in text


def test_resources_layers_replace_whole_resources() -> None:
    # The operator's defaults (the chart's runtime.resources): a CPU request alone, so no
    # CPU limit; an extra resource. The UDSink's own: a memory limit alone.
    operator_wide = api.Resources.model_validate(
        {"requests": {"cpu": "250m", "ephemeral-storage": "1Gi"}}
    )
    options = build.BuildOptions(runtime_resources=operator_wide)
    runtime = container(pod_of(children(udsink(), options)), "runtime")
    assert runtime["resources"] == {
        "requests": {"cpu": "250m", "ephemeral-storage": "1Gi", "memory": "203Mi"},
        "limits": {"memory": "203Mi"},
    }
    own = udsink(runtime={"resources": {"limits": {"memory": "1Gi"}}})
    runtime = container(pod_of(children(own, options)), "runtime")
    assert runtime["resources"] == {
        "requests": {"cpu": "250m", "ephemeral-storage": "1Gi"},
        "limits": {"memory": "1Gi"},  # the API server makes the request equal to it
    }
    # Nothing named: every default stays.
    runtime = container(pod_of(children(udsink(runtime={"resources": {}}))), "runtime")
    assert set(runtime["resources"]["limits"]) == {"cpu", "memory"}


# --- spreading the replicas ---

OWN_PODS = {"matchLabels": {constants.LABEL_UDSINK: "orders"}}


@pytest.mark.parametrize("replicas", [1, 3])
def test_replicas_spread_over_nodes_by_default_whatever_their_number(replicas: int) -> None:
    # The same pod template for any replica count: scaling never rolls the pods.
    pod = pod_of(children(udsink(replicas=replicas)))
    assert pod["topologySpreadConstraints"] == [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": OWN_PODS,
        }
    ]


def test_given_spread_constraints_count_the_udsinks_pods_unless_they_select() -> None:
    zone = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone"}
    given = [
        {**zone, "whenUnsatisfiable": "DoNotSchedule", "minDomains": 3},
        {
            **zone,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"team": "a"}},
            "matchLabelKeys": ["pod-template-hash"],
            "nodeTaintsPolicy": "Honor",
        },
    ]
    pod = pod_of(children(udsink(pod={"topologySpreadConstraints": given})))
    assert pod["topologySpreadConstraints"] == [
        {**given[0], "labelSelector": OWN_PODS},
        given[1],
    ]


def test_an_empty_spread_list_spreads_nothing() -> None:
    pod = pod_of(children(udsink(pod={"topologySpreadConstraints": []})))
    assert "topologySpreadConstraints" not in pod


SIDECAR_LAYOUTS = [
    ({}, ["udsink"]),
    ({"sink": {"kafka": {"brokers": ["k:1"], "topic": "t"}}}, []),
    (
        {
            "sink": {
                "udsink": {"container": {"image": "s"}},
                "retryStrategy": {"onFailure": "fallback"},
                "fallback": USER_SINK,
            }
        },
        ["udsink", "fb-udsink"],
    ),
    (
        {"sink": {"log": {}, "onSuccess": USER_SINK, "fallback": USER_SINK}},
        ["fb-udsink", "ons-udsink"],
    ),
    (
        {
            "sink": {"udsink": {"container": {"image": "s"}}, "onSuccess": USER_SINK},
            "pod": {"sidecars": [{"name": "db-proxy", "image": "proxy:1"}]},
        },
        ["db-proxy", "udsink", "ons-udsink"],
    ),
]


@pytest.mark.parametrize(("spec", "names"), SIDECAR_LAYOUTS)
def test_native_sidecars(spec: Doc, names: list[str]) -> None:
    pod = pod_of(children(udsink(**spec)))
    assert [c["name"] for c in pod.get("initContainers", [])] == names
    assert [c["name"] for c in pod["containers"]] == ["runtime"]
    for sidecar in pod.get("initContainers", []):
        assert sidecar["restartPolicy"] == "Always"
        env = env_of(sidecar)
        if sidecar["name"] == "db-proxy":
            assert rc.CONTAINER_TYPE_ENV not in env
            assert "volumeMounts" not in sidecar
        else:
            assert env[rc.CONTAINER_TYPE_ENV] == sidecar["name"]
            assert sidecar["volumeMounts"] == [
                {"name": constants.VOLUME_SOCKETS, "mountPath": rc.SOCKET_DIR}
            ]
        assert sidecar["securityContext"]["allowPrivilegeEscalation"] is False
        assert sidecar["securityContext"]["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize("sidecars", ["native", "plain"])
@pytest.mark.parametrize(("spec", "names"), SIDECAR_LAYOUTS)
def test_every_sink_container_is_probed_on_its_data_plane_path(
    spec: Doc, names: list[str], sidecars: SidecarMode
) -> None:
    pod = pod_of(children(udsink(**spec), build.BuildOptions(sidecars=sidecars)))
    for name in names:
        probe = container(pod, name).get("livenessProbe")
        if name == "db-proxy":
            assert probe is None  # not a sink: nothing of ours to ask
            continue
        assert probe is not None
        # The data plane's port by number: a named port resolves in the probed container.
        assert probe["httpGet"] == {"path": f"/livez/{name}", "port": rc.METRICS_PORT}
        timing = sink_probe_timing(30_000, 120_000)  # the defaults
        assert probe["initialDelaySeconds"] == timing.initial_delay_s == 120
        assert probe["periodSeconds"] == timing.period_s
        assert probe["timeoutSeconds"] == timing.timeout_s
        assert probe["failureThreshold"] == timing.failure_threshold


def test_sink_probe_timing_follows_each_sinks_timeouts() -> None:
    fast = {"container": {"image": "s"}, "writeTimeout": "4s", "startupTimeout": "15s"}
    slow = {"container": {"image": "f"}, "writeTimeout": "1m", "startupTimeout": "5m"}
    spec: Doc = {
        "sink": {
            "udsink": fast,
            "retryStrategy": {"onFailure": "fallback"},
            "fallback": {"udsink": slow},
        }
    }
    pod = pod_of(children(udsink(**spec)))
    primary = container(pod, "udsink")["livenessProbe"]
    fallback = container(pod, "fb-udsink")["livenessProbe"]
    assert primary["initialDelaySeconds"] == 15
    assert (primary["periodSeconds"], primary["failureThreshold"]) == (2, 10)
    assert fallback["initialDelaySeconds"] == 300
    assert (fallback["periodSeconds"], fallback["failureThreshold"]) == (10, 3)


@pytest.mark.parametrize(("spec", "names"), SIDECAR_LAYOUTS)
def test_plain_containers_for_old_clusters(spec: Doc, names: list[str]) -> None:
    built = children(udsink(**spec), build.BuildOptions(sidecars="plain"), version="1.28")
    pod = pod_of(built)
    assert "initContainers" not in pod
    assert [c["name"] for c in pod["containers"]] == ["runtime", *names]
    assert all("restartPolicy" not in c for c in pod["containers"])


def test_user_container_fields_are_carried_over() -> None:
    sink_container = {
        "image": "ghcr.io/acme/pg:1",
        "imagePullPolicy": "IfNotPresent",
        "command": ["/sink"],
        "args": ["--verbose"],
        "env": [
            {"name": "PLAIN", "value": "1"},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}],
        "resources": {"limits": {"memory": "64Mi"}},
    }
    sink = container(
        pod_of(children(udsink(sink={"udsink": {"container": sink_container}}))), "udsink"
    )
    assert sink["image"] == "ghcr.io/acme/pg:1"
    assert sink["imagePullPolicy"] == "IfNotPresent"
    assert (sink["command"], sink["args"]) == (["/sink"], ["--verbose"])
    assert sink["env"] == [
        *sink_container["env"],
        {"name": rc.CONTAINER_TYPE_ENV, "value": "udsink"},
    ]
    assert sink["envFrom"] == [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}]
    assert sink["resources"] == {"limits": {"memory": "64Mi"}}


def test_shared_socket_volume_and_config_volume() -> None:
    volumes = {v["name"]: v for v in pod_of(children(udsink()))["volumes"]}
    assert volumes[constants.VOLUME_SOCKETS] == {
        "name": "sockets",
        "emptyDir": {"medium": "Memory"},
    }
    assert volumes[constants.VOLUME_CONFIG]["configMap"] == {
        "name": "orders-config",
        "items": [{"key": "config.json", "path": "config.json"}],
    }


def test_pod_security_defaults_and_overrides() -> None:
    default = pod_of(children(udsink()))
    assert default["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": constants.DEFAULT_UID,
        "runAsGroup": constants.DEFAULT_UID,
        "fsGroup": constants.DEFAULT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert default["automountServiceAccountToken"] is False
    assert default["enableServiceLinks"] is False
    assert default["terminationGracePeriodSeconds"] == 30
    custom = pod_of(
        children(
            udsink(
                pod={
                    "securityContext": {
                        "runAsUser": 1000,
                        "runAsGroup": 2000,
                        "fsGroup": 3000,
                        "fsGroupChangePolicy": "OnRootMismatch",
                        "supplementalGroups": [4000],
                        "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
                    },
                    "automountServiceAccountToken": True,
                },
                runtime={"shutdownGracePeriod": "55s"},
            )
        )
    )
    assert custom["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 2000,
        "fsGroup": 3000,
        "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
        "fsGroupChangePolicy": "OnRootMismatch",
        "supplementalGroups": [4000],
    }
    assert custom["automountServiceAccountToken"] is True
    assert custom["terminationGracePeriodSeconds"] == 60


POD_KNOBS: list[tuple[str, Doc, Doc]] = [
    ("serviceAccountName", {"serviceAccountName": "sink-sa"}, {"serviceAccountName": "sink-sa"}),
    ("nodeSelector", {"nodeSelector": {"pool": "io"}}, {"nodeSelector": {"pool": "io"}}),
    (
        "tolerations",
        {"tolerations": [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}]},
        {"tolerations": [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}]},
    ),
    (
        "affinity",
        {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "zone", "operator": "In", "values": ["a"]}
                                ]
                            }
                        ]
                    }
                },
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 50,
                            "podAffinityTerm": {
                                "topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": {"udsink.dev/name": "orders"}},
                            },
                        }
                    ]
                },
            }
        },
        {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "zone", "operator": "In", "values": ["a"]}
                                ]
                            }
                        ]
                    }
                },
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 50,
                            "podAffinityTerm": {
                                "topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": {"udsink.dev/name": "orders"}},
                            },
                        }
                    ]
                },
            }
        },
    ),
    ("priorityClassName", {"priorityClassName": "high"}, {"priorityClassName": "high"}),
    (
        "imagePullSecrets",
        {"imagePullSecrets": [{"name": "regcred"}]},
        {"imagePullSecrets": [{"name": "regcred"}]},
    ),
    ("runtimeClassName", {"runtimeClassName": "gvisor"}, {"runtimeClassName": "gvisor"}),
]


@pytest.mark.parametrize(
    ("pod", "expected"), [k[1:] for k in POD_KNOBS], ids=[k[0] for k in POD_KNOBS]
)
def test_pod_knobs(pod: Doc, expected: Doc) -> None:
    spec = pod_of(children(udsink(pod=pod)))
    for key, value in expected.items():
        assert spec[key] == value
    absent = {k[0] for k in POD_KNOBS} - set(expected)
    assert not absent & set(spec)


def test_pod_metadata_goes_on_the_pods_only() -> None:
    built = children(
        udsink(
            pod={
                "metadata": {
                    "labels": {"team": "a"},
                    "annotations": {"prometheus.io/scrape": "true"},
                }
            }
        )
    )
    template = built.deployment["spec"]["template"]["metadata"]
    assert template["labels"]["team"] == "a"
    assert template["labels"]["udsink.dev/name"] == "orders"
    assert template["annotations"]["prometheus.io/scrape"] == "true"
    assert constants.ANNOTATION_CONFIG_HASH in template["annotations"]
    for manifest in built.manifests():
        assert "team" not in manifest["metadata"]["labels"]
        assert "prometheus.io/scrape" not in manifest["metadata"].get("annotations", {})


def test_metrics_service() -> None:
    service = children(udsink()).service
    assert service["spec"] == {
        "type": "ClusterIP",
        "selector": {"udsink.dev/name": "orders"},
        "ports": [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}],
    }


# --- comparing desired and live state ---


def test_up_to_date_ignores_server_filled_fields() -> None:
    desired = children(udsink()).deployment
    live = copy.deepcopy(desired)
    live["metadata"]["resourceVersion"] = "7"
    live["metadata"]["managedFields"] = [{"manager": "udsink-operator"}]
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    live["status"] = {"replicas": 1}
    assert drift.up_to_date(desired, live)


@pytest.mark.parametrize(
    "change",
    [
        lambda live: live["spec"].update(replicas=5),
        lambda live: live["spec"]["template"]["spec"]["containers"][0].update(image="other"),
        lambda live: live["spec"]["template"]["spec"]["volumes"].pop(),
        lambda live: live["metadata"]["labels"].pop("udsink.dev/name"),
    ],
)
def test_up_to_date_notices_drift(change: Callable[[Doc], None]) -> None:
    desired = children(udsink()).deployment
    live = copy.deepcopy(desired)
    change(live)
    assert not drift.up_to_date(desired, live)
    assert not drift.up_to_date(desired, None)


def test_removed_field_changes_the_applied_hash() -> None:
    with_selector = children(udsink(pod={"nodeSelector": {"pool": "io"}})).deployment
    without = children(udsink()).deployment
    # The live object still has the nodeSelector (a subset check alone would say "same"),
    # but the applied-hash annotation differs, so the operator applies again.
    assert not drift.up_to_date(without, with_selector)


@pytest.mark.parametrize(
    ("version", "mode"),
    [
        ({"major": "1", "minor": "26"}, "plain"),
        ({"major": "1", "minor": "28"}, "plain"),
        ({"major": "1", "minor": "29"}, "native"),
        ({"major": "1", "minor": "31+"}, "native"),
        ({"major": "2", "minor": "0"}, "native"),
        ({}, "native"),
    ],
)
def test_sidecar_mode_from_server_version(version: dict[str, str], mode: str) -> None:
    assert handlers.sidecars_for_version(version) == mode
