"""The words of the UDSink's validation rules, in one table for both of their homes.

Every rule is enforced twice: by the models in `api/` (for `udsink render`, `udsink run` and
the operator) and by the CRD's OpenAPI/CEL (for `kubectl apply`). A `Message` is written once
here as a template with named slots; the models fill the slots with Python values (`text`),
and the CRD gets a CEL `messageExpression` that fills the same slots with CEL expressions
(`cel`), so both say the same words about the same value. Kept apart from `api/` because it
is pure text and CEL quoting, shared by the models and the CRD generator alike.
"""

from __future__ import annotations

import string
from dataclasses import dataclass


def cel_string(text: str) -> str:
    """`text` as a CEL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cel_quoted(expr: str) -> str:
    """A CEL expression for the string `expr` in double quotes, as the operator shows values
    (json.dumps of a string)."""
    return f"'\"' + {expr} + '\"'"


@dataclass(frozen=True)
class Message:
    """A rule's message with named `{slots}`."""

    template: str

    def text(self, **values: object) -> str:
        """The message with Python values in its slots (the operator's wording)."""
        return self.template.format(**values)

    def cel(self, **exprs: str) -> str:
        """A CEL messageExpression: the same message, each slot a CEL string expression."""
        pieces: list[str] = []
        for literal, slot, _spec, _conversion in string.Formatter().parse(self.template):
            if literal:
                pieces.append(cel_string(literal))
            if slot is not None:
                pieces.append(f"({exprs[slot]})")
        return " + ".join(pieces) or "''"


def must_be(accepted: str) -> Message:
    """'must be <accepted> (got "<value>")': the message of a value that fails a pattern."""
    return Message("must be " + accepted.replace("{", "{{").replace("}", "}}") + " (got {got})")


# --- Strings of a given shape (api.Matches) ---

DNS_SUBDOMAIN = must_be("a DNS subdomain: lower-case a-z, 0-9, '-' and '.'")
RESOURCE_NAME = must_be("a DNS-1035 label: lower-case a-z, 0-9 and '-', starting with a letter")
RESOURCE_NAME_FOR_CHILDREN = Message(
    "metadata.name must be a DNS-1035 label of at most {max} characters (it names a Service "
    "`<name>{suffix}`) (got {got})"
)
DNS_LABEL = must_be("a DNS label: lower-case a-z, 0-9 and '-'")
TOPIC = must_be("a Kafka topic: 1-249 characters of A-Z a-z 0-9 . _ -")
BROKER = must_be("host:port, for example kafka:9092")
ENV_NAME = must_be("a variable name: letters, digits, '_', '-', '.', not starting with a digit")
LABEL_KEY = must_be("a label key: [prefix/]name, the name up to 63 characters of A-Z a-z 0-9 - _ .")
LABEL_VALUE = must_be("a label value: up to 63 characters of A-Z a-z 0-9 - _ .")
SECRET_KEY = must_be("a Secret key: A-Z a-z 0-9 - _ .")
URL = must_be("an http(s) URL")
QUANTITY = must_be("a Kubernetes quantity such as 500m, 1, 256Mi")
FIELD_PATH = must_be(
    "a pod field the API server exposes: metadata.name, metadata.namespace, metadata.uid, "
    "metadata.labels['<key>'], metadata.annotations['<key>'], spec.nodeName, "
    "spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP or status.podIPs"
)
LOCALHOST_PROFILE = must_be(
    "a path relative to the kubelet's seccomp profile root (not absolute, no '..')"
)
DURATION = must_be(
    "a Go-style duration such as 100ms, 1s, 2m30s, 1h (units ns, us, ms, s, m, h; "
    "at most 6 digits before a decimal point)"
)
DURATION_BETWEEN = Message("must be between {low} and {high} (got {got})")

# --- Keys of maps ---
# The API server's cost estimate has no bound for a map key picked by a CEL expression, so
# these messages name the rule, not the key; the operator adds "(got 'the key')".

ANNOTATION_KEY = Message(
    "annotation keys must be [prefix/]name: a DNS subdomain prefix, the name up to 63 "
    "characters of A-Z a-z 0-9 - _ ."
)
LABEL_KEY_IN_MAP = Message(
    "label keys must be [prefix/]name: a DNS subdomain prefix, the name up to 63 "
    "characters of A-Z a-z 0-9 - _ ."
)
KAFKA_OWNED_KEY = Message("key {key} is owned by udsink ({hint}); keys udsink owns: {owned}")
KAFKA_OWNED_PREFIX = Message(
    "keys starting with {prefix} are owned by udsink ({hint}); keys udsink owns: {owned}"
)
RESERVED_HEADER = Message("header names starting with {prefix} carry keys and are reserved")
RESERVED_LABEL_PREFIX = Message("labels under {prefix} are reserved: udsink sets them")
ARGOCD_LABEL = Message("label {key} is Argo CD's tracking label and stays off pods")

# --- Cross-field rules ---

EXACTLY_ONE = Message("exactly one of {names} must be set (got {got})")
RESERVED_ENV = Message("{name} is set by udsink and may not be set here")
RESERVED_CONTAINER = Message("container name {name} is reserved (reserved: {reserved})")
CAP_BELOW_INTERVAL = Message("cap ({cap}) must be at least interval ({interval})")
# Local only (and the dry run): CEL cannot read a map value by key within the cost budget.
# Local only (and the dry run): CEL cannot read a map value by key within the cost budget.
REQUESTS_ABOVE_LIMITS = Message("requests.{resource} ({request}) must not exceed limits ({limit})")
TOLERATION_EXISTS_VALUE = Message(
    "operator Exists matches any value: remove value {value} or use operator Equal"
)
TOLERATION_EMPTY_KEY = Message(
    "an empty key matches every taint and needs operator Exists (got operator {operator})"
)
TOLERATION_SECONDS = Message(
    "tolerationSeconds applies to effect NoExecute only (got effect {effect})"
)
SELECTOR_VALUES = Message("operator {operator} needs {needs}")
SELECTOR_NUMBER = Message("operator {operator} compares with an integer (got {value})")
MATCH_FIELDS_KEY = Message("matchFields supports only key metadata.name with operator In or NotIn")
LOCALHOST_PROFILE_TYPE = Message("localhostProfile is only for type Localhost (got type {type})")
MIN_DOMAINS = Message(
    "minDomains applies to whenUnsatisfiable DoNotSchedule only (got whenUnsatisfiable {when})"
)
SPREAD_PAIRS = Message(
    "each topologyKey and whenUnsatisfiable pair may appear once (repeated: {repeated})"
)
