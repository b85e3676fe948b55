"""What the docs quote must be true of the code and the repository.

- docs/operations.md's table of log lines: each quoted text occurs in the code that logs, so
  a reader who searches the logs for it finds the line;
- the examples' shell commands run from the repository root: every file they pass with
  `-f`/`--filename`/`--patch-file` exists at that path;
- docs/install.md: the helm it tells how to build is the one scripts/ensure_helm.sh builds,
  it names every image scripts/build_images.sh builds, its pull-secret snippet is a valid
  part of a UDSink, and its NetworkPolicy for UDSink pods is a valid object that selects the
  pods the operator builds and admits their metrics port.
"""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest
import yaml
from udsink_operator import api, build

from sink_runtime.config import constants as rc
from tests.support.kube_schemas import LATEST, check_manifest

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
CODE_DIRS = (ROOT / "sink_runtime", ROOT / "operator")
FILE_OPTIONS = {"-f", "--filename", "--patch-file"}


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n#", start + len(heading))
    return text[start : end if end >= 0 else None]


def quoted_log_texts() -> list[str]:
    table = _section(OPERATIONS.read_text(encoding="utf-8"), "### What the log lines mean")
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return [re.findall(r"`([^`]+)`", row.split("|")[2])[0] for row in rows]


def code_texts() -> list[str]:
    return [p.read_text(encoding="utf-8") for d in CODE_DIRS for p in sorted(d.rglob("*.py"))]


def test_operations_log_table_is_not_empty() -> None:
    assert len(quoted_log_texts()) >= 8


@pytest.mark.parametrize("quoted", quoted_log_texts())
def test_each_quoted_log_text_occurs_in_the_code(quoted: str) -> None:
    assert any(quoted in text for text in code_texts()), (
        f"docs/operations.md quotes {quoted!r}, which no line of the code contains"
    )


def test_troubleshooting_quotes_only_log_texts_of_the_table() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    paragraph = text[text.index("**Lag grows, nothing is committed.**") :].split("\n\n")[0]
    # Quotes of settings (`onFailure: retry`) and metrics (`udsink_nacked_total`) aside.
    quoted = [
        q for q in re.findall(r"`([^`]+)`", paragraph) if not q.startswith(("udsink_", "onFailure"))
    ]
    assert quoted
    assert set(quoted) <= set(quoted_log_texts()), quoted


def shell_commands(readme: Path) -> list[list[str]]:
    text = readme.read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", text, flags=re.DOTALL)
    lines = [line for b in blocks for line in b.replace("\\\n", " ").splitlines() if line]
    return [shlex.split(line, comments=True) for line in lines]


READMES = sorted((ROOT / "examples").glob("*/README.md"))


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_example_commands_name_files_from_the_repository_root(readme: Path) -> None:
    for argv in shell_commands(readme):
        for option, value in itertools.pairwise(argv):
            if option in FILE_OPTIONS and value != "-" and "://" not in value:
                assert (ROOT / value).is_file(), (
                    f"{readme.relative_to(ROOT)}: `{shlex.join(argv)}` names {value}, "
                    "which does not exist from the repository root"
                )


def test_no_doc_installs_udsink_from_a_package_index() -> None:
    # Not published yet: every install instruction points at this repository, except the
    # one for after a release, which names no runnable version (`udsink==<version>`).
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    docs += sorted((ROOT / "examples").glob("*/README.md"))
    for doc in docs:
        for line in doc.read_text(encoding="utf-8").splitlines():
            found = re.search(r"pip install ['\"]?udsink\b(?!==<version>)", line)
            assert not found, f"{doc.name}: {line}"


def test_install_doc_network_policy_fits_the_pods_the_operator_builds() -> None:
    section = _section((ROOT / "docs" / "install.md").read_text(encoding="utf-8"), "### Network")
    blocks = re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    (policy,) = [yaml.safe_load(b) for b in blocks if "kind: NetworkPolicy" in b]
    check_manifest(policy, LATEST)
    example = ROOT / "examples" / "02-fallback" / "udsink.yaml"
    udsink = api.parse_udsink(yaml.safe_load(example.read_text(encoding="utf-8")))
    template = build.build(udsink).deployment["spec"]["template"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    (runtime,) = template["spec"]["containers"]
    (ingress,) = policy["spec"]["ingress"]
    (port,) = ingress["ports"]
    assert runtime["ports"] == [
        {"name": port["port"], "containerPort": rc.METRICS_PORT, "protocol": port["protocol"]}
    ]
    allowed = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert udsink.spec.source.kafka is not None
    assert {int(b.rsplit(":", 1)[1]) for b in udsink.spec.source.kafka.brokers} <= allowed


INSTALL = ROOT / "docs" / "install.md"


def test_install_doc_builds_the_helm_the_tests_use() -> None:
    script = (ROOT / "scripts" / "ensure_helm.sh").read_text(encoding="utf-8")
    (version,) = re.findall(r'HELM_VERSION="\$\{UDSINK_HELM_VERSION:-(v[0-9.]+)\}"', script)
    section = _section(INSTALL.read_text(encoding="utf-8"), "## Getting helm")
    assert "scripts/ensure_helm.sh" in section
    assert f"({version})" in section and f"helm-{version}/" in section


def test_install_doc_names_every_image_the_build_script_builds() -> None:
    script = (ROOT / "scripts" / "build_images.sh").read_text(encoding="utf-8")
    names = re.findall(r"^\s+\[[a-z-]+\]=([a-z-]+)$", script, flags=re.MULTILINE)
    assert len(names) == 4, names
    table = _section(INSTALL.read_text(encoding="utf-8"), "## 0. The images")
    for name in names:
        assert f"| `ghcr.io/udsink/{name}` |" in table, name


def test_install_doc_pull_secret_goes_into_the_udsinks_pods() -> None:
    text = INSTALL.read_text(encoding="utf-8")
    assert "patch serviceaccount" not in text
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    (snippet,) = [yaml.safe_load(b) for b in blocks if "imagePullSecrets" in b]
    example = yaml.safe_load((ROOT / "examples" / "01-minimal" / "udsink.yaml").read_text())
    example["spec"].update(snippet["spec"])
    pod = build.build(api.parse_udsink(example)).deployment["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == snippet["spec"]["pod"]["imagePullSecrets"]
