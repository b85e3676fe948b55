"""The UDSink resource as pydantic models: the single source of truth of the API.

The CRD schema (`crd.py`), the operator's validation errors and the reference docs are all
generated from these classes, so a field, its description, its bounds and its cross-field rules
are written once. Rules are enforced twice: here, where the message can be precise, and as
OpenAPI/CEL in the CRD (each model's `cel_rules`), so the API server rejects bad input at
`kubectl apply`. Field names follow Numaflow where the idea is the same.

Nothing here does I/O; checks that need the cluster (does a referenced Secret key exist?) live
in the handlers.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, TypeAlias, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from sink_runtime.config import BROKER_PATTERN, TOPIC_PATTERN
from sink_runtime.config import constants as runtime_constants
from udsink_operator import constants, messages
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


def refused(text: str) -> PydanticCustomError:
    """A validation error whose text already names the value (no "(got ...)" is added)."""
    return PydanticCustomError(REFUSED, "{text}", {"text": text})


REFUSED = "udsink"


def _quoted(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


# --- Annotations that carry both a check and its CRD twin ---


def shown(value: Any) -> str:
    """A value as messages show it (JSON; long ones cut)."""
    if isinstance(value, Mapping):
        return "an object with " + (", ".join(sorted(map(str, value))) or "no fields")[:100]
    text = json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


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


# Go's time.ParseDuration syntax, always with a unit ("0s", not "0": CEL engines differ there),
# at most 6 digits before a decimal point and 20 characters: then no duration overflows Go's
# int64 nanoseconds, and the CRD's CEL `duration()` never fails on a value that passed this.
DURATION_PATTERN = r"^((([0-9]{1,6}(\.[0-9]*)?)|(\.[0-9]+))(ns|us|ms|s|m|h))+$"
DURATION_MAX_LENGTH = 20
_DURATION_PART = re.compile(r"((?:[0-9]+(?:\.[0-9]*)?)|(?:\.[0-9]+))(ns|us|ms|s|m|h)")
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def is_duration(text: str) -> bool:
    return len(text) <= DURATION_MAX_LENGTH and re.fullmatch(DURATION_PATTERN, text) is not None


def exact_ms(text: str) -> float:
    """Milliseconds of a Go-style duration (`100ms`, `1s`, `2m30s`), unrounded."""
    if not is_duration(text):
        raise ValueError(messages.DURATION.text(got=shown(text)))
    return round(sum(float(n) * _UNIT_MS[u] for n, u in _DURATION_PART.findall(text)), 6)


def duration_cel(value: str) -> str:
    """CEL: `value` (a string expression) is a duration as `is_duration` accepts it."""
    pattern = cel_string(DURATION_PATTERN)
    return f"({value}.size() <= {DURATION_MAX_LENGTH} && {value}.matches({pattern}))"


def duration_ms(text: str) -> int:
    """Whole milliseconds of a Go-style duration, rounded up (the runtime counts in ms)."""
    return math.ceil(exact_ms(text))


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
    """A Go-style duration string between `minimum` and `maximum`. Kept as the user wrote it
    (GitOps diffs stay quiet); `duration_ms` converts it for the runtime. The CRD gets the
    pattern and a CEL rule with the same bounds."""

    minimum: str
    maximum: str

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

    @model_validator(mode="after")
    def _exactly_one(self) -> _ExactlyOne:
        chosen = self.set_members(self.one_of)
        if len(chosen) != 1:
            names = ", ".join(self.alias_of(m) for m in self.one_of)
            got = ", ".join(chosen) if chosen else "none"
            raise refused(messages.EXACTLY_ONE.text(names=names, got=got))
        return self


# --- Secrets: only ever referenced ---


class SecretKeyRef(_Model):
    """A key of a Secret in the UDSink's namespace. Its value is mounted as a file into the
    runtime container only; it never appears in the UDSink, the ConfigMap or a log."""

    name: DnsSubdomain = Field(description="Name of the Secret, in the UDSink's namespace.")
    key: Annotated[str, Matches(SECRET_KEY_PATTERN, messages.SECRET_KEY), Field(max_length=253)] = (
        Field(description="Key inside the Secret whose value is used.")
    )


# --- Kafka connection ---


class Tls(_Model):
    """TLS to the brokers. An empty object enables TLS with the system's CA certificates."""

    cel_rules = (
        cel(
            "has(self.certSecret) == has(self.keySecret)",
            "certSecret and keySecret must be set together (client certificate auth)",
        ),
    )

    ca_cert_secret: SecretKeyRef | None = Field(
        default=None, description="CA certificate (PEM) that signs the brokers' certificates."
    )
    cert_secret: SecretKeyRef | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS; needs keySecret."
    )
    key_secret: SecretKeyRef | None = Field(
        default=None, description="Client private key (PEM) for mutual TLS; needs certSecret."
    )
    insecure_skip_verify: bool = Field(
        default=False,
        description="Do not verify the brokers' certificates (testing only). Default false.",
    )

    @model_validator(mode="after")
    def _cert_and_key(self) -> Tls:
        if (self.cert_secret is None) != (self.key_secret is None):
            raise ValueError(
                "certSecret and keySecret must be set together (client certificate auth)"
            )
        return self


class SaslUserPassword(_Model):
    """A username and a password, each read from a Secret key."""

    user_secret: SecretKeyRef = Field(description="Secret key holding the SASL username.")
    password_secret: SecretKeyRef = Field(description="Secret key holding the SASL password.")


class SaslOAuth(_Model):
    """OAUTHBEARER with the OIDC client-credentials flow."""

    client_id: SecretKeyRef = Field(
        alias="clientID", description="Secret key holding the OIDC client id."
    )
    client_secret: SecretKeyRef = Field(description="Secret key holding the OIDC client secret.")
    token_endpoint: Annotated[str, Matches(URL_PATTERN, messages.URL), Field(max_length=2048)] = (
        Field(description="URL of the OIDC token endpoint.")
    )
    scope: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, description="Scope requested with the token (optional)."
    )


SaslMechanism: TypeAlias = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
SASL_MEMBERS: dict[str, str] = {
    "PLAIN": "plain",
    "SCRAM-SHA-256": "scramsha256",
    "SCRAM-SHA-512": "scramsha512",
    "OAUTHBEARER": "oauth",
}


class Sasl(_Model):
    """SASL authentication: set `mechanism` and the one member that matches it."""

    cel_rules = (
        *(
            cel(f"self.mechanism != '{mech}' || has(self.{member})", f"{mech} needs {member}")
            for mech, member in SASL_MEMBERS.items()
        ),
        cel(
            "["
            + ", ".join(f"has(self.{m})" for m in SASL_MEMBERS.values())
            + "].filter(x, x).size() == 1",
            "set only the member that matches mechanism",
        ),
    )

    mechanism: SaslMechanism = Field(
        description="SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER."
    )
    plain: SaslUserPassword | None = Field(default=None, description="Credentials for PLAIN.")
    scramsha256: SaslUserPassword | None = Field(
        default=None, description="Credentials for SCRAM-SHA-256."
    )
    scramsha512: SaslUserPassword | None = Field(
        default=None, description="Credentials for SCRAM-SHA-512."
    )
    oauth: SaslOAuth | None = Field(default=None, description="Client credentials for OAUTHBEARER.")

    @model_validator(mode="after")
    def _member_matches(self) -> Sasl:
        wanted = SASL_MEMBERS[self.mechanism]
        chosen = self.set_members(list(SASL_MEMBERS.values()))
        if chosen != [wanted]:
            got = ", ".join(chosen) or "none"
            raise ValueError(f"mechanism {self.mechanism} needs {wanted} and only it (got {got})")
        return self

    def credentials(self) -> SaslUserPassword | SaslOAuth:
        member = getattr(self, SASL_MEMBERS[self.mechanism])
        assert isinstance(member, SaslUserPassword | SaslOAuth)  # ensured by _member_matches
        return member


def reserved_kafka_keys() -> list[str]:
    """Human-readable list of the librdkafka keys udsink owns."""
    exact = sorted(runtime_constants.KAFKA_OWNED_CONFIG_KEYS)
    return [*exact, *(f"{p}*" for p in runtime_constants.KAFKA_OWNED_CONFIG_PREFIXES)]


def owned_kafka_key_hint(key: str) -> str | None:
    """What to set instead of `key`, or None when `key` is the user's to set."""
    if key in runtime_constants.KAFKA_OWNED_CONFIG_KEYS:
        return constants.KAFKA_KEY_HINTS.get(key, "udsink sets it")
    for prefix in runtime_constants.KAFKA_OWNED_CONFIG_PREFIXES:
        if key.startswith(prefix):
            return constants.KAFKA_KEY_HINTS.get(prefix, "udsink sets it")
    return None


def _owned_key_message(key: str) -> str:
    """The words of both homes for an owned key: exact keys by name, the rest by prefix."""
    owned = ", ".join(reserved_kafka_keys())
    if key in runtime_constants.KAFKA_OWNED_CONFIG_KEYS:
        hint = constants.KAFKA_KEY_HINTS.get(key, "udsink sets it")
        return messages.KAFKA_OWNED_KEY.text(key=repr(key), hint=hint, owned=owned)
    prefix = next(p for p in runtime_constants.KAFKA_OWNED_CONFIG_PREFIXES if key.startswith(p))
    hint = constants.KAFKA_KEY_HINTS.get(prefix, "udsink sets it")
    return messages.KAFKA_OWNED_PREFIX.text(prefix=repr(prefix), hint=hint, owned=owned)


def _check_kafka_config(config: dict[str, str]) -> dict[str, str]:
    for key in sorted(config):
        if key in runtime_constants.KAFKA_OWNED_CONFIG_KEYS:
            raise refused(_owned_key_message(key))
        if owned_kafka_key_hint(key) is not None:
            raise refused(f"{_owned_key_message(key)} (got {key!r})")
    return config


# One rule per owned key and per owned prefix, so the API server's message names it (a key
# picked out of the map by CEL would be too costly for the CRD's budget).
KAFKA_CONFIG_RULES = [
    *(
        cel(f"!({cel_string(key)} in self)", _owned_key_message(key))
        for key in sorted(runtime_constants.KAFKA_OWNED_CONFIG_KEYS)
    ),
    *(
        cel(f"!self.exists(k, k.startsWith({cel_string(p)}))", _owned_key_message(p))
        for p in runtime_constants.KAFKA_OWNED_CONFIG_PREFIXES
    ),
]

KafkaConfig = Annotated[
    dict[str, str],
    AfterValidator(_check_kafka_config),
    Field(json_schema_extra={"maxProperties": 200, CEL: KAFKA_CONFIG_RULES}),
]


class KafkaConnection(_Model):
    """Brokers and how to authenticate to them."""

    brokers: Annotated[list[Broker], Field(min_length=1, max_length=100)] = Field(
        description="Bootstrap brokers as host:port."
    )
    tls: Tls | None = Field(default=None, description="TLS to the brokers; absent = plaintext.")
    sasl: Sasl | None = Field(default=None, description="SASL authentication; absent = none.")
    config: KafkaConfig = Field(
        default_factory=dict,
        description=(
            "librdkafka settings (a map of strings; values may contain ':'). Keys that udsink "
            "owns are refused: " + ", ".join(reserved_kafka_keys()) + "."
        ),
    )

    def secret_refs(self) -> list[tuple[str, SecretKeyRef]]:
        """Every Secret key this connection reads, with its field path below the connection."""
        refs: list[tuple[str, SecretKeyRef]] = []
        if self.tls is not None:
            for field in ("ca_cert_secret", "cert_secret", "key_secret"):
                ref = getattr(self.tls, field)
                if ref is not None:
                    refs.append((f"tls.{Tls.alias_of(field)}", ref))
        if self.sasl is not None:
            member = SASL_MEMBERS[self.sasl.mechanism]
            creds = self.sasl.credentials()
            for field in type(creds).model_fields:
                ref = getattr(creds, field)
                if isinstance(ref, SecretKeyRef):
                    refs.append((f"sasl.{member}.{type(creds).alias_of(field)}", ref))
        return refs


# --- Sources ---


class KafkaSource(KafkaConnection):
    """Consume Kafka topics with a consumer group; offsets are committed once per batch."""

    topics: Annotated[list[Topic], Field(min_length=1, max_length=100)] = Field(
        description="Topics to consume."
    )
    consumer_group: Annotated[str, Field(min_length=1, max_length=255)] | None = Field(
        default=None, description="Consumer group id. Default <namespace>.<name>."
    )
    start_offset: Literal["earliest", "latest"] = Field(
        default="earliest",
        description="Where to start when the group has no committed offset yet. Default earliest.",
    )
    keys_from_headers: bool = Field(
        default=True,
        description=(
            "Rebuild multi-part keys from __key_len/__key_N (or the single keys header) when "
            "present and well formed; otherwise the record key is the single key. Default true."
        ),
    )
    keys_header: Annotated[str, Field(min_length=1, max_length=255)] = Field(
        default=runtime_constants.DEFAULT_KEYS_HEADER,
        description="Header holding a JSON array of keys (the `single` layout). Default __keys.",
    )


class GeneratorSource(_Model):
    """Generate messages inside the pod (demos, load tests, local runs): no Kafka needed."""

    rate: Annotated[int, Field(ge=0, le=10_000_000)] = Field(
        default=100, description="Messages per second; 0 = as fast as possible. Default 100."
    )
    count: Annotated[int, Field(ge=0, le=2**62)] = Field(
        default=0, description="Stop after this many messages; 0 = never. Default 0."
    )
    value_size: Annotated[int, Field(ge=0, le=runtime_constants.DEFAULT_MAX_MESSAGE_BYTES)] = Field(
        default=128, description="Size of each value in bytes. Default 128."
    )
    key_count: Annotated[int, Field(ge=0, le=1_000_000)] = Field(
        default=8, description="Number of distinct keys cycled through. Default 8."
    )
    partitions: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=1, description="Number of simulated partitions. Default 1."
    )


class Source(_ExactlyOne):
    """Where messages come from: exactly one of kafka, generator."""

    one_of = ("kafka", "generator")

    kafka: KafkaSource | None = Field(default=None, description="Consume from Kafka.")
    generator: GeneratorSource | None = Field(
        default=None, description="Generate messages in the pod."
    )


# --- Containers ---

PullPolicy: TypeAlias = Literal["Always", "IfNotPresent", "Never"]


class KeyRef(_Model):
    """A key of a ConfigMap or Secret."""

    name: DnsSubdomain = Field(description="Name of the object.")
    key: Name253 = Field(description="Key inside it.")
    optional: bool | None = Field(default=None, description="Whether it may be missing.")


# The pod fields the API server lets an environment variable read (the downward API).
FIELD_PATH_PATTERN = (
    r"^(metadata\.(name|namespace|uid)|spec\.(nodeName|serviceAccountName)"
    r"|status\.(hostIP|hostIPs|podIP|podIPs)"
    r"|metadata\.(labels|annotations)\['[^']{1,317}'\])$"
)


class FieldRef(_Model):
    """A field of the pod, e.g. metadata.name."""

    field_path: Annotated[
        str, Matches(FIELD_PATH_PATTERN, messages.FIELD_PATH), Field(max_length=256)
    ] = Field(description="Pod field, e.g. metadata.name or status.podIP.")
    api_version: Literal["v1"] | None = Field(
        default=None, description="Schema version of fieldPath: v1 (the default)."
    )


class ResourceFieldRef(_Model):
    """A resource request or limit of a container."""

    resource: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="Resource, e.g. limits.memory."
    )
    container_name: Annotated[str, Field(max_length=63)] | None = Field(
        default=None, description="Container whose resource is read. Default this container."
    )
    divisor: Quantity | None = Field(default=None, description="Unit of the exposed value.")


class EnvVarSource(_ExactlyOne):
    """Where an environment variable's value comes from: exactly one member."""

    one_of = ("secret_key_ref", "config_map_key_ref", "field_ref", "resource_field_ref")

    secret_key_ref: KeyRef | None = Field(default=None, description="A key of a Secret.")
    config_map_key_ref: KeyRef | None = Field(default=None, description="A key of a ConfigMap.")
    field_ref: FieldRef | None = Field(default=None, description="A field of the pod.")
    resource_field_ref: ResourceFieldRef | None = Field(
        default=None, description="A resource of a container."
    )


def _not_reserved_env(name: str) -> str:
    if name in constants.RESERVED_ENV_NAMES:
        raise refused(messages.RESERVED_ENV.text(name=name))
    return name


class EnvVar(_Model):
    """An environment variable: a literal value or a reference (never a secret value)."""

    cel_rules = (
        cel("!(has(self.value) && has(self.valueFrom))", "set value or valueFrom, not both"),
        cel(
            f"!(self.name in [{_quoted(sorted(constants.RESERVED_ENV_NAMES))}])",
            messages.RESERVED_ENV.text(name=", ".join(sorted(constants.RESERVED_ENV_NAMES))),
            messages.RESERVED_ENV.cel(name="self.name"),
        ),
    )

    name: Annotated[EnvName, AfterValidator(_not_reserved_env)] = Field(
        description=f"Variable name; {runtime_constants.CONTAINER_TYPE_ENV} is reserved."
    )
    value: Annotated[str, Field(max_length=32768)] | None = Field(
        default=None, description="Literal value."
    )
    value_from: EnvVarSource | None = Field(
        default=None, description="Value read from a reference."
    )

    @model_validator(mode="after")
    def _value_or_source(self) -> EnvVar:
        if self.value is not None and self.value_from is not None:
            raise ValueError("set value or valueFrom, not both")
        return self


class NameRef(_Model):
    """A ConfigMap or Secret by name."""

    name: DnsSubdomain = Field(description="Name of the object.")
    optional: bool | None = Field(default=None, description="Whether it may be missing.")


class EnvFromSource(_ExactlyOne):
    """All keys of a ConfigMap or a Secret as environment variables."""

    one_of = ("config_map_ref", "secret_ref")

    config_map_ref: NameRef | None = Field(default=None, description="The ConfigMap.")
    secret_ref: NameRef | None = Field(default=None, description="The Secret.")
    prefix: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="Prefix added to every variable name."
    )


_QUANTITY_SUFFIXES = {
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{s: Decimal(10) ** e for s, e in (("n", -9), ("u", -6), ("m", -3), ("", 0), ("k", 3))},
    **{s: Decimal(10) ** (3 * (i + 2)) for i, s in enumerate("MGTPE")},
}


def quantity_value(text: str) -> Decimal:
    """The number a Kubernetes quantity stands for (`500m` -> 0.5, `1Ki` -> 1024)."""
    number = re.match(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)", text)
    if number is None:
        raise ValueError(messages.QUANTITY.text(got=shown(text)))
    suffix = text[number.end() :]
    if suffix[:1] in ("e", "E"):
        return Decimal(number.group(0)) * Decimal(10) ** int(suffix[1:])
    return Decimal(number.group(0)) * _QUANTITY_SUFFIXES[suffix]


class Resources(_Model):
    """Compute resources, as in a Kubernetes container."""

    requests: Annotated[dict[Name253, Quantity], Field(max_length=32)] | None = Field(
        default=None, description="Minimum resources, e.g. {cpu: 100m, memory: 128Mi}."
    )
    limits: Annotated[dict[Name253, Quantity], Field(max_length=32)] | None = Field(
        default=None, description="Maximum resources, e.g. {memory: 256Mi}."
    )

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        limits = self.limits or {}
        for name, request in sorted((self.requests or {}).items()):
            if name in limits and quantity_value(request) > quantity_value(limits[name]):
                raise refused(
                    messages.REQUESTS_ABOVE_LIMITS.text(
                        resource=name, request=request, limit=limits[name]
                    )
                )
        return self


def _unique(names: Sequence[str], what: str) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what} must be unique (repeated: {', '.join(dupes)})")


class Container(_Model):
    """A container of the user's: image, command, environment and resources."""

    image: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        description="Container image, e.g. ghcr.io/acme/pg-sink:1.4."
    )
    image_pull_policy: PullPolicy | None = Field(
        default=None, description="Always, IfNotPresent or Never. Default: Kubernetes' default."
    )
    command: Annotated[list[str], Field(max_length=64)] | None = Field(
        default=None, description="Entrypoint. Default: the image's."
    )
    args: Annotated[list[str], Field(max_length=256)] | None = Field(
        default=None, description="Arguments. Default: the image's."
    )
    env: Annotated[list[EnvVar], Field(max_length=128)] | None = Field(
        default=None,
        description="Environment variables (names unique).",
        json_schema_extra=LIST_MAP_BY_NAME,
    )
    env_from: Annotated[list[EnvFromSource], Field(max_length=32)] | None = Field(
        default=None, description="Environment variables from ConfigMaps or Secrets."
    )
    resources: Resources | None = Field(
        default=None, description="CPU and memory requests and limits."
    )

    @model_validator(mode="after")
    def _unique_env(self) -> Container:
        _unique([e.name for e in self.env or []], "env names")
        return self


_RESERVED_CONTAINERS = ", ".join(sorted(runtime_constants.RESERVED_CONTAINER_NAMES))


def _not_reserved_container(name: str) -> str:
    if name in runtime_constants.RESERVED_CONTAINER_NAMES:
        raise refused(
            messages.RESERVED_CONTAINER.text(name=repr(name), reserved=_RESERVED_CONTAINERS)
        )
    return name


class NamedContainer(Container):
    """An extra sidecar next to the sink, for example a database proxy."""

    cel_rules = (
        cel(
            f"!(self.name in [{_quoted(sorted(runtime_constants.RESERVED_CONTAINER_NAMES))}])",
            messages.RESERVED_CONTAINER.text(name="this", reserved=_RESERVED_CONTAINERS),
            messages.RESERVED_CONTAINER.cel(
                name='"\'" + self.name + "\'"', reserved=cel_string(_RESERVED_CONTAINERS)
            ),
        ),
    )

    name: Annotated[DnsLabel, AfterValidator(_not_reserved_container)] = Field(
        description="Container name; runtime, udsink, fb-udsink and ons-udsink are reserved."
    )


# --- Sinks ---


class UdSink(_Model):
    """A user-defined sink: the user's container serving the Numaflow sink gRPC contract."""

    container: Container = Field(description="The sink's container (runs as a native sidecar).")
    startup_timeout: Annotated[str, GoDuration("1s", "1h")] = Field(
        default="2m",
        description="How long to wait for the sink's server to become ready. Default 2m.",
    )
    max_message_bytes: Annotated[int, Field(ge=1024, le=2**31 - 1)] = Field(
        default=runtime_constants.DEFAULT_MAX_MESSAGE_BYTES,
        description="Largest gRPC message exchanged with the sink. Default 64 MiB.",
    )
    write_timeout: Annotated[str, GoDuration("1s", "1h")] = Field(
        default="30s",
        description=(
            "How long the sink may take to answer one batch (1s..1h); then the stream is reset "
            "and the batch counts as FAILURE (retried with backoff). A warning is logged after "
            "a third of it. Default 30s."
        ),
    )


KEY_HEADER_RESERVED_PREFIX = "__key"


_RESERVED_HEADER = messages.RESERVED_HEADER.text(prefix=repr(KEY_HEADER_RESERVED_PREFIX))


def _check_static_headers(headers: dict[str, str]) -> dict[str, str]:
    for key in sorted(headers):
        if key.startswith(KEY_HEADER_RESERVED_PREFIX):
            raise refused(f"{_RESERVED_HEADER} (got {key!r})")
    return headers


StaticHeaders = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=255)], str],
    AfterValidator(_check_static_headers),
    Field(
        json_schema_extra={
            "maxProperties": 64,
            CEL: [
                cel(
                    f"self.all(k, !k.startsWith('{KEY_HEADER_RESERVED_PREFIX}'))",
                    _RESERVED_HEADER,
                )
            ],
        }
    ),
]


class KeyHeaders(_Model):
    """Which headers a Kafka record gets: keys, the message's own headers, static ones."""

    keys: Literal["split", "single", "none"] = Field(
        default="split",
        description=(
            "How keys travel in headers. split: __key_len = N and __key_0..__key_{N-1} "
            "(Numaflow-compatible); single: one header (keysHeader) holding a JSON array "
            "(lossless even if keys contain the separator); none: no key headers. Key headers "
            "take precedence over same-named message headers. Default split."
        ),
    )
    keys_header: Annotated[str, Field(min_length=1, max_length=255)] = Field(
        default=runtime_constants.DEFAULT_KEYS_HEADER,
        description="Header name for the `single` layout. Default __keys.",
    )
    propagate: bool = Field(
        default=True, description="Copy the message's own headers. Default true."
    )
    static: StaticHeaders = Field(
        default_factory=dict, description="Headers added to every record."
    )


class KafkaSink(KafkaConnection):
    """Produce to a Kafka topic, keeping keys and headers."""

    topic: Topic = Field(description="Topic to produce to.")
    set_key: bool = Field(
        default=True,
        description="Record key = the message's keys joined by keySeparator. Default true.",
    )
    key_separator: Annotated[str, Field(max_length=16)] = Field(
        default=runtime_constants.DEFAULT_KEY_SEPARATOR,
        description="Separator that joins keys into the record key. Default ':'.",
    )
    headers: KeyHeaders = Field(
        default_factory=KeyHeaders, description="Key headers, propagated and static headers."
    )


class LogSink(_Model):
    """Log each message (a debugging sink)."""

    value_preview_bytes: Annotated[int, Field(ge=0, le=65536)] = Field(
        default=64, description="How many bytes of each value to log. Default 64."
    )


class BlackholeSink(_Model):
    """Discard every message (benchmarks, tests)."""


SINK_MEMBERS = ("udsink", "kafka", "log", "blackhole")
PRIMARY_ONLY = ("fallback", "onSuccess", "serve", "retryStrategy")


class AbstractSink(_ExactlyOne):
    """A sink: exactly one of udsink, kafka, log, blackhole."""

    one_of = SINK_MEMBERS

    udsink: UdSink | None = Field(default=None, description="A user-defined sink container (gRPC).")
    kafka: KafkaSink | None = Field(default=None, description="Produce to Kafka.")
    log: LogSink | None = Field(default=None, description="Log messages.")
    blackhole: BlackholeSink | None = Field(default=None, description="Discard messages.")


class SecondarySink(AbstractSink):
    """A fallback or on-success sink: exactly one of udsink, kafka, log, blackhole, without
    its own fallback, onSuccess, serve or retryStrategy (only spec.sink has those)."""

    @model_validator(mode="before")
    @classmethod
    def _no_nesting(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            nested = [k for k in PRIMARY_ONLY if k in data]
            if nested:
                raise ValueError(
                    f"a fallback or onSuccess sink cannot have its own {', '.join(nested)}: "
                    "only spec.sink has fallback, onSuccess, serve and retryStrategy"
                )
        return data


class ServeSink(_ExactlyOne):
    """Where SERVE results go: exactly one of kafka, log."""

    one_of = ("kafka", "log")

    kafka: KafkaSink | None = Field(default=None, description="Produce served payloads to Kafka.")
    log: LogSink | None = Field(default=None, description="Log served payloads.")


# A field's value or its default, in CEL (the CRD writes no defaults but spec.replicas).
_CAP = "(has(self.cap) ? self.cap : '30s')"
_INTERVAL = "(has(self.interval) ? self.interval : '100ms')"


class Backoff(_Model):
    """Exponential backoff between retries of the primary sink."""

    cel_rules = (
        cel(
            # Malformed durations are reported by their own fields' rules, not converted here.
            f"!{duration_cel(_CAP)} || !{duration_cel(_INTERVAL)} || "
            f"duration({_CAP}) >= duration({_INTERVAL})",
            messages.CAP_BELOW_INTERVAL.text(cap="cap", interval="interval"),
            messages.CAP_BELOW_INTERVAL.cel(cap=_CAP, interval=_INTERVAL),
        ),
    )

    interval: Annotated[str, GoDuration("1ms", "1h")] = Field(
        default="100ms", description="Delay before the first retry (1ms..1h). Default 100ms."
    )
    factor: Annotated[float, Field(ge=1.0, le=10.0)] = Field(
        default=2.0,
        description="Multiplier applied to the delay after each retry (1..10). Default 2.",
    )
    cap: Annotated[str, GoDuration("1ms", "24h")] = Field(
        default="30s", description="Largest delay (1ms..24h). Default 30s."
    )
    steps: Annotated[int, Field(ge=0, le=1_000_000)] = Field(
        default=10,
        description="Retries after the first attempt; then onFailure applies. Default 10.",
    )
    jitter: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        default=0.1, description="Random fraction added to each delay (0..1). Default 0.1."
    )

    @model_validator(mode="after")
    def _cap_covers_interval(self) -> Backoff:
        if exact_ms(self.cap) < exact_ms(self.interval):
            raise refused(messages.CAP_BELOW_INTERVAL.text(cap=self.cap, interval=self.interval))
        return self


class SecondaryRetry(_Model):
    """How long writes to the fallback, on-success and serve sinks are retried."""

    steps: Annotated[int, Field(ge=0, le=1_000_000)] = Field(
        default=20,
        description=(
            "Retries of a write the secondary sink did not accept (with the backoff above); "
            "then onExhausted applies (0..1000000). Default 20."
        ),
    )
    on_exhausted: Literal["stop", "log"] = Field(
        default="stop",
        description=(
            "stop: hold the batch (nothing more is read or committed), report the pod not "
            "ready with the reason, and keep retrying at the backoff cap until the sink takes "
            "it. log: log each record's coordinates (id, keys, size, error), count it in "
            "udsink_dropped_total, and go on. Default stop."
        ),
    )


class RetryStrategy(_Model):
    """What happens when the primary sink fails a message."""

    backoff: Backoff = Field(default_factory=Backoff, description="Retry delays.")
    on_failure: Literal["retry", "fallback", "drop"] = Field(
        default="retry",
        description=(
            "After the retries: retry (keep retrying, never drop), fallback (send to "
            "spec.sink.fallback, which must be set) or drop. Default retry."
        ),
    )
    secondary: SecondaryRetry = Field(
        default_factory=SecondaryRetry,
        description="Retries of the fallback, on-success and serve sinks, and the last resort.",
    )


class Sink(AbstractSink):
    """The primary sink (exactly one of udsink, kafka, log, blackhole), its retry policy and
    its secondary sinks."""

    cel_rules = (
        cel(
            "!has(self.retryStrategy) || !has(self.retryStrategy.onFailure) || "
            "self.retryStrategy.onFailure != 'fallback' || has(self.fallback)",
            "retryStrategy.onFailure fallback requires fallback",
        ),
    )

    retry_strategy: RetryStrategy = Field(
        default_factory=RetryStrategy, description="Retries and what happens after them."
    )
    fallback: SecondarySink | None = Field(
        default=None,
        description=(
            "Where failed messages (onFailure fallback) and FALLBACK results go, e.g. a "
            "dead-letter topic. A udsink here runs as the fb-udsink sidecar."
        ),
    )
    on_success: SecondarySink | None = Field(
        default=None,
        description="Where ON_SUCCESS results go. A udsink here runs as the ons-udsink sidecar.",
    )
    serve: ServeSink | None = Field(
        default=None, description="Where SERVE results go: kafka or log."
    )

    @model_validator(mode="after")
    def _fallback_when_needed(self) -> Sink:
        if self.retry_strategy.on_failure == "fallback" and self.fallback is None:
            raise ValueError(
                "retryStrategy.onFailure is 'fallback' but no fallback sink is set: "
                "set fallback, or choose onFailure retry or drop"
            )
        return self


# --- Delivery and batching ---


class Batch(_Model):
    """How messages are grouped; a batch is the unit of acknowledgement."""

    size: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=500, description="Largest batch (1..10000). Default 500."
    )
    timeout: Annotated[str, GoDuration("1ms", "10m")] = Field(
        default="1s", description="Longest wait to fill a batch (1ms..10m). Default 1s."
    )


class Nack(_Model):
    """Defaults for NACK results: redelivered later without using the retry budget."""

    delay: Annotated[str, GoDuration("0s", "1h")] = Field(
        default="1s", description="Redelivery delay (0..1h). Default 1s."
    )
    max_deliveries: Annotated[int, Field(ge=0, le=1_000_000)] = Field(
        default=0, description="Deliveries before onFailure applies; 0 = unbounded. Default 0."
    )


class Lifecycle(_Model):
    """Running or paused."""

    desired_phase: Literal["Running", "Paused"] = Field(
        default="Running",
        description="Running, or Paused (0 pods; spec.replicas is kept). Default Running.",
    )


class Runtime(_Model):
    """The udsink data-plane container."""

    image: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        default=None, description="Runtime image. Default: the operator's runtime image."
    )
    image_pull_policy: PullPolicy | None = Field(
        default=None, description="Always, IfNotPresent or Never. Default: Kubernetes' default."
    )
    resources: Resources | None = Field(default=None, description="CPU and memory of the runtime.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="debug, info, warning or error. Default info."
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="json or text. Default json."
    )
    shutdown_grace_period: Annotated[str, GoDuration("1s", "10m")] = Field(
        default="25s",
        description=(
            "Time to finish the in-flight batch after SIGTERM (1s..10m); the pod's termination "
            "grace period is this plus 5s. Default 25s."
        ),
    )


# --- Pod knobs (a typed subset of the Kubernetes PodSpec) ---


def _keys_rule(pattern: str, message: Message) -> Rule:
    """CEL: every key of the map `self` matches `pattern` (the API server checks no map key
    against a pattern by itself)."""
    return cel(f"self.all(k, k.matches({cel_string(pattern)}))", message.text())


_LABEL_KEY_MAX = 317
_RESERVED_LABEL_PREFIX = messages.RESERVED_LABEL_PREFIX.text(prefix=constants.RESERVED_LABEL_PREFIX)
_ARGOCD_LABEL = messages.ARGOCD_LABEL.text(key=repr(constants.LABEL_ARGOCD_INSTANCE))
MapKey = Annotated[str, Field(min_length=1, max_length=_LABEL_KEY_MAX)]


class PodMetadata(_Model):
    """Labels and annotations added to the pods (not to the other children)."""

    labels: (
        Annotated[
            dict[MapKey, LabelValue],
            Field(
                max_length=64,
                json_schema_extra={
                    CEL: [
                        _keys_rule(LABEL_KEY_PATTERN, messages.LABEL_KEY_IN_MAP),
                        cel(
                            f"!self.exists(k, k.startsWith("
                            f"{cel_string(constants.RESERVED_LABEL_PREFIX)}))",
                            _RESERVED_LABEL_PREFIX,
                        ),
                        cel(
                            f"!({cel_string(constants.LABEL_ARGOCD_INSTANCE)} in self)",
                            _ARGOCD_LABEL,
                        ),
                    ]
                },
            ),
        ]
        | None
    ) = Field(default=None, description="Pod labels (at most 64).")
    annotations: (
        Annotated[
            dict[MapKey, str],
            Field(
                max_length=64,
                json_schema_extra={CEL: [_keys_rule(LABEL_KEY_PATTERN, messages.ANNOTATION_KEY)]},
            ),
        ]
        | None
    ) = Field(default=None, description="Pod annotations (at most 64).")

    @model_validator(mode="after")
    def _keys(self) -> PodMetadata:
        for key in sorted(self.annotations or {}):
            if not re.fullmatch(LABEL_KEY_PATTERN, key):
                raise refused(f"{messages.ANNOTATION_KEY.text()} (got {key!r})")
        for key in sorted(self.labels or {}):
            if not re.fullmatch(LABEL_KEY_PATTERN, key):
                raise refused(f"{messages.LABEL_KEY_IN_MAP.text()} (got {key!r})")
            if key.startswith(constants.RESERVED_LABEL_PREFIX):
                raise refused(f"{_RESERVED_LABEL_PREFIX} (got {key!r})")
            if key == constants.LABEL_ARGOCD_INSTANCE:
                raise refused(_ARGOCD_LABEL)
        return self


class Toleration(_Model):
    """A taint the pods tolerate."""

    cel_rules = (
        cel(
            "!has(self.operator) || self.operator != 'Exists' || !has(self.value) "
            "|| self.value == ''",
            messages.TOLERATION_EXISTS_VALUE.text(value="(set)"),
            messages.TOLERATION_EXISTS_VALUE.cel(value=cel_quoted("self.value")),
        ),
        cel(
            "(has(self.key) && self.key != '') || "
            "(has(self.operator) && self.operator == 'Exists')",
            messages.TOLERATION_EMPTY_KEY.text(operator="Equal"),
            messages.TOLERATION_EMPTY_KEY.cel(
                operator="has(self.operator) ? self.operator : 'Equal (the default)'"
            ),
        ),
        cel(
            "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
            messages.TOLERATION_SECONDS.text(effect="other"),
            messages.TOLERATION_SECONDS.cel(effect="has(self.effect) ? self.effect : 'none'"),
        ),
    )

    key: Annotated[str, Field(max_length=317)] | None = Field(
        default=None, description="Taint key; empty with operator Exists matches every taint."
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists or Equal. Default Equal."
    )
    value: Annotated[str, Field(max_length=63)] | None = Field(
        default=None, description="Taint value (with Equal)."
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect; empty matches all."
    )
    toleration_seconds: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="How long a NoExecute taint is tolerated."
    )

    @model_validator(mode="after")
    def _as_kubernetes_accepts(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise refused(messages.TOLERATION_EXISTS_VALUE.text(value=shown(self.value)))
        if not self.key and self.operator != "Exists":
            raise refused(
                messages.TOLERATION_EMPTY_KEY.text(operator=self.operator or "Equal (the default)")
            )
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise refused(messages.TOLERATION_SECONDS.text(effect=self.effect or "none"))
        return self


# What each selector operator needs, as Kubernetes has it.
_NEEDS = {
    "In": "one or more values",
    "NotIn": "one or more values",
    "Exists": "no values",
    "DoesNotExist": "no values",
    "Gt": "exactly one value",
    "Lt": "exactly one value",
}
# Each need: its test of the count in CEL and in Python.
_COUNT_FITS: dict[str, tuple[str, Callable[[int], bool]]] = {
    "one or more values": ("> 0", lambda n: n > 0),
    "no values": ("== 0", lambda n: n == 0),
    "exactly one value": ("== 1", lambda n: n == 1),
}
_INTEGER = r"^-?[0-9]{1,18}$"


def _values_rules(operators: tuple[str, ...]) -> tuple[Rule, ...]:
    """CEL twins of `_values_problem`: how many values each operator takes."""
    count = "(has(self.values) ? self.values.size() : 0)"
    rules = []
    for needs, (fits, _) in _COUNT_FITS.items():
        group = [op for op in operators if _NEEDS[op] == needs]
        if group:
            rules.append(
                cel(
                    f"!(self.operator in [{_quoted(group)}]) || {count} {fits}",
                    messages.SELECTOR_VALUES.text(operator=" or ".join(group), needs=needs),
                    messages.SELECTOR_VALUES.cel(operator="self.operator", needs=cel_string(needs)),
                )
            )
    if "Gt" in operators:
        rules.append(
            cel(
                f"!(self.operator in ['Gt', 'Lt']) || {count} != 1 || "
                f"self.values[0].matches({cel_string(_INTEGER)})",
                messages.SELECTOR_NUMBER.text(operator="Gt or Lt", value="another value"),
                messages.SELECTOR_NUMBER.cel(
                    operator="self.operator", value=cel_quoted("self.values[0]")
                ),
            )
        )
    return tuple(rules)


def _values_problem(operator: str, values: Sequence[str] | None) -> str | None:
    count = len(values or [])
    needs = _NEEDS[operator]
    if not _COUNT_FITS[needs][1](count):
        return messages.SELECTOR_VALUES.text(operator=operator, needs=needs) + f" (got {count})"
    if operator in ("Gt", "Lt") and not re.fullmatch(_INTEGER, (values or [""])[0]):
        return messages.SELECTOR_NUMBER.text(operator=operator, value=shown((values or [""])[0]))
    return None


class _Requirement(_Model):
    """A selector requirement: its values must fit its operator."""

    key: Annotated[str, Field(min_length=1, max_length=317)] = Field(description="Label key.")
    operator: str
    values: list[str] | None

    @model_validator(mode="after")
    def _values_fit_operator(self) -> _Requirement:
        problem = _values_problem(self.operator, self.values)
        if problem:
            raise refused(problem)
        return self


class NodeSelectorRequirement(_Requirement):
    """A requirement on a node label or field."""

    cel_rules = _values_rules(("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"))

    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] = Field(
        description="In, NotIn, Exists, DoesNotExist, Gt or Lt."
    )
    values: Annotated[list[Annotated[str, Field(max_length=63)]], Field(max_length=64)] | None = (
        Field(default=None, description="Values compared with the label.")
    )


class NodeSelectorTerm(_Model):
    """Requirements on a node, ANDed."""

    cel_rules = (
        cel(
            "!has(self.matchFields) || self.matchFields.all(r, r.key == 'metadata.name' "
            "&& r.operator in ['In', 'NotIn'])",
            messages.MATCH_FIELDS_KEY.text(),
        ),
    )

    match_expressions: Annotated[list[NodeSelectorRequirement], Field(max_length=16)] | None = (
        Field(default=None, description="Requirements on node labels.")
    )
    match_fields: Annotated[list[NodeSelectorRequirement], Field(max_length=16)] | None = Field(
        default=None, description="Requirements on node fields (metadata.name, In or NotIn)."
    )

    @model_validator(mode="after")
    def _fields_kubernetes_supports(self) -> NodeSelectorTerm:
        for req in self.match_fields or []:
            if req.key != "metadata.name" or req.operator not in ("In", "NotIn"):
                raise refused(f"{messages.MATCH_FIELDS_KEY.text()} (got {req.key} {req.operator})")
        return self


class NodeSelector(_Model):
    """Node selector terms, ORed."""

    node_selector_terms: Annotated[list[NodeSelectorTerm], Field(min_length=1, max_length=16)] = (
        Field(description="Terms, ORed.")
    )


class PreferredSchedulingTerm(_Model):
    """A weighted node preference."""

    weight: Annotated[int, Field(ge=1, le=100)] = Field(description="Weight 1..100.")
    preference: NodeSelectorTerm = Field(description="The preferred node term.")


class NodeAffinity(_Model):
    """Which nodes the pods run on."""

    required_during_scheduling_ignored_during_execution: NodeSelector | None = Field(
        default=None, description="Nodes the pods must run on."
    )
    preferred_during_scheduling_ignored_during_execution: (
        Annotated[list[PreferredSchedulingTerm], Field(max_length=16)] | None
    ) = Field(default=None, description="Nodes the pods prefer.")


class LabelSelectorRequirement(_Requirement):
    """A requirement on a label."""

    cel_rules = _values_rules(("In", "NotIn", "Exists", "DoesNotExist"))

    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="In, NotIn, Exists or DoesNotExist."
    )
    values: Annotated[list[Annotated[str, Field(max_length=63)]], Field(max_length=64)] | None = (
        Field(default=None, description="Values for In and NotIn.")
    )


class LabelSelector(_Model):
    """A label selector."""

    match_labels: (
        Annotated[
            dict[Annotated[str, Field(max_length=317)], Annotated[str, Field(max_length=63)]],
            Field(max_length=64),
        ]
        | None
    ) = Field(default=None, description="Labels that must match.")
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=16)] | None = (
        Field(default=None, description="Label requirements, ANDed.")
    )


class PodAffinityTerm(_Model):
    """Pods to run near (affinity) or away from (anti-affinity)."""

    label_selector: LabelSelector | None = Field(default=None, description="The other pods.")
    namespace_selector: LabelSelector | None = Field(default=None, description="Their namespaces.")
    namespaces: Annotated[list[DnsLabel], Field(max_length=64)] | None = Field(
        default=None, description="Their namespaces, by name."
    )
    topology_key: Annotated[str, Field(min_length=1, max_length=317)] = Field(
        description="Node label that defines the domain, e.g. kubernetes.io/hostname."
    )


class WeightedPodAffinityTerm(_Model):
    """A weighted pod affinity preference."""

    weight: Annotated[int, Field(ge=1, le=100)] = Field(description="Weight 1..100.")
    pod_affinity_term: PodAffinityTerm = Field(description="The term.")


class PodAffinity(_Model):
    """Pod affinity or anti-affinity."""

    required_during_scheduling_ignored_during_execution: (
        Annotated[list[PodAffinityTerm], Field(max_length=16)] | None
    ) = Field(default=None, description="Terms that must hold.")
    preferred_during_scheduling_ignored_during_execution: (
        Annotated[list[WeightedPodAffinityTerm], Field(max_length=16)] | None
    ) = Field(default=None, description="Terms preferred.")


class Affinity(_Model):
    """Scheduling constraints, as in a Kubernetes pod."""

    node_affinity: NodeAffinity | None = Field(default=None, description="Node affinity.")
    pod_affinity: PodAffinity | None = Field(default=None, description="Pod affinity.")
    pod_anti_affinity: PodAffinity | None = Field(default=None, description="Pod anti-affinity.")


# Relative, and no `..` segment (Kubernetes' own rule for a local profile path).
_PATH_SEGMENT = r"([^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+|\.)"  # anything but ".." (or empty)
LOCALHOST_PROFILE_PATTERN = rf"^{_PATH_SEGMENT}(/{_PATH_SEGMENT}?)*$"


class SeccompProfile(_Model):
    """A seccomp profile allowed by the restricted Pod Security Standard."""

    cel_rules = (
        cel(
            "self.type != 'Localhost' || has(self.localhostProfile)",
            "type Localhost needs localhostProfile",
        ),
        cel(
            "self.type == 'Localhost' || !has(self.localhostProfile)",
            messages.LOCALHOST_PROFILE_TYPE.text(type="other"),
            messages.LOCALHOST_PROFILE_TYPE.cel(type="self.type"),
        ),
    )

    type: Literal["RuntimeDefault", "Localhost"] = Field(
        description="RuntimeDefault or Localhost (Unconfined is not allowed)."
    )
    localhost_profile: (
        Annotated[
            str,
            Matches(LOCALHOST_PROFILE_PATTERN, messages.LOCALHOST_PROFILE),
            Field(min_length=1, max_length=4096),
        ]
        | None
    ) = Field(
        default=None,
        description="Profile path relative to the kubelet's seccomp root (with Localhost).",
    )

    @model_validator(mode="after")
    def _localhost_profile(self) -> SeccompProfile:
        if self.type == "Localhost" and self.localhost_profile is None:
            raise ValueError("type Localhost needs localhostProfile")
        if self.type != "Localhost" and self.localhost_profile is not None:
            raise refused(messages.LOCALHOST_PROFILE_TYPE.text(type=self.type))
        return self


class PodSecurityContext(_Model):
    """User and groups of the pods. runAsNonRoot and a seccomp profile are always set (the
    restricted Pod Security Standard)."""

    run_as_user: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = Field(
        default=None, description="UID to run as (non-zero)."
    )
    run_as_group: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = Field(
        default=None, description="GID to run as."
    )
    fs_group: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = Field(
        default=None, description="Group that owns mounted volumes."
    )
    fs_group_change_policy: Literal["OnRootMismatch", "Always"] | None = Field(
        default=None, description="When volume ownership is changed: OnRootMismatch or Always."
    )
    supplemental_groups: (
        Annotated[list[Annotated[int, Field(ge=0, le=2**31 - 1)]], Field(max_length=32)] | None
    ) = Field(default=None, description="Extra groups.")
    seccomp_profile: SeccompProfile | None = Field(
        default=None, description="Seccomp profile. Default RuntimeDefault."
    )


class LocalObjectReference(_Model):
    """A Secret in the UDSink's namespace, by name."""

    name: DnsSubdomain = Field(description="Name of the Secret.")


class Pod(_Model):
    """Pod-level settings of the Deployment's pods."""

    metadata: PodMetadata | None = Field(
        default=None, description="Extra pod labels and annotations."
    )
    service_account_name: DnsSubdomain | None = Field(
        default=None, description="Service account of the pods. Default: the namespace's default."
    )
    automount_service_account_token: bool = Field(
        default=False,
        description="Mount an API token into the pods (the runtime needs none). Default false.",
    )
    node_selector: Annotated[dict[str, str], Field(max_length=64)] | None = Field(
        default=None, description="Node labels to run on."
    )
    tolerations: Annotated[list[Toleration], Field(max_length=64)] | None = Field(
        default=None, description="Tolerated taints."
    )
    affinity: Affinity | None = Field(default=None, description="Scheduling constraints.")
    priority_class_name: DnsSubdomain | None = Field(default=None, description="Priority class.")
    image_pull_secrets: Annotated[list[LocalObjectReference], Field(max_length=16)] | None = Field(
        default=None, description="Secrets used to pull the images."
    )
    security_context: PodSecurityContext | None = Field(
        default=None, description="User and groups of the pods."
    )
    runtime_class_name: DnsSubdomain | None = Field(default=None, description="Runtime class.")
    sidecars: Annotated[list[NamedContainer], Field(max_length=16)] | None = Field(
        default=None,
        description=(
            "Extra containers started before the sink (native sidecars), for example a "
            "database proxy; names unique. They get no access to the runtime's Secrets."
        ),
        json_schema_extra=LIST_MAP_BY_NAME,
    )

    @model_validator(mode="after")
    def _unique_sidecars(self) -> Pod:
        _unique([c.name for c in self.sidecars or []], "sidecar names")
        return self


class UDSinkSpec(_Model):
    """A source, a sink (user-defined or built-in) and what happens on failure."""

    replicas: Annotated[int, Field(ge=0, le=10_000)] = Field(
        default=1,
        description=(
            "Pods to run; the target of the scale subresource (kubectl scale, HPA, KEDA). "
            "Parallelism is bounded by the partition count. Default 1."
        ),
        json_schema_extra={CRD_DEFAULT: True},
    )
    lifecycle: Lifecycle = Field(default_factory=Lifecycle, description="Running or paused.")
    source: Source = Field(description="Where messages come from.")
    batch: Batch = Field(default_factory=Batch, description="Batch size and timeout.")
    sink: Sink = Field(description="Where messages go, and what happens on failure.")
    nack: Nack = Field(default_factory=Nack, description="Defaults for NACK results.")
    runtime: Runtime = Field(default_factory=Runtime, description="The data-plane container.")
    pod: Pod = Field(default_factory=Pod, description="Pod-level settings.")

    @property
    def paused(self) -> bool:
        return self.lifecycle.desired_phase == "Paused"

    def secret_refs(self) -> list[tuple[str, SecretKeyRef]]:
        """Every Secret key the runtime reads, with the field path that references it."""
        refs: list[tuple[str, SecretKeyRef]] = []
        if self.source.kafka is not None:
            refs += [(f"spec.source.kafka.{p}", r) for p, r in self.source.kafka.secret_refs()]
        for path, sink in self.kafka_sinks():
            refs += [(f"{path}.{p}", r) for p, r in sink.secret_refs()]
        return refs

    def kafka_sinks(self) -> list[tuple[str, KafkaSink]]:
        holders: list[tuple[str, AbstractSink | ServeSink | None]] = [
            ("spec.sink", self.sink),
            ("spec.sink.fallback", self.sink.fallback),
            ("spec.sink.onSuccess", self.sink.on_success),
            ("spec.sink.serve", self.sink.serve),
        ]
        return [
            (f"{path}.kafka", holder.kafka)
            for path, holder in holders
            if holder is not None and holder.kafka is not None
        ]


# --- Status ---


class Condition(_Model):
    """A condition in the metav1.Condition shape."""

    type: Annotated[str, Field(min_length=1, max_length=316)] = Field(
        description="Ready, Progressing, Degraded or ConfigValid."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        description="Machine-readable reason, CamelCase."
    )
    message: Annotated[str, Field(max_length=32768)] = Field(
        default="", description="Human-readable details."
    )
    last_transition_time: str = Field(
        description="When the status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="The spec generation this condition was computed for."
    )


class UDSinkStatus(_Model):
    """Observed state, written by the operator only."""

    phase: Literal["Pending", "Running", "Paused", "Failed"] | None = Field(
        default=None, description="Pending, Running, Paused or Failed."
    )
    observed_generation: int | None = Field(
        default=None, description="The spec generation the operator last acted on."
    )
    replicas: int | None = Field(default=None, description="Pods that exist (scale subresource).")
    ready_replicas: int | None = Field(default=None, description="Pods that are ready.")
    selector: str | None = Field(
        default=None, description="Label selector of the pods (scale subresource, HPA)."
    )
    message: str | None = Field(default=None, description="Human-readable summary.")
    conditions: list[Condition] | None = Field(
        default=None,
        description="Ready, Progressing, Degraded and ConfigValid.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )


# --- The resource ---


class ObjectMeta(BaseModel):
    """The part of metadata the operator reads; everything else is ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    name: Annotated[
        str,
        Matches(constants.NAME_PATTERN, messages.RESOURCE_NAME),
        Field(min_length=1, max_length=constants.NAME_MAX_LENGTH),
    ]
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class UDSink(BaseModel):
    """A whole UDSink object as read from a file or from the API server."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    api_version: Literal["udsink.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["UDSink"]
    metadata: ObjectMeta
    spec: UDSinkSpec


# --- Parsing with precise errors ---


class SpecError(ValueError):
    """A UDSink failed validation. Each issue names the field path, the value and what is
    accepted; the string form is what status, events and the CLI show."""

    def __init__(self, issues: Sequence[str]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(self.issues))


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


def _issue(error: Any, model: type[BaseModel], root: str) -> str:
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


def format_errors(err: ValidationError, model: type[BaseModel], root: str = "") -> SpecError:
    """Turn pydantic's errors into one SpecError with one issue per problem."""
    return SpecError([_issue(e, model, root) for e in err.errors()])


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
