"""The UDSink field reference (docs/reference.md), rendered from the API models.

Separate from `crd.py` because its reader differs: the CRD is for the API server and
`kubectl explain`, this page is for a person scanning every field at once. Both come from the
same pydantic models in `api/`, so a field, its type, default and description are written
once; `tests/unit/test_reference.py` fails when the committed page is stale. Pure: walks
the models and returns text. `udsink docs-reference` (udsink_cli.generate) prints it.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from udsink_operator import api, constants

REGENERATE = "udsink docs-reference > docs/reference.md"
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}
# Small models used in many places, named once instead of expanded at every use.
_LEAF_MODELS: dict[type[BaseModel], str] = {
    api.SecretKeyRef: "Secret key `{name, key}` (a Secret in the UDSink's namespace)",
}


def _without_none(annotation: Any) -> tuple[Any, bool]:
    """The annotation without `| None`, and whether None was part of it."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(members) < len(get_args(annotation))
        return (members[0] if len(members) == 1 else Union[tuple(members)]), optional  # noqa: UP007
    return annotation, False


def _strip(annotation: Any) -> Any:
    """The annotation without Annotated metadata and `| None`, at any nesting."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        stripped, optional = _without_none(annotation)
        if not optional:
            return annotation
        annotation = stripped


def type_name(annotation: Any) -> str:
    """A reader's name for a field's type: `string`, `list of string`, `one of: a, b`."""
    annotation = _strip(annotation)
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of: " + ", ".join(f"`{v}`" for v in get_args(annotation))
    if origin in (list, tuple, Sequence):
        return f"list of {type_name(get_args(annotation)[0])}"
    if origin is dict:
        return f"map of {type_name(get_args(annotation)[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _LEAF_MODELS.get(annotation, "object")
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of: " + ", ".join(f"`{m.value}`" for m in annotation)
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(annotation))
    return "any"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds directly or as list items (what the reference recurses into)."""
    annotation = _strip(annotation)
    if get_origin(annotation) in (list, tuple, Sequence):
        annotation = _strip(get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return None if annotation in _LEAF_MODELS else annotation
    return None


def default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        return ""  # an object whose own fields carry the defaults
    value = info.default
    if value is None or value is PydanticUndefined:
        return ""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return '`""`'
    if isinstance(value, dict | list) and not value:
        return ""
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def fields(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, FieldInfo]]:
    """(path, field) of every field under `model`, depth first."""
    for name, info in model.model_fields.items():
        path = f"{prefix}.{info.alias or name}"
        yield path, info
        child = _model_of(info.annotation)
        if child is not None:
            is_list = get_origin(_strip(info.annotation)) in (list, tuple, Sequence)
            yield from fields(child, f"{path}[]" if is_list else path)


def field_rows(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str, str, str]]:
    """(path, type, default, description) of every field under `model`, depth first."""
    for path, info in fields(model, prefix):
        yield (path, type_name(info.annotation), default_text(info), api.described(info) or "")


def _table(model: type[BaseModel], prefix: str) -> list[str]:
    lines = ["| field | type | default | description |", "|---|---|---|---|"]
    lines += [
        f"| `{path}` | {_cell(kind)} | {default} | {_cell(description)} |"
        for path, kind, default, description in field_rows(model, prefix)
    ]
    return lines


def render() -> str:
    """The whole reference page (markdown)."""
    lines = [
        "# UDSink field reference",
        "",
        f"<!-- Generated from operator/udsink_operator/api/: do not edit. `{REGENERATE}` -->",
        "",
        f"`apiVersion: {constants.API_VERSION}`, `kind: {constants.KIND}`, namespaced, short "
        f"name `{constants.SHORT_NAMES[0]}`. The same descriptions are served by "
        "`kubectl explain udsink.spec...`. An empty default means the field is optional and "
        "unset by default (objects: each of their own fields has its default). Where a "
        "description says *exactly one of*, set exactly one member of that object.",
        "",
        "Durations are Go-style strings (`100ms`, `1s`, `2m30s`; at most 6 digits before a "
        f"decimal point, at most {api.DURATION_MAX_LENGTH} characters); numbers, booleans and "
        'strings are taken only as written (`size: "10"` is a string, refused where an '
        "integer is expected); Secrets are only referenced (`{name, key}`), never inlined.",
        "",
        "## spec",
        "",
        *_table(api.UDSinkSpec, "spec"),
        "",
        "## status",
        "",
        "Written by the operator only (see docs/concepts.md for what each phase and condition "
        "means).",
        "",
        *_table(api.UDSinkStatus, "status"),
        "",
    ]
    return "\n".join(lines)
