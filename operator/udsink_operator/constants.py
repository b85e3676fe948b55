"""The operator's own names: API group, labels, annotations, defaults and reserved keys.

The runtime's facts (socket paths, ports, container names) live in `sink_runtime.config.constants`
and are imported from there; this module holds only what the data plane never needs to know,
so the API models, the builders, the CRD generator and the kopf wiring share one spelling.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias, get_args

from sink_runtime.config import constants as runtime

# --- The UDSink resource ---
GROUP: Final = "udsink.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "UDSink"
PLURAL: Final = "udsinks"
SINGULAR: Final = "udsink"
SHORT_NAMES: Final = ("uds",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

# --- What the operator writes ---
FIELD_MANAGER: Final = "udsink-operator"
APP_NAME: Final = "udsink"

LABEL_APP_NAME: Final = "app.kubernetes.io/name"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_UDSINK: Final = f"{GROUP}/name"
# Argo CD's tracking label: copying it onto children would make Argo CD adopt (and prune) them.
LABEL_ARGOCD_INSTANCE: Final = "app.kubernetes.io/instance"
RESERVED_LABEL_PREFIX: Final = f"{GROUP}/"

ANNOTATION_CONFIG_HASH: Final = f"{GROUP}/config-hash"
# Hash of a child's desired manifest, so a field removed from the UDSink is noticed even though
# the live object still has it (a subset comparison alone cannot see removals).
ANNOTATION_APPLIED_HASH: Final = f"{GROUP}/applied-hash"

CONFIG_MAP_SUFFIX: Final = "-config"
METRICS_SERVICE_SUFFIX: Final = "-metrics"

# A UDSink's name becomes a Service name (`<name>-metrics`, a DNS-1035 label of at most 63
# characters) and a label value, hence the tighter rule than Kubernetes' own for names.
NAME_PATTERN: Final = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_MAX_LENGTH: Final = 63 - len(METRICS_SERVICE_SUFFIX)

# --- Runtime container defaults ---
# The operator's own /metrics (reconciles, errors, UDSinks by phase); its health port is 8080.
DEFAULT_OPERATOR_METRICS_PORT: Final = 8081
DEFAULT_RUNTIME_IMAGE: Final = "ghcr.io/udsink/udsink:0.1.0"
RUNTIME_COMMAND: Final = ("python", "-m", "sink_runtime.dataplane")
RUNTIME_ARGS: Final = ("--config", runtime.CONFIG_PATH)
SHUTDOWN_MARGIN_SECONDS: Final = 5
# The runtime container's default CPU: a request for what a data plane uses at moderate rates
# (its CPU per message is in docs/benchmarks.md: 100m carries a few thousand messages/s),
# and a limit of two cores, more than its busiest measured run used, so that a
# namespace whose ResourceQuota counts limits.cpu admits the pod. Its memory request and
# limit are the data plane's memory bound (sink_runtime.config.memory), computed per UDSink.
DEFAULT_RUNTIME_CPU_REQUEST: Final = "100m"
DEFAULT_RUNTIME_CPU_LIMIT: Final = "2"
# Spread by node when the user gives no spec.pod.topologySpreadConstraints: a preference, so
# a single-node cluster still runs every replica.
HOSTNAME_TOPOLOGY_KEY: Final = "kubernetes.io/hostname"
# Pods run as this user and group unless spec.pod.securityContext says otherwise (restricted
# Pod Security Standard; one shared user so the runtime can connect to the sinks' sockets).
DEFAULT_UID: Final = 65532

# --- Volumes ---
VOLUME_SOCKETS: Final = "sockets"
VOLUME_CONFIG: Final = "config"
VOLUME_TMP: Final = "tmp"
TMP_DIR: Final = "/tmp"
SECRET_VOLUME_PREFIX: Final = "secret-"

# Environment variables the operator sets on sidecars; users may not set them.
RESERVED_ENV_NAMES: Final = frozenset({runtime.CONTAINER_TYPE_ENV})

# Native sidecars (initContainers with restartPolicy Always) are on by default from this
# Kubernetes minor version; older clusters get plain containers.
NATIVE_SIDECARS_MIN_MINOR: Final = 29


# --- Status ---
# A UDSink's status.phase, and the phases spec.lifecycle.desiredPhase may ask for.
Phase: TypeAlias = Literal["Pending", "Running", "Paused", "Failed"]
DesiredPhase: TypeAlias = Literal["Running", "Paused"]
PHASES: Final[tuple[str, ...]] = get_args(Phase)
PHASE_PENDING: Final[Phase] = "Pending"
PHASE_RUNNING: Final[DesiredPhase] = "Running"
PHASE_PAUSED: Final[DesiredPhase] = "Paused"
PHASE_FAILED: Final[Phase] = "Failed"

CONDITION_READY: Final = "Ready"
CONDITION_PROGRESSING: Final = "Progressing"
CONDITION_DEGRADED: Final = "Degraded"
CONDITION_CONFIG_VALID: Final = "ConfigValid"
# Ready's reason while a pod is not ready and its runtime container last ended with a message
# (a lasting Kafka refusal); the message is cut to this many characters.
REASON_RUNTIME_FAILING: Final = "RuntimeFailing"
RUNTIME_MESSAGE_MAX_CHARS: Final = 1024

# --- Operator process ---
DEFAULT_PEERING_NAME: Final = "udsink-operator"
DEFAULT_LIVENESS_ENDPOINT: Final = "http://0.0.0.0:8080/healthz"
