"""docs/reference.md is the generator's current output, and the generator covers the API:
every field of the models appears with its type, default and description."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

from udsink_cli import generate
from udsink_cli.main import COMMANDS
from udsink_operator import api, reference

ROOT = Path(__file__).parents[2]
COMMITTED = ROOT / "docs" / "reference.md"


def test_committed_reference_is_current() -> None:
    assert COMMITTED.read_text() == reference.render(), (
        f"docs/reference.md is stale: run `{reference.REGENERATE}`"
    )


def test_udsink_docs_reference_prints_it() -> None:
    assert COMMANDS["docs-reference"].load() is generate.docs_reference_main
    out = io.StringIO()
    with redirect_stdout(out):
        assert generate.docs_reference_main([]) == 0
    assert out.getvalue() == reference.render()


def test_rows_carry_type_default_and_description() -> None:
    rows = {path: rest for path, *rest in reference.field_rows(api.UDSinkSpec, "spec")}
    assert rows["spec.replicas"][:2] == ["integer", "`1`"]
    assert rows["spec.source"][1] == "required"
    assert rows["spec.batch.size"][:2] == ["integer", "`500`"]
    assert rows["spec.sink.retryStrategy.onFailure"][:2] == [
        "one of: `retry`, `fallback`, `drop`",
        "`retry`",
    ]
    assert rows["spec.sink.kafka.headers.static"][0] == "map of string"
    assert rows["spec.source.kafka.brokers"][:2] == ["list of string", "required"]
    assert rows["spec.pod.sidecars[].name"][1] == "required"
    assert all(description for _, _, description in rows.values()), [
        path for path, (_, _, description) in rows.items() if not description
    ]


def test_every_model_field_is_documented() -> None:
    """Each field of each model reachable from the spec shows up under some path."""
    documented = {
        path.rsplit(".", 1)[-1] for path, *_ in reference.field_rows(api.UDSinkSpec, "spec")
    }
    seen: set[type] = set()
    stack: list[type] = [api.UDSinkSpec]
    while stack:
        model = stack.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            assert (info.alias or name) in documented, f"{model.__name__}.{name}"
            child = reference._model_of(info.annotation)
            if child is not None:
                stack.append(child)
