"""The small framework under the UDSink models: pydantic models that emit a structural schema
with a CEL twin for each rule.

Annotations here (`Matches`, `GoDuration`, quantities, DNS names) carry both a Python check, with
a message naming the value, and the OpenAPI/CEL rule the CRD gets for it; `_Model` is the base
of every spec model (camelCase, unknown fields refused, strict, immutable). Nothing here knows
what a UDSink is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticUndefined, core_schema

from sink_runtime.config import BROKER_PATTERN, TOPIC_PATTERN
from sink_runtime.config.durations import (
    DURATION_MAX_LENGTH,
    DURATION_PATTERN,
    DurationSpec,
    is_duration,
    parsed_ms,
    whole_ms,
)
from sink_runtime.config.errors import refused, shown
from udsink_operator import messages
from udsink_operator.messages import Message, cel_quoted, cel_string

CEL = "x-kubernetes-validations"
# Marks the few fields whose default is also written into the CRD (see crd.py).
CRD_DEFAULT = "x-udsink-crd-default"

Rule: TypeAlias = dict[str, str]
# Lists whose items are unique by name: the API server enforces it (`listType: map`).
LIST_MAP_BY_NAME: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["name"],
}


def cel(rule: str, message: str, expression: str | None = None) -> Rule:
    """One CEL rule as it appears in the CRD; `expression` is its messageExpression (the
    message with the offending value in it; `message` stays the fallback)."""
    found = {"rule": rule, "message": message}
    if expression is not None:
        found["messageExpression"] = expression
    return found


def _quoted(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


# --- Annotations that carry both a check and its CRD twin ---


def matches_rule(pattern: str, message: Message, value: str = "self") -> Rule:
    """The CEL twin of a pattern check, its message naming the value (a regex in an error
    message helps nobody)."""
    return cel(
        f"{value}.matches({cel_string(pattern)})",
        message.text(got="the value"),
        message.cel(got=cel_quoted(value)),
    )


@dataclass(frozen=True)
class Matches:
    """The string must match `pattern`; the error says in words what is accepted. The CRD
    gets the same check as a CEL rule with the same words (not a bare `pattern`)."""

    pattern: str
    message: Message

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        compiled = re.compile(self.pattern)
        message = self.message

        def check(value: str) -> str:
            if not compiled.fullmatch(value):
                raise refused(message.text(got=shown(value)))
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault(CEL, []).append(matches_rule(self.pattern, self.message))
        return json_schema


def exact_ms(text: str) -> float:
    """Milliseconds of a Go-style duration (`100ms`, `1s`, `2m30s`), unrounded."""
    if not is_duration(text):
        raise ValueError(messages.DURATION.text(got=shown(text)))
    return parsed_ms(text)


def duration_cel(value: str) -> str:
    """CEL: `value` (a string expression) is a duration as `is_duration` accepts it."""
    pattern = cel_string(DURATION_PATTERN)
    return f"({value}.size() <= {DURATION_MAX_LENGTH} && {value}.matches({pattern}))"


def duration_ms(text: str) -> int:
    """Whole milliseconds of a Go-style duration, rounded up (the runtime counts in ms)."""
    exact_ms(text)  # the operator's words for a malformed one
    return whole_ms(text)


def _duration_not_a_number(value: Any) -> Any:
    """YAML reads `timeout: 10` as a number: say what a duration looks like instead."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            "must be a duration with a unit such as 10s, 100ms or 2m (a bare number has "
            f"none: write {value:g}s for {value:g} seconds)"
        )
    return value


@dataclass(frozen=True)
class GoDuration:
    """A Go-style duration string within a `DurationSpec`'s bounds (the RuntimeConfig's field
    takes its bounds from the same spec). Kept as the user wrote it (GitOps diffs stay quiet);
    `duration_ms` converts it for the runtime. The CRD gets the pattern and a CEL rule with the
    same bounds."""

    spec: DurationSpec

    @property
    def minimum(self) -> str:
        return self.spec.minimum

    @property
    def maximum(self) -> str:
        return self.spec.maximum

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        low, high = exact_ms(self.minimum), exact_ms(self.maximum)
        minimum, maximum = self.minimum, self.maximum

        def check(value: str) -> str:
            if not is_duration(value):
                raise refused(messages.DURATION.text(got=shown(value)))
            # Compared unrounded, like the CRD's CEL rule: 500us is below 1ms.
            if not low <= exact_ms(value) <= high:
                raise refused(
                    messages.DURATION_BETWEEN.text(low=minimum, high=maximum, got=shown(value))
                )
            return value

        return core_schema.no_info_before_validator_function(
            _duration_not_a_number,
            core_schema.no_info_after_validator_function(check, handler(source)),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        # A bound on the length keeps the CEL rules' estimated cost low; the rules' own
        # limit (DURATION_MAX_LENGTH) is what is documented.
        json_schema["maxLength"] = 64
        between = messages.DURATION_BETWEEN
        json_schema[CEL] = [
            cel(
                duration_cel("self"),
                messages.DURATION.text(got="the value"),
                messages.DURATION.cel(got=cel_quoted("self")),
            ),
            # Only a well-formed duration is converted: no CEL conversion error is reported
            # next to the message above.
            cel(
                f"!{duration_cel('self')} || "
                f"(duration(self) >= duration('{self.minimum}') && "
                f"duration(self) <= duration('{self.maximum}'))",
                between.text(low=self.minimum, high=self.maximum, got="the value"),
                between.cel(
                    low=cel_string(self.minimum),
                    high=cel_string(self.maximum),
                    got=cel_quoted("self"),
                ),
            ),
        ]
        return json_schema


DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
URL_PATTERN = r"^https?://[^\s]+$"
# Kubernetes' resource.Quantity, as its own OpenAPI publishes it.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"

DnsSubdomain = Annotated[
    str,
    Matches(DNS_SUBDOMAIN_PATTERN, messages.DNS_SUBDOMAIN),
    Field(min_length=1, max_length=253),
]
DnsLabel = Annotated[
    str,
    Matches(DNS_LABEL_PATTERN, messages.DNS_LABEL),
    Field(min_length=1, max_length=63),
]
Topic = Annotated[str, Matches(TOPIC_PATTERN, messages.TOPIC), Field(max_length=249)]
Broker = Annotated[str, Matches(BROKER_PATTERN, messages.BROKER), Field(max_length=261)]
EnvName = Annotated[
    str,
    Matches(ENV_NAME_PATTERN, messages.ENV_NAME),
    Field(min_length=1, max_length=256),
]
LabelKey = Annotated[
    str,
    Matches(LABEL_KEY_PATTERN, messages.LABEL_KEY),
    Field(max_length=317),
]
LabelValue = Annotated[
    str, Matches(LABEL_VALUE_PATTERN, messages.LABEL_VALUE), Field(max_length=63)
]
Name253 = Annotated[str, Field(min_length=1, max_length=253)]


def _quantity(value: Any) -> str:
    # Quantities are kept as strings: the API server stores integers as strings too, so the
    # operator's desired state compares equal to what it reads back.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise refused(messages.QUANTITY.text(got=shown(value)))
    text = str(value)
    if len(text) > QUANTITY_MAX_LENGTH or not re.fullmatch(QUANTITY_PATTERN, text):
        raise refused(messages.QUANTITY.text(got=shown(value)))
    return text


QUANTITY_MAX_LENGTH = 64
_QUANTITY_TEXT = (
    f"string(self).size() <= {QUANTITY_MAX_LENGTH} && "
    f"string(self).matches({cel_string(QUANTITY_PATTERN)})"
)

Quantity = Annotated[
    str,
    BeforeValidator(_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "maxLength": QUANTITY_MAX_LENGTH,
            CEL: [
                cel(
                    _QUANTITY_TEXT,
                    messages.QUANTITY.text(got="the value"),
                    messages.QUANTITY.cel(
                        got=f"type(self) == string ? {cel_quoted('self')} : string(self)"
                    ),
                )
            ],
        }
    ),
]

# --- Base models ---


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def field_bounds(info: FieldInfo) -> tuple[str, str] | None:
    """The lower and upper bound a field enforces, as text; None unless it has both."""
    low: str | None = None
    high: str | None = None
    for marker in info.metadata:
        if isinstance(marker, GoDuration):
            return marker.minimum, marker.maximum
        if getattr(marker, "ge", None) is not None:
            low = _number(marker.ge)
        if getattr(marker, "le", None) is not None:
            high = _number(marker.le)
    return (low, high) if low is not None and high is not None else None


@dataclass(frozen=True)
class ShownDefault:
    """How the CRD and the docs state a field's default when the value itself does not say
    it plainly: a computed one (`<namespace>.<name>`), one the operator fills in, or a size
    in bytes a person reads as `16 MiB`. Metadata of the field's type (`Annotated`)."""

    text: str


def mib(size: int) -> str:
    """A byte count as a person reads it: `16 MiB`."""
    return f"{size / 2**20:g} MiB"


def plain_default(info: FieldInfo) -> str | None:
    """A field's default as a person writes it (`500`, `1s`, `true`, or its `ShownDefault`);
    None when there is no default or it is not a plain value (a model, a list)."""
    for marker in info.metadata:
        if isinstance(marker, ShownDefault):
            return marker.text
    value = info.default
    if info.default_factory is not None or value is PydanticUndefined or value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(value)
    return value if isinstance(value, str) and value else None


def described(info: FieldInfo) -> str | None:
    """A field's description with its bounds and its default, as the CRD and the docs show
    them. Both come from the field's own metadata (what it enforces, its default or
    `ShownDefault`), never from its words: a description states neither (a unit test holds
    every field to that)."""
    text = info.description
    if text is None:
        return None
    text = text.rstrip()
    if not text.endswith("."):
        text += "."
    bounds = field_bounds(info)
    if bounds is not None:
        text += f" Range: {bounds[0]}..{bounds[1]}."
    default = plain_default(info)
    if default is not None:
        text += f" Default: {default}."
    return text


class _Model(BaseModel):
    """Base of every spec model: camelCase aliases, unknown fields refused, immutable.
    `cel_rules` are the CEL twins of the model's cross-field validators."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        strict=True,
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = ()

    @classmethod
    def crd_rules(cls) -> list[Rule]:
        return list(cls.cel_rules)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler.resolve_ref_schema(handler(schema))
        properties = json_schema.get("properties", {})
        for name, info in cls.model_fields.items():
            shown_as = properties.get(info.alias or name)
            if shown_as is not None and info.description:
                shown_as["description"] = described(info)
        rules = cls.crd_rules()
        if rules:
            json_schema[CEL] = rules
        return json_schema

    @classmethod
    def alias_of(cls, field: str) -> str:
        return cls.model_fields[field].alias or field

    def set_members(self, members: Sequence[str]) -> list[str]:
        """The aliases of `members` (field names) that are set."""
        return [self.alias_of(m) for m in members if getattr(self, m) is not None]


class _ExactlyOne(_Model):
    """A union in Numaflow's shape: exactly one of the `one_of` fields is set."""

    one_of: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def crd_rules(cls) -> list[Rule]:
        aliases = [cls.alias_of(m) for m in cls.one_of]
        present = ", ".join(f"has(self.{a})" for a in aliases)
        # ", a, b" for the members set, without the first ", " (no list: cheap to estimate)
        chosen = "(" + " + ".join(f"(has(self.{a}) ? ', {a}' : '')" for a in aliases) + ")"
        names = ", ".join(aliases)
        rule = cel(
            f"[{present}].filter(x, x).size() == 1",
            messages.EXACTLY_ONE.text(names=names, got="another number"),
            messages.EXACTLY_ONE.cel(
                names=cel_string(names),
                got=f"{chosen} == '' ? 'none' : {chosen}.substring(2)",
            ),
        )
        return [rule, *cls.cel_rules]

    def member(self) -> str:
        """The alias of the one member set (validation made sure there is exactly one)."""
        return self.set_members(self.one_of)[0]

    @model_validator(mode="after")
    def _exactly_one(self) -> _ExactlyOne:
        chosen = self.set_members(self.one_of)
        if len(chosen) != 1:
            names = ", ".join(self.alias_of(m) for m in self.one_of)
            got = ", ".join(chosen) if chosen else "none"
            raise refused(messages.EXACTLY_ONE.text(names=names, got=got))
        return self
