"""One version, and the workflows that would publish it.

The version lives in pyproject.toml; the chart's version and appVersion, every image reference
under our registry name in the repository, the operator's default runtime image, the SDK's
server-info metadata and the data plane's build-info gauge all say the same. The CI and release
workflows pass actionlint (built from the Go module proxy), and the release builds with the
same scripts the tests use.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import yaml
from udsink_operator import constants

from sink_runtime.config import constants as rc
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.server import server_info
from tests.support.go_tools import go_tool

ROOT = Path(__file__).parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
WORKFLOWS = ROOT / ".github" / "workflows"
IMAGE_REF = re.compile(r"ghcr\.io/udsink/([a-z0-9-]+):([A-Za-z0-9._-]+)")


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    suffixes = {".md", ".yaml", ".yml", ".py", ".json", ".toml", ".sh", ".tpl", ".txt", ""}
    # tests/ may use other tags on purpose (a user's own runtime image).
    return [
        ROOT / p
        for p in listed
        if Path(p).suffix in suffixes and not p.startswith("tests/") and (ROOT / p).is_file()
    ]


def test_one_version_everywhere() -> None:
    chart = yaml.safe_load((ROOT / "charts" / "udsink-operator" / "Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == (VERSION, VERSION)
    assert f"ghcr.io/udsink/udsink:{VERSION}" == constants.DEFAULT_RUNTIME_IMAGE
    # The installed distribution's metadata (what the SDK and the data plane report).
    assert server_info().metadata[rc.SDK_VERSION_KEY] == VERSION
    assert Metrics().value("udsink_build_info", version=VERSION) == 1

    refs = {
        (path.relative_to(ROOT), name, tag)
        for path in tracked_text_files()
        for name, tag in IMAGE_REF.findall(path.read_text(errors="replace"))
    }
    assert len(refs) >= 5  # values.yaml, the Dockerfiles, examples, docs
    wrong = sorted(f"{p}: {n}:{t}" for p, n, t in refs if t != VERSION)
    assert not wrong, f"image tags other than the project's version {VERSION}: {wrong}"
    names = {n for _, n, _ in refs}
    assert {"udsink", "udsink-operator", "example-sinks", "udsink-sdk"} <= names


def test_workflows_pass_actionlint() -> None:
    actionlint = go_tool("actionlint")
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "release.yml"}
    result = subprocess.run(
        [str(actionlint), "-color=false", *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"actionlint:\n{result.stdout}{result.stderr}"


def test_release_uses_the_scripts_and_checks_the_tag() -> None:
    ci = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    (job,) = ci["jobs"].values()
    assert any("bash .ci/run" in step.get("run", "") for step in job["steps"])
    release = yaml.safe_load((WORKFLOWS / "release.yml").read_text())
    jobs = release["jobs"]
    assert jobs["ci"]["uses"] == "./.github/workflows/ci.yml"
    runs = {
        name: " ".join(s.get("run", "") for s in j.get("steps", [])) for name, j in jobs.items()
    }
    assert "v${version}" in runs["version"] and "pyproject.toml" in runs["version"]
    assert "scripts/build_images.sh" in runs["images"]
    built = runs["images"].split("scripts/build_images.sh", 1)[1].split()
    dockerfiles = {p.parent.name for p in (ROOT / "images").glob("*/Dockerfile")}
    assert set(built) == dockerfiles, "the release builds every image of images/"
    assert "linux/amd64,linux/arm64" in str(jobs["images"])
    assert "--sbom=true" in str(jobs["images"]) and "--provenance=" in str(jobs["images"])
    assert "scripts/ensure_helm.sh" in runs["chart"] and "oci://" in runs["chart"]
    assert jobs["pypi"]["permissions"] == {"id-token": "write"}  # trusted publishing, no token
    publish = [s for s in jobs["pypi"]["steps"] if "pypi-publish" in s.get("uses", "")]
    assert publish and "password" not in publish[0].get("with", {})


def test_every_test_tier_is_in_testpaths() -> None:
    # pytest runs the tiers in testpaths' order (the e2e tier last); a tier left out would
    # silently never run.
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    tiers = {
        str(d.relative_to(ROOT))
        for d in (ROOT / "tests").iterdir()
        if d.is_dir() and any(d.rglob("test_*.py"))
    }
    assert tiers == set(listed["testpaths"])
    assert listed["testpaths"][-1] == "tests/e2e"
