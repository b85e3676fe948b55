"""The values a sink author handles: Datum in, Response out, Message for follow-ups.

Pure data, no gRPC: the SDK server converts them to and from the wire (codec.py), and the
data plane uses the very same types between its sources, its routing and its sinks, so a
built-in sink and a user-defined one are driven the same way.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TypeAlias

# The zero time (a Datum's default event time and watermark) and the shared empty headers map:
# one instance each, so hot-path decoders can pass them without building new ones.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class Status(enum.IntEnum):
    """Result statuses; the numbers are the wire values of `sink.v1.Status`."""

    SUCCESS = 0
    FAILURE = 1
    FALLBACK = 2
    SERVE = 3
    ON_SUCCESS = 4
    NACK = 5


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Metadata:
    """Numaflow's message metadata, carried through untouched."""

    previous_vertex: str = ""
    sys_metadata: Mapping[str, Mapping[str, bytes]] = field(default_factory=dict)
    user_metadata: Mapping[str, Mapping[str, bytes]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Datum:
    """One message handed to a sink.

    `id` is unique within a batch, globally unique and stable across redeliveries
    (`<topic>:<partition>:<offset>` for Kafka): use it as the idempotency key.
    Times are timezone-aware (UTC).
    """

    id: str
    value: bytes
    keys: tuple[str, ...] = ()
    event_time: datetime = EPOCH
    watermark: datetime = EPOCH
    headers: Mapping[str, str] = field(default_factory=lambda: NO_HEADERS)
    metadata: Metadata | None = None

    def __post_init__(self) -> None:
        # Accept lists and naive times from callers; store tuples and aware times.
        if not isinstance(self.keys, tuple):
            object.__setattr__(self, "keys", tuple(self.keys))
        if self.event_time.tzinfo is None:
            object.__setattr__(self, "event_time", _aware(self.event_time))
        if self.watermark.tzinfo is None:
            object.__setattr__(self, "watermark", _aware(self.watermark))
        if not isinstance(self.headers, MappingProxyType):
            object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))

    def with_headers(self, extra: Mapping[str, str]) -> Datum:
        """A copy with `extra` headers added (they win over existing ones)."""
        return replace(self, headers={**self.headers, **extra})

    def __reduce__(self) -> tuple[Any, ...]:
        # The read-only headers view cannot be pickled; its dict can.
        return (
            Datum,
            (
                self.id,
                self.value,
                self.keys,
                self.event_time,
                self.watermark,
                dict(self.headers),
                self.metadata,
            ),
        )


SlotSetter: TypeAlias = Callable[[Any, Any], None]


def slot_setters(cls: type, *names: str) -> tuple[SlotSetter, ...]:
    """The raw setters of slots of a frozen dataclass (or of a class it inherits them from).

    For hot-path constructors that build a frozen instance without running `__init__` and
    `__post_init__`: `object.__new__(cls)`, then one setter call per field. The caller owns the
    invariants `__post_init__` would have enforced.
    """
    return tuple(getattr(cls, name).__set__ for name in names)


_new_object = object.__new__
(
    _set_id,
    _set_value,
    _set_keys,
    _set_event_time,
    _set_watermark,
    _set_headers,
    _set_metadata,
) = slot_setters(Datum, *Datum.__dataclass_fields__)


def trusted_datum(
    id: str,
    value: bytes,
    keys: tuple[str, ...],
    event_time: datetime,
    watermark: datetime,
    headers: Mapping[str, str],
    metadata: Metadata | None,
) -> Datum:
    """A Datum from parts that are already in normal form, skipping the checks of Datum().

    For decoders on the hot path (the wire codec, sources): `keys` must be a tuple, both times
    timezone-aware, `headers` a read-only mapping (a MappingProxyType or the shared empty one).
    About twice as fast as the constructor; the result is indistinguishable from Datum(...).
    """
    d: Datum = _new_object(Datum)
    _set_id(d, id)
    _set_value(d, value)
    _set_keys(d, keys)
    _set_event_time(d, event_time)
    _set_watermark(d, watermark)
    _set_headers(d, headers)
    _set_metadata(d, metadata)
    return d


@dataclass(frozen=True, slots=True)
class Message:
    """A message a sink asks to send on (today: the ON_SUCCESS follow-up).

    `headers` is udsink's extension of the wire contract; Numaflow ignores it.
    """

    value: bytes
    keys: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=lambda: NO_HEADERS)

    def __post_init__(self) -> None:
        if not isinstance(self.keys, tuple):
            object.__setattr__(self, "keys", tuple(self.keys))
        if not isinstance(self.headers, MappingProxyType):
            object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))

    def __reduce__(self) -> tuple[Any, ...]:
        # The read-only headers view cannot be pickled; its dict can.
        return (Message, (self.value, self.keys, dict(self.headers)))

    def with_keys(self, keys: Iterable[str]) -> Message:
        return replace(self, keys=tuple(keys))

    def add_headers(self, headers: Mapping[str, str] | None = None, **more: str) -> Message:
        """A copy with headers added; later values win. `msg.add_headers({"k": "v"}, x="y")`."""
        return replace(self, headers={**self.headers, **(headers or {}), **more})


# No __slots__ here, on purpose: the defaults then live on the class, so the hot constructors
# (ok, failure) fill only the fields they set, about three times faster than the generated
# __init__ of a frozen dataclass. A sink builds one Response per datum.
@dataclass(frozen=True)
class Response:
    """The outcome of one datum. Build it with the class methods, one per status."""

    id: str
    status: Status
    err: str = ""
    serve_payload: bytes | None = None
    message: Message | None = None
    nack_delay_ms: int | None = None
    nack_reason: str | None = None
    nack_max_deliveries: int | None = None

    @classmethod
    def ok(cls, id: str) -> Response:
        """Persisted: counts toward the commit."""
        r = _new_object(cls)
        fields = r.__dict__
        fields["id"] = id
        fields["status"] = Status.SUCCESS
        return r

    @classmethod
    def failure(cls, id: str, err: str) -> Response:
        """Transient failure worth retrying; `err` says what went wrong."""
        r = _new_object(cls)
        fields = r.__dict__
        fields["id"] = id
        fields["status"] = Status.FAILURE
        fields["err"] = err
        return r

    @classmethod
    def fallback(cls, id: str, err: str = "") -> Response:
        """The primary cannot take it: write it to the fallback sink at once."""
        return cls(id, Status.FALLBACK, err=err)

    @classmethod
    def serve(cls, id: str, payload: bytes) -> Response:
        """Done, and `payload` goes to the serve sink, keyed by the datum id."""
        return cls(id, Status.SERVE, serve_payload=payload)

    @classmethod
    def on_success(cls, id: str, message: Message | None = None) -> Response:
        """Persisted, and `message` (or the original datum) goes to the on-success sink."""
        return cls(id, Status.ON_SUCCESS, message=message)

    @classmethod
    def nack(
        cls,
        id: str,
        delay: int | None = None,
        reason: str | None = None,
        max_deliveries: int | None = None,
    ) -> Response:
        """Not now: hold it and deliver it again after `delay` ms (config default when None).

        No retry budget is used; `max_deliveries` bounds how often, then onFailure applies.
        """
        return cls(
            id,
            Status.NACK,
            nack_delay_ms=delay,
            nack_reason=reason,
            nack_max_deliveries=max_deliveries,
        )


class Responses:
    """The responses of one batch, in any order, one per datum."""

    __slots__ = ("_items",)

    def __init__(self, *responses: Response) -> None:
        self._items: list[Response] = list(responses)

    @classmethod
    def of(cls, responses: Iterable[Response]) -> Responses:
        r = cls()
        r._items.extend(responses)
        return r

    def append(self, response: Response) -> Responses:
        self._items.append(response)
        return self

    def __iter__(self) -> Iterator[Response]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Responses({self._items!r})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Responses) and self._items == other._items

    __hash__ = None  # type: ignore[assignment]
