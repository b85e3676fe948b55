"""Kubernetes' own schemas, applied without a cluster.

- `check_manifest`: a built child against the OpenAPI schema of a real Kubernetes release, from
  the maintained `kubernetes-validate` package (strict: unknown fields are errors).
- `crd_violations`: a UDSink against our generated CRD as the API server would judge it: the
  structural OpenAPI schema (with strict field validation, kubectl's default) and every CEL
  rule and its messageExpression, evaluated by `cel-python` with the few Kubernetes CEL library
  functions the rules use (`substring`); `crd_field_violations` judges one field alone. The
  real API server's verdicts and words are tested in the e2e tier (tests/e2e/test_validation.py).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
from udsink_operator import crd

# The newest release the installed package ships a schema for; native sidecars need >= 1.29.
LATEST = kubernetes_validate.latest_version()


def check_manifest(manifest: Mapping[str, Any], version: str = LATEST) -> None:
    """Raise AssertionError naming the field when Kubernetes `version` would refuse it."""
    try:
        kubernetes_validate.validate(dict(manifest), version, strict=True)
    except kubernetes_validate.ValidationError as err:
        where = ".".join(str(p) for p in err.path)
        name = manifest.get("metadata", {}).get("name")
        raise AssertionError(
            f"{manifest.get('kind')} {name} invalid for Kubernetes {version} at {where}: "
            f"{err.message}"
        ) from None


@functools.cache
def _schema() -> dict[str, Any]:
    return crd.openapi_schema()


# Kubernetes' CEL libraries, as far as the CRD's rules use them.
_KUBERNETES_FUNCTIONS = {
    "substring": lambda text, start: celpy.celtypes.StringType(str(text)[int(start) :]),
}


@functools.cache
def _program(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule), functions=_KUBERNETES_FUNCTIONS)


# cel-python raises the recursion limit on its first compile; do it at import, not inside a
# hypothesis example (which warns about the change).
_program("true")


def _cel(schema: Mapping[str, Any], value: Any, path: str, out: list[str]) -> None:
    if value is None:
        return
    for rule in schema.get("x-kubernetes-validations", []):
        try:
            result = _program(rule["rule"]).evaluate({"self": celpy.json_to_cel(value)})
        except celpy.CELEvalError:  # the API server refuses a value a rule cannot evaluate
            result = False
        if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            out.append(f"{path or '.'}: {_message(rule, value)}")
    properties = schema.get("properties", {})
    values = schema.get("additionalProperties")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in properties:
                _cel(properties[key], item, f"{path}.{key}", out)
            elif isinstance(values, Mapping):
                _cel(values, item, f"{path}.{key}", out)
            elif path != ".metadata" and not schema.get("x-kubernetes-preserve-unknown-fields"):
                out.append(f"{path}.{key}: unknown field")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _cel(schema["items"], item, f"{path}[{index}]", out)


def _message(rule: Mapping[str, str], value: Any) -> str:
    """The messageExpression's text, or the static message when it has none or it fails (as
    the API server falls back)."""
    if "messageExpression" not in rule:
        return rule["message"]
    try:
        text = _program(rule["messageExpression"]).evaluate({"self": celpy.json_to_cel(value)})
    except celpy.CELEvalError:
        return rule["message"]
    return str(text)


def crd_violations(udsink: Mapping[str, Any]) -> list[str]:
    """Why the API server would refuse `udsink` (empty when it would accept it)."""
    schema = _schema()
    out = [
        f".{'.'.join(str(p) for p in err.absolute_path)}: {err.message}"
        for err in jsonschema.Draft7Validator(schema).iter_errors(dict(udsink))
    ]
    _cel(schema, dict(udsink), "", out)
    return out


def crd_field_violations(path: Sequence[str], value: Any) -> list[str]:
    """Why the API server would refuse `value` at `path` (aliases below the UDSink, e.g.
    `spec`, `batch`, `timeout`), judged by that field's own schema and rules only."""
    schema = _schema()
    for key in path:
        schema = schema["properties"][key]
    out = [err.message for err in jsonschema.Draft7Validator(schema).iter_errors(value)]
    _cel(schema, value, "." + ".".join(path), out)
    return out
