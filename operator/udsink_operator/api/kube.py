"""A hand-typed subset of Kubernetes core/v1 that a UDSink may carry: containers (env, env
sources, resources) and pod knobs (tolerations, affinity, security context, metadata).

Typed rather than passed through so that what the API server would refuse in the Deployment is
refused in the UDSink already, by the same models `udsink render` and `udsink run` use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Annotated, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    Field,
    model_validator,
)

from sink_runtime.config import constants as runtime_constants
from sink_runtime.config.errors import refused, shown
from udsink_operator import constants, messages
from udsink_operator.api.schema import (
    CEL,
    LABEL_KEY_PATTERN,
    LIST_MAP_BY_NAME,
    DnsLabel,
    DnsSubdomain,
    EnvName,
    LabelKey,
    LabelValue,
    Matches,
    Name253,
    Quantity,
    Rule,
    ShownDefault,
    _ExactlyOne,
    _Model,
    _quoted,
    cel,
)
from udsink_operator.messages import Message, cel_quoted, cel_string

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
    container_name: Annotated[
        Annotated[str, Field(max_length=63)] | None, ShownDefault("this container")
    ] = Field(default=None, description="Container whose resource is read.")
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
    image_pull_policy: Annotated[PullPolicy | None, ShownDefault("Kubernetes' default")] = Field(
        default=None, description="Always, IfNotPresent or Never."
    )
    command: Annotated[
        Annotated[list[str], Field(max_length=64)] | None, ShownDefault("the image's")
    ] = Field(default=None, description="Entrypoint.")
    args: Annotated[
        Annotated[list[str], Field(max_length=256)] | None, ShownDefault("the image's")
    ] = Field(default=None, description="Arguments.")
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
    operator: Annotated[Literal["Exists", "Equal"] | None, ShownDefault("Equal")] = Field(
        default=None, description="Exists or Equal."
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

    weight: Annotated[int, Field(ge=1, le=100)] = Field(description="Weight of this preference.")
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

    weight: Annotated[int, Field(ge=1, le=100)] = Field(description="Weight of this preference.")
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
    seccomp_profile: Annotated[SeccompProfile | None, ShownDefault("RuntimeDefault")] = Field(
        default=None, description="Seccomp profile."
    )


class LocalObjectReference(_Model):
    """A Secret in the UDSink's namespace, by name."""

    name: DnsSubdomain = Field(description="Name of the Secret.")


class TopologySpreadConstraint(_Model):
    """How the pods spread over a topology (nodes, zones), as in a Kubernetes pod."""

    cel_rules = (
        cel(
            "!has(self.minDomains) || self.whenUnsatisfiable == 'DoNotSchedule'",
            messages.MIN_DOMAINS.text(when="ScheduleAnyway"),
            messages.MIN_DOMAINS.cel(when="self.whenUnsatisfiable"),
        ),
    )

    max_skew: Annotated[int, Field(ge=1, le=10_000)] = Field(
        description="How many more of the pods one domain may hold than the emptiest."
    )
    topology_key: LabelKey = Field(
        description=(
            "Node label whose values are the domains, e.g. kubernetes.io/hostname or "
            "topology.kubernetes.io/zone."
        )
    )
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"] = Field(
        description=(
            "DoNotSchedule (a pod stays Pending rather than exceed maxSkew) or ScheduleAnyway "
            "(the scheduler prefers the domains that lower the skew)."
        )
    )
    label_selector: Annotated[LabelSelector | None, ShownDefault("this UDSink's pods")] = Field(
        default=None, description="The pods counted."
    )
    min_domains: Annotated[int, Field(ge=1, le=10_000)] | None = Field(
        default=None,
        description="With DoNotSchedule: fewer eligible domains than this count as skew.",
    )
    node_affinity_policy: Literal["Honor", "Ignore"] | None = Field(
        default=None,
        description="Whether the pods' node affinity and selector limit the domains counted.",
    )
    node_taints_policy: Literal["Honor", "Ignore"] | None = Field(
        default=None, description="Whether node taints the pods do not tolerate limit them."
    )
    match_label_keys: Annotated[list[LabelKey], Field(max_length=16)] | None = Field(
        default=None,
        description=(
            "Pod label keys whose values, taken from the pod being scheduled, narrow the pods "
            "counted (e.g. pod-template-hash: only the same rollout's)."
        ),
    )

    @model_validator(mode="after")
    def _min_domains(self) -> TopologySpreadConstraint:
        if self.min_domains is not None and self.when_unsatisfiable != "DoNotSchedule":
            raise refused(messages.MIN_DOMAINS.text(when=self.when_unsatisfiable))
        return self


class Pod(_Model):
    """Pod-level settings of the Deployment's pods."""

    metadata: PodMetadata | None = Field(
        default=None, description="Extra pod labels and annotations."
    )
    service_account_name: Annotated[
        DnsSubdomain | None, ShownDefault("the namespace's default")
    ] = Field(default=None, description="Service account of the pods.")
    automount_service_account_token: bool = Field(
        default=False,
        description="Mount an API token into the pods (the runtime needs none).",
    )
    node_selector: Annotated[dict[str, str], Field(max_length=64)] | None = Field(
        default=None, description="Node labels to run on."
    )
    tolerations: Annotated[list[Toleration], Field(max_length=64)] | None = Field(
        default=None, description="Tolerated taints."
    )
    affinity: Affinity | None = Field(default=None, description="Scheduling constraints.")
    topology_spread_constraints: (
        Annotated[list[TopologySpreadConstraint], Field(max_length=16)] | None
    ) = Field(
        default=None,
        description=(
            "How the replicas spread over nodes or zones; a constraint without labelSelector "
            "counts this UDSink's pods. When absent: maxSkew 1 over "
            f"{constants.HOSTNAME_TOPOLOGY_KEY}, ScheduleAnyway: the replicas go to different "
            "nodes where the scheduler can, and still run where there is one node. [] for no "
            "spreading."
        ),
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["topologyKey", "whenUnsatisfiable"],
        },
    )
    priority_class_name: DnsSubdomain | None = Field(default=None, description="Priority class.")
    image_pull_secrets: Annotated[list[LocalObjectReference], Field(max_length=16)] | None = Field(
        default=None,
        description=(
            "Secrets (type kubernetes.io/dockerconfigjson, in the UDSink's namespace) the "
            "kubelet pulls every image of the pods with: the runtime's, the sinks' and the "
            "sidecars'."
        ),
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

    @model_validator(mode="after")
    def _unique_spread_pairs(self) -> Pod:
        # The API server refuses a repeated pair itself (a list keyed by the pair).
        given = self.topology_spread_constraints or []
        pairs = [f"{c.topology_key} {c.when_unsatisfiable}" for c in given]
        repeated = sorted({p for p in pairs if pairs.count(p) > 1})
        if repeated:
            raise refused(messages.SPREAD_PAIRS.text(repeated=", ".join(repeated)))
        return self
