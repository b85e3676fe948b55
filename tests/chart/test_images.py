"""The Dockerfiles agree with what runs them: the operator's builder (runtime command, args,
port, user), the chart (operator entrypoint, args, health port, user) and the project (the
extras and files they install exist). No docker engine here, so the Dockerfiles are parsed."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import yaml
from udsink_cli import operator_cmd
from udsink_cli.main import COMMANDS
from udsink_operator import constants

from sink_runtime.config import constants as rc
from tests.support.kube_schemas import LATEST

ROOT = Path(__file__).parents[2]
IMAGES = ROOT / "images"
CHART = ROOT / "charts" / "udsink-operator"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def final_stage(dockerfile: Path) -> dict[str, list[str]]:
    """Instructions of the last stage: name -> arguments of each occurrence (raw text)."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    stage: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stage = {}
        stage.setdefault(word.upper(), []).append(rest.strip())
    return stage


def exec_form(stage: dict[str, list[str]], name: str) -> list[str]:
    (raw,) = stage[name]
    value = json.loads(raw)
    assert isinstance(value, list), f"{name} must be in exec form (a JSON list): {raw}"
    return [str(v) for v in value]


def user_id(stage: dict[str, list[str]]) -> int:
    (raw,) = stage["USER"]
    user, _, group = raw.partition(":")
    assert user.isdigit() and (not group or group.isdigit()), f"USER must be numeric: {raw}"
    return int(user)


def installed_extras(stage: dict[str, list[str]]) -> set[str]:
    run = " ".join(stage.get("RUN", []))
    found = re.findall(r"udsink\[([a-z,]+)\]", run)
    return {extra for group in found for extra in group.split(",")}


def test_runtime_image_runs_what_the_builder_puts_in_the_pod() -> None:
    stage = final_stage(IMAGES / "runtime" / "Dockerfile")
    assert exec_form(stage, "ENTRYPOINT") == list(constants.RUNTIME_COMMAND)
    assert exec_form(stage, "CMD") == list(constants.RUNTIME_ARGS)
    assert stage["EXPOSE"] == [str(rc.METRICS_PORT)]
    assert user_id(stage) == constants.DEFAULT_UID
    assert installed_extras(stage) == {"kafka"}  # librdkafka for the Kafka source and sink


def test_operator_image_runs_what_the_chart_passes(helm_bin: Path) -> None:
    stage = final_stage(IMAGES / "operator" / "Dockerfile")
    entrypoint = exec_form(stage, "ENTRYPOINT")
    assert entrypoint == ["udsink"]
    assert PYPROJECT["project"]["scripts"]["udsink"] == "udsink_cli.main:main"
    assert installed_extras(stage) == {"operator"}

    rendered = subprocess.run(
        [str(helm_bin), "template", "uds", str(CHART), "--kube-version", LATEST],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    (deployment,) = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment"]
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "command" not in container  # so the image's ENTRYPOINT runs the chart's args
    subcommand = container["args"][0]
    assert COMMANDS[subcommand].load() is operator_cmd.operator_main
    assert exec_form(stage, "CMD")[0] == subcommand
    assert stage["EXPOSE"] == [str(container["ports"][0]["containerPort"])]
    assert pod["securityContext"]["runAsUser"] == user_id(stage)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["repository"].endswith("/udsink-operator")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == PYPROJECT["project"]["version"]
    # The chart's default runtime image is the operator's built-in default.
    assert values["runtime"]["image"] == constants.DEFAULT_RUNTIME_IMAGE
    assert constants.DEFAULT_RUNTIME_IMAGE.endswith(f":{PYPROJECT['project']['version']}")


def test_example_sinks_image_serves_an_example_sink() -> None:
    stage = final_stage(IMAGES / "example-sinks" / "Dockerfile")
    assert exec_form(stage, "ENTRYPOINT") == ["python"]
    (script,) = exec_form(stage, "CMD")
    copied = stage["COPY"][0].split()
    assert copied == ["examples/sinks/*.py", "/app/"]
    assert (ROOT / "examples" / "sinks" / Path(script).name).is_file()
    assert user_id(stage) == constants.DEFAULT_UID


def test_images_are_multi_stage_and_copy_only_existing_sources() -> None:
    known_extras = set(PYPROJECT["project"]["optional-dependencies"])
    for dockerfile in sorted(IMAGES.glob("*/Dockerfile")):
        text = dockerfile.read_text()
        assert text.count("\nFROM ") == 2, f"{dockerfile}: a wheel stage and a final stage"
        for copy in re.findall(r"^COPY (?!--from)(.+)$", text, flags=re.MULTILINE):
            for source in copy.split()[:-1]:
                assert list(ROOT.glob(source)), f"{dockerfile}: COPY {source}: no such path"
        extras = installed_extras(final_stage(dockerfile))
        assert extras <= known_extras, f"{dockerfile}: unknown extras {extras - known_extras}"
        # No compiler or package manager install in the final stage.
        final = " ".join(final_stage(dockerfile).get("RUN", []))
        assert "apt-get" not in final and "gcc" not in final, dockerfile


def test_sdk_image_is_the_base_of_a_three_line_sink_image() -> None:
    stage = final_stage(IMAGES / "sdk" / "Dockerfile")
    assert exec_form(stage, "ENTRYPOINT") == ["python"]
    assert "CMD" not in stage  # the sink image names its file
    assert installed_extras(stage) == set()  # the SDK only: no Kafka, no operator
    assert user_id(stage) == constants.DEFAULT_UID
    (workdir,) = stage["WORKDIR"]

    example = ROOT / "examples" / "06-sdk-image" / "Dockerfile"
    lines = [line for line in example.read_text().splitlines() if line.strip()]
    assert len(lines) == 3
    version = PYPROJECT["project"]["version"]
    assert lines[0] == f"FROM ghcr.io/udsink/udsink-sdk:{version}"
    source, target = lines[1].split()[1:]
    assert (example.parent / source).is_file() and target == f"{workdir}/"
    (script,) = json.loads(lines[2].removeprefix("CMD "))
    assert script == f"{workdir}/{source}"
