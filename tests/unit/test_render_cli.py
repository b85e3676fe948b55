"""`udsink render` and the operator command's arguments."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from udsink_cli import operator_cmd
from udsink_cli.manifests import InputError, load_udsink
from udsink_cli.render import render_main

from sink_runtime.config.errors import FALLBACK_NEEDED
from tests.support.kube_schemas import check_manifest

ROOT = Path(__file__).parents[2]
EXAMPLES = sorted(ROOT.glob("examples/*/udsink.yaml"))
MINIMAL = ROOT / "examples" / "01-minimal" / "udsink.yaml"
FALLBACK = ROOT / "examples" / "02-fallback" / "udsink.yaml"


def render(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = render_main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_examples_render_to_manifests_kubernetes_accepts(path: Path) -> None:
    code, out, err = render(["-f", str(path)])
    assert (code, err) == (0, "")
    docs = list(yaml.safe_load_all(out))
    name = yaml.safe_load(path.read_text())["metadata"]["name"]
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("ConfigMap", f"{name}-config"),
        ("Service", f"{name}-metrics"),
        ("Deployment", name),
    ]
    for doc in docs:
        check_manifest(doc)
        assert "ownerReferences" not in doc["metadata"]  # nothing owns a rendered file yet
    assert "&id" not in out and "*id" not in out  # plain YAML, no anchors


def test_render_plain_sidecars_and_runtime_image() -> None:
    code, out, _ = render(
        ["-f", str(MINIMAL), "--sidecars", "plain", "--runtime-image", "registry.local/u:1"]
    )
    assert code == 0
    deployment = list(yaml.safe_load_all(out))[2]
    pod = deployment["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert [c["name"] for c in pod["containers"]] == ["runtime", "udsink"]
    assert pod["containers"][0]["image"] == "registry.local/u:1"


def test_render_reads_several_documents_and_skips_other_kinds(tmp_path: Path) -> None:
    first = yaml.safe_load(MINIMAL.read_text())
    second = yaml.safe_load(FALLBACK.read_text())
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    file = tmp_path / "all.yaml"
    file.write_text(yaml.safe_dump_all([namespace, first, second]))
    code, out, _ = render(["-f", str(file)])
    assert code == 0
    assert len(list(yaml.safe_load_all(out))) == 6


def test_render_invalid_file_names_the_field_and_exits_2(tmp_path: Path) -> None:
    doc = yaml.safe_load(FALLBACK.read_text())
    doc["spec"]["sink"].pop("fallback")
    doc["spec"]["batch"]["size"] = 0
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(doc))
    code, out, err = render(["-f", str(file)])
    assert (code, out) == (2, "")
    assert f"udsink render: {file}: UDSink 'orders-to-pg' is invalid:" in err
    assert "  - spec.batch.size: Input should be greater than or equal to 1 (got 0)" in err
    assert f"  - spec.sink: {FALLBACK_NEEDED}" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "input.yaml: no such file"),
        ("kind: ConfigMap\n", "no object of kind UDSink (found ConfigMap)"),
        # The YAML error points into the file by name, not into "<unicode string>".
        ("a: [unclosed\n", 'input.yaml is not valid YAML: while parsing a flow sequence\n  in "'),
    ],
)
def test_render_unusable_input(tmp_path: Path, content: str | None, message: str) -> None:
    file = tmp_path / "input.yaml"
    if content is not None:
        file.write_text(content)
    code, out, err = render(["-f", str(file)])
    assert (code, out) == (2, "")
    assert message in err


def test_render_yaml_error_points_into_the_file(tmp_path: Path) -> None:
    file = tmp_path / "input.yaml"
    file.write_text("kind: UDSink\nspec: [unclosed\n")
    code, _, err = render(["-f", str(file)])
    assert code == 2
    assert f'in "{file}", line 2' in err, err
    assert "<unicode string>" not in err


def test_operator_needs_to_know_where_to_watch() -> None:
    parser = operator_cmd.operator_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([])
    with pytest.raises(SystemExit):
        parser.parse_args(["-n", "a", "-A"])
    args = parser.parse_args(["-n", "a", "-n", "team-*"])
    assert (args.namespaces, args.all_namespaces) == (["a", "team-*"], False)
    args = parser.parse_args(["-A", "--standalone"])
    assert (args.all_namespaces, args.standalone) == (True, True)


def test_operator_defaults() -> None:
    args = operator_cmd.operator_parser().parse_args(["-A"])
    assert args.peering == "udsink-operator"
    assert args.standalone is False
    assert args.log_format == "json"
    assert args.sidecars == "auto"
    assert args.liveness == "http://0.0.0.0:8080/healthz"
    with pytest.raises(SystemExit):
        operator_cmd.operator_parser().parse_args(["-A", "--standalone", "--peering", "x"])
    assert args.secret_check is True
    assert (
        operator_cmd.operator_parser().parse_args(["-A", "--no-secret-check"]).secret_check is False
    )


def test_replicas_never_tie_for_leadership() -> None:
    # kopf pauses every operator that sees a live peer of its own priority: two replicas
    # started alike must not share one, or neither ever works.
    assert operator_cmd.operator_parser().parse_args(["-A"]).priority is None
    drawn = {operator_cmd.peering_priority(None) for _ in range(50)}
    assert len(drawn) == 50 and min(drawn) > 0
    assert operator_cmd.peering_priority(7) == 7


# What the API server refuses, render and run refuse too: no string becomes a number, and the
# Deployment refusals knowable without a cluster.
AS_STRICT_AS_THE_CRD = [
    ({"batch": {"size": "10"}}, 'spec.batch.size: must be an integer (got the string "10")'),
    (
        {"source": {"generator": {"count": "5"}}},
        'spec.source.generator.count: must be an integer (got the string "5")',
    ),
    (
        {"pod": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}},
        'spec.pod.tolerations[0]: operator Exists matches any value: remove value "v"',
    ),
    (
        {"runtime": {"resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}}}},
        "spec.runtime.resources: requests.memory (1Gi) must not exceed limits (512Mi)",
    ),
]


@pytest.mark.parametrize(("spec", "issue"), AS_STRICT_AS_THE_CRD)
def test_render_and_run_refuse_what_the_api_server_refuses(
    tmp_path: Path, spec: dict[str, object], issue: str
) -> None:
    doc = yaml.safe_load(MINIMAL.read_text())
    doc["spec"].update(spec)
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(doc))
    code, out, err = render(["-f", str(file)])
    assert (code, out) == (2, "")
    assert f"  - {issue}" in err, err
    with pytest.raises(InputError) as refused:  # what `udsink run -f` loads
        load_udsink(str(file))
    assert f"  {issue}" in str(refused.value)
