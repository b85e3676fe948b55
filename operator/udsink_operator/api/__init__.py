"""The UDSink resource as pydantic models: the single source of truth of the API.

The CRD schema (`crd.py`), the operator's validation errors and the reference docs are all
generated from these classes, so a field, its description, its bounds and its cross-field rules
are written once. Rules are enforced twice: in the models, where the message can be precise,
and as OpenAPI/CEL in the CRD, so the API server rejects bad input at `kubectl apply`.

The package's rooms: `schema` (the framework: checks with CEL twins, the base models), `kube`
(the subset of Kubernetes core/v1 a UDSink carries), `udsink` (the resource itself), `errors`
(messages from validation errors, parsing). What the rest of the operator and the CLI use is
importable from `udsink_operator.api`; the rest from its room.
"""

from __future__ import annotations

from sink_runtime.config.durations import DURATION_MAX_LENGTH, is_duration
from udsink_operator.api.errors import (
    SpecError,
    format_errors,
    parse_spec,
    parse_udsink,
)
from udsink_operator.api.kube import (
    Container,
    PodMetadata,
    PodSecurityContext,
    Resources,
    quantity_value,
)
from udsink_operator.api.schema import (
    CEL,
    CRD_DEFAULT,
    Matches,
    cel,
    described,
    duration_ms,
    exact_ms,
    field_bounds,
    plain_default,
)
from udsink_operator.api.udsink import (
    SASL_MEMBERS,
    AbstractSink,
    Backoff,
    Batch,
    KafkaSink,
    KafkaSource,
    LogSink,
    RetryStrategy,
    Sasl,
    SaslOAuth,
    SecretKeyRef,
    Tls,
    UDSink,
    UDSinkSpec,
    UDSinkStatus,
    UserDefinedSink,
)

__all__ = [
    "CEL",
    "CRD_DEFAULT",
    "DURATION_MAX_LENGTH",
    "SASL_MEMBERS",
    "AbstractSink",
    "Backoff",
    "Batch",
    "Container",
    "KafkaSink",
    "KafkaSource",
    "LogSink",
    "Matches",
    "PodMetadata",
    "PodSecurityContext",
    "Resources",
    "RetryStrategy",
    "Sasl",
    "SaslOAuth",
    "SecretKeyRef",
    "SpecError",
    "Tls",
    "UDSink",
    "UDSinkSpec",
    "UDSinkStatus",
    "UserDefinedSink",
    "cel",
    "described",
    "duration_ms",
    "exact_ms",
    "field_bounds",
    "format_errors",
    "is_duration",
    "parse_spec",
    "parse_udsink",
    "plain_default",
    "quantity_value",
]
