"""Turning a pydantic ValidationError into issues a person reads: each names the field path
(`spec.source.kafka.topics[0]`), the value and what is accepted, with a "did you mean" for an
unknown field; and the two entry points that parse a UDSink or its spec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from sink_runtime.config.errors import validation_issues
from udsink_operator.api.udsink import (
    UDSink,
    UDSinkSpec,
)

# --- Parsing with precise errors ---


class SpecError(ValueError):
    """A UDSink failed validation. Each issue names the field path, the value and what is
    accepted; the string form is what status, events and the CLI show."""

    def __init__(self, issues: Sequence[str]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(self.issues))


def format_errors(err: ValidationError, model: type[BaseModel], root: str = "") -> SpecError:
    """Turn pydantic's errors into one SpecError with one issue per problem."""
    return SpecError(validation_issues(err, model, root))


def parse_udsink(obj: Mapping[str, Any]) -> UDSink:
    """Validate a whole UDSink object (file or API); raises SpecError naming each field."""
    try:
        return UDSink.model_validate(obj)
    except ValidationError as err:
        raise format_errors(err, UDSink) from None


def parse_spec(spec: Mapping[str, Any]) -> UDSinkSpec:
    """Validate a UDSink's spec alone; error paths start at `spec`."""
    try:
        return UDSinkSpec.model_validate(spec)
    except ValidationError as err:
        raise format_errors(err, UDSinkSpec, root="spec") from None
