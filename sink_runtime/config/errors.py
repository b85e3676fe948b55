"""Validation errors as a person reads them, for every model udsink validates.

One formatter for the UDSink (the operator, `udsink render`, `udsink run`) and the RuntimeConfig
(the data plane): each issue names the field path (`spec.source.kafka.topics[0]`), what is
wrong, and the value; an unknown field gets a "did you mean" and the fields accepted there.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError


def refused(text: str) -> PydanticCustomError:
    """A validation error whose text already names the value (no "(got ...)" is added)."""
    return PydanticCustomError(REFUSED, "{text}", {"text": text})


REFUSED = "udsink"
# The one rule between the retry policy and the sinks, as every validator states it (the API
# model, its CEL rule, the RuntimeConfig, the forwarder, `udsink run --on-failure`).
FALLBACK_NEEDED = (
    "retryStrategy.onFailure is 'fallback' but no fallback sink is set: set fallback, or "
    "choose onFailure retry or drop"
)


def shown(value: Any) -> str:
    """A value as messages show it (JSON; long ones cut)."""
    if isinstance(value, Mapping):
        return "an object with " + (", ".join(sorted(map(str, value))) or "no fields")[:100]
    text = json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def field_path(loc: Sequence[int | str], root: str = "") -> str:
    """`('spec', 'source', 'kafka', 'topics', 0)` -> `spec.source.kafka.topics[0]`."""
    out = root
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(root)"


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from _models_in(arg)


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that holds the field at `loc` (to list the fields it accepts)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        field = next((f for n, f in current.model_fields.items() if part in (n, f.alias)), None)
        if field is None:
            return None
        current = next(_models_in(field.annotation), None)
    return current


def issue(error: Any, model: type[BaseModel], root: str = "") -> str:
    """One pydantic error as a person reads it: the field path, what is wrong, the value."""
    loc: tuple[int | str, ...] = tuple(error["loc"])
    path = field_path(loc, root)
    kind = error["type"]
    if kind == "missing":
        return f"{path}: required field is missing"
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        known = [f.alias or n for n, f in parent.model_fields.items()] if parent else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        did_you_mean = f"; did you mean {close[0]!r}?" if close else ""
        accepted = f" (accepted: {', '.join(known)})" if known else ""
        return f"{path}: unknown field{did_you_mean}{accepted}"
    if kind == REFUSED:
        return f"{path}: {error['msg']}"
    if kind in _TYPE_WORDS:
        # Strict, as the CRD: "10" is not an integer, 1 is not a string.
        return f"{path}: must be {_TYPE_WORDS[kind]} (got {_json_type(error.get('input'))})"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{path}: {message} (got {shown(error.get('input'))})"


_TYPE_WORDS = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "dict_type": "an object",
    "model_type": "an object",
    "list_type": "a list",
}


def _json_type(value: Any) -> str:
    """What a value is, in the words of JSON/YAML ("10" is the string "10")."""
    kinds = (
        (bool, "the boolean"),
        (int | float, "the number"),
        (str, "the string"),
        (Mapping, "an object"),
        (list, "a list"),
    )
    for kind, words in kinds:
        if isinstance(value, kind):
            return words if words in ("an object", "a list") else f"{words} {shown(value)}"
    return "null" if value is None else shown(value)


def validation_issues(err: ValidationError, model: type[BaseModel], root: str = "") -> list[str]:
    """Every problem pydantic found, one issue each."""
    return [issue(e, model, root) for e in err.errors()]
