"""What the chart ships for monitoring: Grafana dashboards (ConfigMaps for Grafana's sidecar,
the same JSON as docs/dashboards/) and a PrometheusRule whose alerts each link a runbook
section of docs/operations.md. The rules pass `promtool check rules` and every alert has a
`promtool test rules` case (tests/chart/rules_test.yaml); every metric name the dashboards and
rules query is one the data plane or the operator exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from udsink_operator.metrics import OperatorMetrics

from sink_runtime.dataplane.metrics import Metrics
from tests.support.chart import (
    kinds,
    render,
)
from tests.support.go_tools import go_tool

pytestmark = pytest.mark.timeout(3600)  # the first run may build helm and promtool

ROOT = Path(__file__).parents[2]
DOCS_DASHBOARDS = ROOT / "docs" / "dashboards"
CHART_DASHBOARDS = ROOT / "charts" / "udsink-operator" / "dashboards"
RULES_TEST = Path(__file__).parent / "rules_test.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"
ALL_ON = (
    "--set",
    "metrics.dashboards.enabled=true",
    "--set",
    "metrics.prometheusRule.enabled=true",
)
# A metric name in PromQL: our families and the standard process/Python collectors'.
METRIC_NAME = re.compile(r"\b((?:udsink|process|python)_[a-z0-9_]+)\b")


def exported(registry: CollectorRegistry) -> set[str]:
    """Every sample name a registry's families produce, children or not."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in registry.collect():
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
        names |= {s.name for s in family.samples}
    return names


def dashboard_exprs() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(DOCS_DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
        exprs += [v["query"]["query"] for v in board["templating"]["list"] if v["type"] == "query"]
        found[path.name] = exprs
    return found


def rule_groups(helm_bin: Path) -> list[dict[str, Any]]:
    (rule,) = kinds(render(helm_bin, *ALL_ON), "PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def test_dashboards_and_rules_query_only_exported_metrics(helm_bin: Path) -> None:
    names = exported(Metrics().registry) | exported(OperatorMetrics().registry)
    exprs = [e for es in dashboard_exprs().values() for e in es]
    exprs += [r["expr"] for g in rule_groups(helm_bin) for r in g["rules"]]
    used = {m for e in exprs for m in METRIC_NAME.findall(e)}
    assert len(used) >= 15, used  # the pattern finds the queries' names at all
    assert used - names == set(), f"queried but not exported: {sorted(used - names)}"
    # Every family of the data plane's own is on its dashboard: a new metric without a panel
    # fails here (histograms by their buckets; build_info only labels a version).
    data_plane = set(METRIC_NAME.findall(" ".join(dashboard_exprs()["udsink-data-plane.json"])))
    ours = {
        f.name + ("_bucket" if f.type == "histogram" else "_total" if f.type == "counter" else "")
        for f in Metrics().registry.collect()
        if f.name.startswith("udsink_") and f.name != "udsink_build_info"
    }
    assert len(ours) >= 20, ours
    assert ours - data_plane == set(), f"not on the dashboard: {sorted(ours - data_plane)}"


def test_chart_dashboards_are_the_docs_dashboards(helm_bin: Path) -> None:
    docs = {p.name: p.read_text() for p in DOCS_DASHBOARDS.glob("*.json")}
    assert docs and docs == {p.name: p.read_text() for p in CHART_DASHBOARDS.glob("*.json")}
    assert not kinds(render(helm_bin), "PrometheusRule")
    assert not [c for c in kinds(render(helm_bin), "ConfigMap") if "dashboard" in str(c)]
    maps = kinds(
        render(helm_bin, *ALL_ON, "--set", "metrics.dashboards.namespace=monitoring"), "ConfigMap"
    )
    shipped = {}
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["namespace"] == "monitoring"
        ((name, text),) = cm["data"].items()
        shipped[name] = json.loads(text)
    assert shipped == {name: json.loads(text) for name, text in docs.items()}


def test_every_alert_links_a_runbook_section_and_has_a_test_case(helm_bin: Path) -> None:
    headings = re.findall(r"^#+ (.+)$", OPERATIONS.read_text(), flags=re.MULTILINE)
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
    alerts = [r for g in rule_groups(helm_bin) for r in g["rules"]]
    assert len(alerts) >= 7
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]
        assert url.split("#", 1)[1] in anchors, f"{alert['alert']}: {url}: no such section"
    cases = yaml.safe_load(RULES_TEST.read_text())["tests"]
    tested = {t["alertname"] for c in cases for t in c["alert_rule_test"] if t["exp_alerts"]}
    assert tested == {a["alert"] for a in alerts}


def test_rules_pass_promtool_check_and_their_unit_tests(helm_bin: Path, tmp_path: Path) -> None:
    promtool = go_tool("promtool")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups(helm_bin)}))
    shutil.copy(RULES_TEST, tmp_path / "rules_test.yaml")
    for args in (["check", "rules", "rules.yaml"], ["test", "rules", "rules_test.yaml"]):
        result = subprocess.run(
            [str(promtool), *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
