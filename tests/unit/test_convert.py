"""`udsink convert`: Numaflow's own MonoVertex and Pipeline manifests (tests/data/numaflow) become
UDSinks our models, the CRD and `udsink render` accept; every field left out is named with its
path; the exit status says whether the UDSink does what the Numaflow object did."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from udsink_cli.convert import NUMAFLOW_DEFAULT_SINK_ATTEMPTS, convert_main, convert_object
from udsink_cli.render import render_main
from udsink_operator import api

from tests.support.kube_schemas import check_manifest, crd_violations

DATA = Path(__file__).parents[1] / "data" / "numaflow"

# Each manifest's exit status: 0 the same behaviour, 1 printed but something left out changes
# it, 2 no UDSink.
EXPECTED_EXIT = {
    "mvtx-builtin.yaml": 0,
    "mvtx-bypass.yaml": 2,
    "mvtx-kafka-secured.yaml": 0,
    "mvtx-retry.yaml": 0,
    "mvtx-sqs.yaml": 2,
    "mvtx-udsource.yaml": 2,
    "pipeline-fallback.yaml": 1,
    "pipeline-kafka-reduce.yaml": 1,
    "pipeline-kafka-to-sink.yaml": 0,
    "pipeline-udsink.yaml": 1,
}


def convert(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = convert_main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def convert_doc(doc: dict[str, Any], tmp_path: Path) -> tuple[int, list[Any], str]:
    file = tmp_path / "numaflow.yaml"
    file.write_text(yaml.safe_dump(doc))
    code, out, err = convert(["-f", str(file)])
    return code, [d for d in yaml.safe_load_all(out) if d is not None], err


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((DATA / name).read_text())
    assert isinstance(doc, dict)
    return doc


def noted_paths(err: str) -> list[str]:
    return re.findall(r"^  - (\S+?): ", err, flags=re.MULTILINE)


def resolve(doc: Any, path: str) -> Any:
    """The value at a note's path (`spec.vertices[1].udf`), KeyError/IndexError if absent."""
    node = doc
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        node = node[int(index)] if index else node[name]
    return node


def test_the_data_covers_every_manifest() -> None:
    assert sorted(p.name for p in DATA.glob("*.yaml")) == sorted(EXPECTED_EXIT)


@pytest.mark.parametrize("name", sorted(EXPECTED_EXIT))
def test_numaflow_manifests_convert_to_udsinks_render_accepts(name: str, tmp_path: Path) -> None:
    code, out, err = convert(["-f", str(DATA / name)])
    assert code == EXPECTED_EXIT[name], err
    udsinks = [d for d in yaml.safe_load_all(out) if d is not None]
    if code == 2:
        assert udsinks == []
        assert "not converted" in err
        return
    (udsink,) = udsinks
    source = load(name)
    assert udsink["metadata"]["name"] == source["metadata"]["name"]
    api.parse_udsink(udsink)
    assert crd_violations(udsink) == []
    file = tmp_path / "udsink.yaml"
    file.write_text(out)
    rendered = io.StringIO()
    assert render_main(["-f", str(file)], out=rendered, err=io.StringIO()) == 0
    children = list(yaml.safe_load_all(rendered.getvalue()))
    assert [c["kind"] for c in children] == ["ConfigMap", "Service", "Deployment"]
    for child in children:
        check_manifest(child)


@pytest.mark.parametrize("name", sorted(EXPECTED_EXIT))
def test_every_note_names_a_field_of_the_manifest(name: str) -> None:
    _, _, err = convert(["-f", str(DATA / name)])
    source = load(name)
    for path in noted_paths(err):
        resolve(source, path)  # raises if the path names nothing in the manifest


@pytest.mark.parametrize(
    ("name", "paths"),
    [
        ("mvtx-udsource.yaml", ["spec.source.udsource", "spec.source.transformer", "spec.udf"]),
        ("mvtx-sqs.yaml", ["spec.source.sqs", "spec.scale.max"]),
        ("mvtx-bypass.yaml", ["spec.source.udsource", "spec.udf", "spec.bypass"]),
        ("pipeline-udsink.yaml", ["spec.vertices[1]"]),
        ("pipeline-fallback.yaml", ["spec.vertices[1]"]),
        (
            "pipeline-kafka-reduce.yaml",
            [
                "spec.vertices[0].source.transformer",
                "spec.vertices[1]",
                "spec.vertices[0].scale",
                "spec.watermark",
            ],
        ),
    ],
)
def test_what_cannot_be_carried_over_is_named_with_its_path(name: str, paths: list[str]) -> None:
    _, _, err = convert(["-f", str(DATA / name)])
    assert sorted(noted_paths(err)) == sorted(paths), err


def test_changes_in_behaviour_are_marked_and_said(tmp_path: Path) -> None:
    code, _, err = convert(["-f", str(DATA / "pipeline-udsink.yaml")])
    assert code == 1
    assert "  - spec.vertices[1]: vertex 'p1': udsink runs no map or reduce step" in err
    assert "[changes behaviour]" in err
    assert "the UDSink does not do all it did" in err


def test_kafka_source_sinks_retry_limits_scale_and_pod_are_carried_over() -> None:
    converted = convert_object(load("mvtx-kafka-secured.yaml"))
    assert converted.error is None and converted.udsink is not None
    assert [n.path for n in converted.notes.items] == [
        "spec.source.kafka.sasl.plain.handshake",
        "spec.scale.max",
    ]
    assert not converted.notes.changes
    spec = converted.udsink["spec"]
    assert converted.udsink["metadata"] == {
        "name": "orders-mvtx",
        "namespace": "shop",
        "labels": {"team": "payments"},
    }
    assert spec["replicas"] == 2  # scale.min
    assert spec["source"]["kafka"] == {
        "brokers": ["my-broker1:19700", "my-broker2:19700"],
        "tls": {
            "caCertSecret": {"name": "my-ca-cert", "key": "my-ca-cert-key"},
            "certSecret": {"name": "my-cert", "key": "my-cert-key"},
            "keySecret": {"name": "my-pk", "key": "my-pk-key"},
        },
        "sasl": {
            "mechanism": "PLAIN",
            "plain": {
                "userSecret": {"name": "kafka-plain-auth", "key": "username"},
                "passwordSecret": {"name": "kafka-plain-auth", "key": "password"},
            },
        },
        "config": {"session.timeout.ms": "45000"},
        "topics": ["my-topic"],
        "consumerGroup": "my-consumer-group",
        "startOffset": "earliest",
    }
    assert spec["batch"] == {"size": 100, "timeout": "500ms"}
    sink = spec["sink"]
    assert sink["udsink"]["container"]["image"] == "my-sink-image"
    assert sink["udsink"]["container"]["env"][1]["valueFrom"] == {
        "secretKeyRef": {"name": "db", "key": "password"}
    }
    assert sink["udsink"]["container"]["resources"]["limits"] == {"memory": "256Mi"}
    assert sink["fallback"] == {"udsink": {"container": {"image": "my-fallback-sink"}}}
    # Numaflow's steps count the first attempt; udsink's count the retries after it.
    assert sink["retryStrategy"] == {
        "backoff": {"interval": "500ms", "factor": 2.2, "cap": "10s", "steps": 9},
        "onFailure": "fallback",
    }
    assert spec["pod"] == {
        "metadata": {"labels": {"app": "orders"}},
        "serviceAccountName": "orders",
        "nodeSelector": {"pool": "streaming"},
        "imagePullSecrets": [{"name": "registry"}],
    }


def test_pipeline_of_one_kafka_source_and_one_sink() -> None:
    converted = convert_object(load("pipeline-kafka-to-sink.yaml"))
    assert converted.udsink is not None and not converted.notes.changes
    spec = converted.udsink["spec"]
    assert spec["source"]["kafka"]["topics"] == ["orders", "refunds"]  # one comma-separated string
    assert spec["source"]["kafka"]["sasl"]["mechanism"] == "SCRAM-SHA-512"
    # Numaflow's Kafka sink sets no record key unless told to; udsink's does by default.
    assert spec["sink"]["fallback"]["kafka"]["setKey"] is False
    assert spec["sink"]["onSuccess"] == {"udsink": {"container": {"image": "my-sink:latest"}}}
    assert spec["replicas"] == 3


def monovertex(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "numaflow.numaproj.io/v1alpha1",
        "kind": "MonoVertex",
        "metadata": {"name": "mv"},
        "spec": {
            "source": {"kafka": {"brokers": ["k:9092"], "topic": "t", "consumerGroup": "g"}},
            "sink": {"udsink": {"container": {"image": "s:1"}}},
            **spec,
        },
    }


def test_onfailure_without_steps_keeps_numaflows_attempts(tmp_path: Path) -> None:
    doc = monovertex()
    doc["spec"]["sink"]["retryStrategy"] = {"onFailure": "drop"}
    code, (udsink,), _ = convert_doc(doc, tmp_path)
    assert code == 0
    assert udsink["spec"]["sink"]["retryStrategy"] == {
        "backoff": {"steps": NUMAFLOW_DEFAULT_SINK_ATTEMPTS - 1},
        "onFailure": "drop",
    }


def test_kafka_config_lines_owned_keys_and_nested_settings(tmp_path: Path) -> None:
    doc = monovertex()
    doc["spec"]["source"]["kafka"]["config"] = (
        "auto.offset.reset: latest\nenable.auto.commit: false\nfetch.min.bytes: 1024\n"
        "consumer:\n  offsets:\n    initial: -2\n"
    )
    code, (udsink,), err = convert_doc(doc, tmp_path)
    kafka = udsink["spec"]["source"]["kafka"]
    assert (kafka["startOffset"], kafka["config"]) == ("latest", {"fetch.min.bytes": "1024"})
    assert (
        "  - spec.source.kafka.config[enable.auto.commit]: udsink sets this key itself: udsink "
        "commits offsets itself, after each batch [no effect on the sink]"
    ) in err
    assert "  - spec.source.kafka.config[consumer]: a nested (Sarama-style) setting" in err
    assert code == 1  # the nested setting is not carried over


def test_gssapi_cannot_authenticate(tmp_path: Path) -> None:
    doc = monovertex()
    doc["spec"]["source"]["kafka"]["sasl"] = {
        "mechanism": "GSSAPI",
        "gssapi": {"serviceName": "kafka", "realm": "EXAMPLE"},
    }
    code, (udsink,), err = convert_doc(doc, tmp_path)
    assert code == 1
    assert "sasl" not in udsink["spec"]["source"]["kafka"]
    assert "  - spec.source.kafka.sasl.mechanism: udsink supports the SASL mechanisms PLAIN" in err


def test_container_fields_udsink_sets_or_lacks(tmp_path: Path) -> None:
    doc = monovertex(volumes=[{"name": "cfg", "configMap": {"name": "cfg"}}])
    doc["spec"]["sink"]["udsink"]["container"].update(
        env=[
            {"name": "NUMAFLOW_UD_CONTAINER_TYPE", "value": "udsink"},
            {"name": "MODE", "value": "fast"},
        ],
        volumeMounts=[{"name": "cfg", "mountPath": "/etc/cfg"}],
        securityContext={"runAsUser": 1000},
    )
    code, (udsink,), err = convert_doc(doc, tmp_path)
    assert code == 1  # the sink loses its mounted files
    assert udsink["spec"]["sink"]["udsink"]["container"] == {
        "image": "s:1",
        "env": [{"name": "MODE", "value": "fast"}],
    }
    assert sorted(noted_paths(err)) == [
        "spec.sink.udsink.container.env[0]",
        "spec.sink.udsink.container.securityContext",
        "spec.sink.udsink.container.volumeMounts",
        "spec.volumes",
    ]


def test_a_field_it_does_not_know_is_named(tmp_path: Path) -> None:
    doc = monovertex(futureKnob={"on": True})
    code, _, err = convert_doc(doc, tmp_path)
    assert code == 1
    assert "  - spec.futureKnob: udsink has no equivalent of this field [changes behaviour]" in err


def test_scale_without_replicas_and_the_largest_batch(tmp_path: Path) -> None:
    doc = monovertex(scale={"min": 0, "max": 4}, limits={"readBatchSize": 50_000})
    code, (udsink,), err = convert_doc(doc, tmp_path)
    assert code == 0
    assert udsink["spec"]["replicas"] == 1
    top = api.field_bounds(api.Batch.model_fields["size"])
    assert top is not None and udsink["spec"]["batch"]["size"] == int(top[1])
    assert sorted(noted_paths(err)) == [
        "spec.limits.readBatchSize",
        "spec.scale.max",
        "spec.scale.min",
    ]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
            "no Numaflow MonoVertex or Pipeline (found: ConfigMap)",
        ),
        (
            {
                "apiVersion": "numaflow.numaproj.io/v1alpha1",
                "kind": "Pipeline",
                "metadata": {"name": "two-sinks"},
                "spec": {
                    "vertices": [
                        {"name": "in", "source": {"generator": {}}},
                        {"name": "a", "sink": {"log": {}}},
                        {"name": "b", "sink": {"log": {}}},
                    ]
                },
            },
            "a UDSink is one source and one sink; this Pipeline has 1 source and 2 sink vertices",
        ),
    ],
)
def test_what_cannot_become_a_udsink_exits_2(
    doc: dict[str, Any], message: str, tmp_path: Path
) -> None:
    code, udsinks, err = convert_doc(doc, tmp_path)
    assert (code, udsinks) == (2, [])
    assert message in err


def test_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO((DATA / "mvtx-builtin.yaml").read_text()))
    code, out, _ = convert(["-f", "-"])
    assert code == 0
    assert yaml.safe_load(out)["spec"]["sink"] == {"log": {}}


def test_a_value_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    code, udsinks, err = convert_doc(monovertex(limits={"readBatchSize": "100"}), tmp_path)
    assert (code, udsinks) == (2, [])
    assert "spec.limits.readBatchSize: must be an integer (got '100')" in err


def test_an_invalid_result_names_the_udsink_field(tmp_path: Path) -> None:
    doc = monovertex()
    doc["spec"]["sink"]["retryStrategy"] = {"onFailure": "fallback"}  # and no fallback sink
    code, udsinks, err = convert_doc(doc, tmp_path)
    assert (code, udsinks) == (2, [])
    assert "the UDSink made of it is invalid" in err
    assert "retryStrategy.onFailure is 'fallback' but no fallback sink is set" in err
