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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
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
from pydantic_core import core_schema

from sink_runtime.config import BROKER_PATTERN, TOPIC_PATTERN
from sink_runtime.config import constants as runtime_constants
from udsink_operator import constants

CEL = "x-kubernetes-validations"
# Marks the few fields whose default is also written into the CRD (see crd.py).
CRD_DEFAULT = "x-udsink-crd-default"

Rule: TypeAlias = dict[str, str]
# Lists whose items are unique by name: the API server enforces it (`listType: map`).
LIST_MAP_BY_NAME: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["name"],
}


def cel(rule: str, message: str) -> Rule:
    """One CEL rule as it appears in the CRD."""
    return {"rule": rule, "message": message}


def _quoted(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


# --- Annotations that carry both a check and its CRD twin ---


@dataclass(frozen=True)
class Matches:
    """The string must match `pattern`; the error says in words what is accepted (a regex in
    an error message helps nobody). The pattern also goes into the CRD schema."""

    pattern: str
    accepted: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        compiled = re.compile(self.pattern)
        accepted = self.accepted

        def check(value: str) -> str:
            if not compiled.fullmatch(value):
                raise ValueError(f"must be {accepted}")
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = self.pattern
        return json_schema


# Go's time.ParseDuration syntax, always with a unit ("0s", not "0": CEL engines differ there).
DURATION_PATTERN = r"^((([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(ns|us|ms|s|m|h))+$"
_DURATION_PART = re.compile(r"((?:[0-9]+(?:\.[0-9]*)?)|(?:\.[0-9]+))(ns|us|ms|s|m|h)")
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def exact_ms(text: str) -> float:
    """Milliseconds of a Go-style duration (`100ms`, `1s`, `2m30s`), unrounded."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a Go-style duration such as 100ms, 1s, 2m30s, 1h")
    return round(sum(float(n) * _UNIT_MS[u] for n, u in _DURATION_PART.findall(text)), 6)


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
        bounds = f"must be between {self.minimum} and {self.maximum}"

        def check(value: str) -> str:
            if not re.fullmatch(DURATION_PATTERN, value):
                raise ValueError(
                    "must be a Go-style duration such as 100ms, 1s, 2m30s, 1h "
                    "(units ns, us, ms, s, m, h)"
                )
            # Compared unrounded, like the CRD's CEL rule: 500us is below 1ms.
            if not low <= exact_ms(value) <= high:
                raise ValueError(bounds)
            return value

        return core_schema.no_info_before_validator_function(
            _duration_not_a_number,
            core_schema.no_info_after_validator_function(check, handler(source)),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = DURATION_PATTERN
        json_schema[CEL] = [
            cel(
                f"duration(self) >= duration('{self.minimum}') && "
                f"duration(self) <= duration('{self.maximum}')",
                f"must be between {self.minimum} and {self.maximum}",
            )
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
    Matches(DNS_SUBDOMAIN_PATTERN, "a DNS subdomain: lower-case a-z, 0-9, '-' and '.'"),
    Field(min_length=1, max_length=253),
]
DnsLabel = Annotated[
    str,
    Matches(DNS_LABEL_PATTERN, "a DNS label: lower-case a-z, 0-9 and '-'"),
    Field(min_length=1, max_length=63),
]
Topic = Annotated[str, Matches(TOPIC_PATTERN, "1-249 characters of A-Z a-z 0-9 . _ -")]
Broker = Annotated[str, Matches(BROKER_PATTERN, "host:port, for example kafka:9092")]
EnvName = Annotated[
    str,
    Matches(ENV_NAME_PATTERN, "a variable name: letters, digits, '_', '-', '.'"),
    Field(min_length=1, max_length=256),
]
LabelKey = Annotated[
    str,
    Matches(LABEL_KEY_PATTERN, "a label key: [prefix/]name, the name up to 63 characters"),
    Field(max_length=317),
]
LabelValue = Annotated[
    str, Matches(LABEL_VALUE_PATTERN, "a label value: up to 63 characters of A-Z a-z 0-9 - _ .")
]
Name253 = Annotated[str, Field(min_length=1, max_length=253)]


def _quantity(value: Any) -> str:
    # Quantities are kept as strings: the API server stores integers as strings too, so the
    # operator's desired state compares equal to what it reads back.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a Kubernetes quantity such as 500m, 1, 256Mi")
    text = str(value)
    if not re.fullmatch(QUANTITY_PATTERN, text):
        raise ValueError("must be a Kubernetes quantity such as 500m, 1, 256Mi")
    return text


Quantity = Annotated[
    str,
    BeforeValidator(_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
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
        rule = cel(
            f"[{present}].filter(x, x).size() == 1",
            f"exactly one of {', '.join(aliases)} must be set",
        )
        return [rule, *cls.cel_rules]

    @model_validator(mode="after")
    def _exactly_one(self) -> _ExactlyOne:
        chosen = self.set_members(self.one_of)
        if len(chosen) != 1:
            names = ", ".join(self.alias_of(m) for m in self.one_of)
            got = ", ".join(chosen) if chosen else "none"
            raise ValueError(f"exactly one of {names} must be set (got {got})")
        return self


# --- Secrets: only ever referenced ---


class SecretKeyRef(_Model):
    """A key of a Secret in the UDSink's namespace. Its value is mounted as a file into the
    runtime container only; it never appears in the UDSink, the ConfigMap or a log."""

    name: DnsSubdomain = Field(description="Name of the Secret, in the UDSink's namespace.")
    key: Annotated[
        str, Matches(SECRET_KEY_PATTERN, "a Secret key: A-Z a-z 0-9 - _ ."), Field(max_length=253)
    ] = Field(description="Key inside the Secret whose value is used.")


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
    token_endpoint: Annotated[
        str, Matches(URL_PATTERN, "an http(s) URL"), Field(max_length=2048)
    ] = Field(description="URL of the OIDC token endpoint.")
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


def _check_kafka_config(config: dict[str, str]) -> dict[str, str]:
    for key in sorted(config):
        hint = owned_kafka_key_hint(key)
        if hint is not None:
            raise ValueError(
                f"key {key!r} is owned by udsink ({hint}); "
                f"keys udsink owns: {', '.join(reserved_kafka_keys())}"
            )
    return config


KAFKA_CONFIG_RULE = cel(
    f"self.all(k, !(k in [{_quoted(sorted(runtime_constants.KAFKA_OWNED_CONFIG_KEYS))}]) && "
    + " && ".join(f"!k.startsWith('{p}')" for p in runtime_constants.KAFKA_OWNED_CONFIG_PREFIXES)
    + ")",
    f"config may not set keys udsink owns: {', '.join(reserved_kafka_keys())}",
)

KafkaConfig = Annotated[
    dict[str, str],
    AfterValidator(_check_kafka_config),
    Field(json_schema_extra={"maxProperties": 200, CEL: [KAFKA_CONFIG_RULE]}),
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


class FieldRef(_Model):
    """A field of the pod, e.g. metadata.name."""

    field_path: Name253 = Field(description="Pod field, e.g. metadata.name or status.podIP.")
    api_version: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="Schema version of fieldPath. Default v1."
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
        raise ValueError(f"{name} is set by udsink and may not be set here")
    return name


class EnvVar(_Model):
    """An environment variable: a literal value or a reference (never a secret value)."""

    cel_rules = (
        cel("!(has(self.value) && has(self.valueFrom))", "set value or valueFrom, not both"),
        cel(
            f"!(self.name in [{_quoted(sorted(constants.RESERVED_ENV_NAMES))}])",
            f"{', '.join(sorted(constants.RESERVED_ENV_NAMES))} is set by udsink",
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


class Resources(_Model):
    """Compute resources, as in a Kubernetes container."""

    requests: dict[Name253, Quantity] | None = Field(
        default=None, description="Minimum resources, e.g. {cpu: 100m, memory: 128Mi}."
    )
    limits: dict[Name253, Quantity] | None = Field(
        default=None, description="Maximum resources, e.g. {memory: 256Mi}."
    )


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


def _not_reserved_container(name: str) -> str:
    if name in runtime_constants.RESERVED_CONTAINER_NAMES:
        reserved = ", ".join(sorted(runtime_constants.RESERVED_CONTAINER_NAMES))
        raise ValueError(f"container name {name!r} is reserved (reserved: {reserved})")
    return name


class NamedContainer(Container):
    """An extra sidecar next to the sink, for example a database proxy."""

    cel_rules = (
        cel(
            f"!(self.name in [{_quoted(sorted(runtime_constants.RESERVED_CONTAINER_NAMES))}])",
            f"container names {', '.join(sorted(runtime_constants.RESERVED_CONTAINER_NAMES))} "
            "are reserved",
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


def _check_static_headers(headers: dict[str, str]) -> dict[str, str]:
    for key in sorted(headers):
        if key.startswith(KEY_HEADER_RESERVED_PREFIX):
            raise ValueError(
                f"header {key!r} is reserved: names starting with "
                f"{KEY_HEADER_RESERVED_PREFIX!r} carry keys"
            )
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
                    f"header names starting with {KEY_HEADER_RESERVED_PREFIX} carry keys and "
                    "are reserved",
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


class Backoff(_Model):
    """Exponential backoff between retries of the primary sink."""

    cel_rules = (
        cel(
            "duration(has(self.cap) ? self.cap : '30s') >= "
            "duration(has(self.interval) ? self.interval : '100ms')",
            "cap must be at least interval",
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
            raise ValueError(f"cap ({self.cap}) must be at least interval ({self.interval})")
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


class PodMetadata(_Model):
    """Labels and annotations added to the pods (not to the other children)."""

    cel_rules = (
        cel(
            f"!has(self.labels) || self.labels.all(k, "
            f"!k.startsWith('{constants.RESERVED_LABEL_PREFIX}') && "
            f"k != '{constants.LABEL_ARGOCD_INSTANCE}')",
            f"labels under {constants.RESERVED_LABEL_PREFIX} and "
            f"{constants.LABEL_ARGOCD_INSTANCE} are reserved",
        ),
    )

    labels: Annotated[dict[LabelKey, LabelValue], Field(max_length=64)] | None = Field(
        default=None, description="Pod labels (at most 64)."
    )
    annotations: (
        Annotated[
            dict[Annotated[str, Field(min_length=1, max_length=317)], str], Field(max_length=64)
        ]
        | None
    ) = Field(default=None, description="Pod annotations (at most 64).")

    @model_validator(mode="after")
    def _reserved_labels(self) -> PodMetadata:
        for key in sorted(self.labels or {}):
            if key.startswith(constants.RESERVED_LABEL_PREFIX):
                raise ValueError(
                    f"label {key!r} is reserved: udsink sets the labels under "
                    f"{constants.RESERVED_LABEL_PREFIX}"
                )
            if key == constants.LABEL_ARGOCD_INSTANCE:
                raise ValueError(f"label {key!r} is Argo CD's tracking label; it stays off pods")
        return self


class Toleration(_Model):
    """A taint the pods tolerate."""

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


class NodeSelectorRequirement(_Model):
    """A requirement on a node label or field."""

    key: Annotated[str, Field(min_length=1, max_length=317)] = Field(description="Label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] = Field(
        description="In, NotIn, Exists, DoesNotExist, Gt or Lt."
    )
    values: list[str] | None = Field(default=None, description="Values compared with the label.")


class NodeSelectorTerm(_Model):
    """Requirements on a node, ANDed."""

    match_expressions: list[NodeSelectorRequirement] | None = Field(
        default=None, description="Requirements on node labels."
    )
    match_fields: list[NodeSelectorRequirement] | None = Field(
        default=None, description="Requirements on node fields."
    )


class NodeSelector(_Model):
    """Node selector terms, ORed."""

    node_selector_terms: Annotated[list[NodeSelectorTerm], Field(min_length=1)] = Field(
        description="Terms, ORed."
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
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] | None = (
        Field(default=None, description="Nodes the pods prefer.")
    )


class LabelSelectorRequirement(_Model):
    """A requirement on a label."""

    key: Annotated[str, Field(min_length=1, max_length=317)] = Field(description="Label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="In, NotIn, Exists or DoesNotExist."
    )
    values: list[str] | None = Field(default=None, description="Values for In and NotIn.")


class LabelSelector(_Model):
    """A label selector."""

    match_labels: dict[str, str] | None = Field(default=None, description="Labels that must match.")
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, description="Label requirements, ANDed."
    )


class PodAffinityTerm(_Model):
    """Pods to run near (affinity) or away from (anti-affinity)."""

    label_selector: LabelSelector | None = Field(default=None, description="The other pods.")
    namespace_selector: LabelSelector | None = Field(default=None, description="Their namespaces.")
    namespaces: list[str] | None = Field(default=None, description="Their namespaces, by name.")
    topology_key: Annotated[str, Field(min_length=1, max_length=317)] = Field(
        description="Node label that defines the domain, e.g. kubernetes.io/hostname."
    )


class WeightedPodAffinityTerm(_Model):
    """A weighted pod affinity preference."""

    weight: Annotated[int, Field(ge=1, le=100)] = Field(description="Weight 1..100.")
    pod_affinity_term: PodAffinityTerm = Field(description="The term.")


class PodAffinity(_Model):
    """Pod affinity or anti-affinity."""

    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] | None = Field(
        default=None, description="Terms that must hold."
    )
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] | None = (
        Field(default=None, description="Terms preferred.")
    )


class Affinity(_Model):
    """Scheduling constraints, as in a Kubernetes pod."""

    node_affinity: NodeAffinity | None = Field(default=None, description="Node affinity.")
    pod_affinity: PodAffinity | None = Field(default=None, description="Pod affinity.")
    pod_anti_affinity: PodAffinity | None = Field(default=None, description="Pod anti-affinity.")


class SeccompProfile(_Model):
    """A seccomp profile allowed by the restricted Pod Security Standard."""

    cel_rules = (
        cel(
            "self.type != 'Localhost' || has(self.localhostProfile)",
            "type Localhost needs localhostProfile",
        ),
    )

    type: Literal["RuntimeDefault", "Localhost"] = Field(
        description="RuntimeDefault or Localhost (Unconfined is not allowed)."
    )
    localhost_profile: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        default=None, description="Profile path on the node (with Localhost)."
    )

    @model_validator(mode="after")
    def _localhost_profile(self) -> SeccompProfile:
        if self.type == "Localhost" and self.localhost_profile is None:
            raise ValueError("type Localhost needs localhostProfile")
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
    supplemental_groups: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] | None = Field(
        default=None, description="Extra groups."
    )
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
    tolerations: list[Toleration] | None = Field(default=None, description="Tolerated taints.")
    affinity: Affinity | None = Field(default=None, description="Scheduling constraints.")
    priority_class_name: DnsSubdomain | None = Field(default=None, description="Priority class.")
    image_pull_secrets: list[LocalObjectReference] | None = Field(
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
        Matches(
            constants.NAME_PATTERN,
            "a DNS-1035 label: lower-case a-z, 0-9 and '-', starting with a letter",
        ),
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


def _shown(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object with " + (", ".join(sorted(map(str, value))) or "no fields")[:100]
    text = json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


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
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{path}: {message} (got {_shown(error.get('input'))})"


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
