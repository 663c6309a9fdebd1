"""The policy node's status protocol: typed events, one encoder, one decoder (no ROS).

The node publishes one JSON object per ``std_msgs/String`` on ``~/status``. Every event has
``event`` (its kind), ``version`` (:data:`VERSION`), ``node`` (the node's full name) and
``t_ns`` (node clock when it was sent), then the fields of its class below:

* ``chunk`` (:class:`ChunkEvent`): one per chunk the node computed;
* ``rejected`` (:class:`RejectedEvent`): an observation (or a policy output) the node refused
  as malformed, stamped as its chunk would have been; at most one per input per second
  (``suppressed``: how many of that input's rejections were not announced since its last);
* ``periodic`` (:class:`PeriodicEvent`): the whole status report, at ``status_rate``;
* ``transition`` (:class:`TransitionEvent`), ``reset``, ``pause``, ``resume``.

:func:`encode` writes an event; :func:`decode` reads one back, from text or from an already
parsed object. Decoding never raises: anything that is not an event of a known kind gives
None, a field of the wrong type or a missing one gets its default (None for stamps), so older
recordings (events without ``version``) still decode. Floats are written with 6 decimals and
NaN/inf as null.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

VERSION = 1  # bump when a field changes meaning; added fields keep the version


@dataclass
class StatusEvent:
    """Fields every event has (see the module docstring)."""

    KIND: ClassVar[str] = ""
    node: str = ""
    t_ns: int | None = None
    version: int = VERSION

    @property
    def kind(self) -> str:
        """The ``event`` field of this event."""
        return self.KIND


@dataclass
class ChunkEvent(StatusEvent):
    """A chunk the node computed: its observation stamp, when inference was triggered, when
    the chunk was received (merged) and published (node clock, ns); what the merge did; the
    runtime's stage timings (s); conversion, node overhead and input latency (s); the
    control period ``dt`` (s)."""

    KIND: ClassVar[str] = "chunk"
    chunk_id: int | None = None
    accepted: bool = False
    published: bool = False
    stamp_ns: int | None = None
    trigger_ns: int | None = None
    received_ns: int | None = None
    published_ns: int | None = None
    skipped: int = 0
    overlap: int = 0
    horizon: int = 0
    num_steps: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    convert_s: float | None = None
    overhead_s: float | None = None
    input_latency_s: float | None = None
    dt: float | None = None


@dataclass
class RejectedEvent(StatusEvent):
    """An observation the node attempted and refused as malformed: the stamp its chunk would
    have carried, the input that failed (``state.joints``, ``camera.front``, ``task``,
    ``observation`` or ``policy`` for a non-finite output) and why; ``suppressed``: the
    rejections of the same input not announced since its previous event (rate limit)."""

    KIND: ClassVar[str] = "rejected"
    stamp_ns: int | None = None
    input: str = ""
    reason: str = ""
    suppressed: int = 0


@dataclass
class TransitionEvent(StatusEvent):
    """A lifecycle transition: the new state, and the error of a failed configure."""

    KIND: ClassVar[str] = "transition"
    state: str = ""
    error: str = ""


@dataclass
class ResetEvent(StatusEvent):
    """``~/reset`` was called: plan, statistics and noise seed reset."""

    KIND: ClassVar[str] = "reset"


@dataclass
class PauseEvent(StatusEvent):
    """``~/pause`` was called: no inference, no commands (hold)."""

    KIND: ClassVar[str] = "pause"


@dataclass
class ResumeEvent(StatusEvent):
    """``~/resume`` was called."""

    KIND: ClassVar[str] = "resume"


@dataclass
class PeriodicEvent(StatusEvent):
    """The node's status report (also the source of ``/diagnostics``).

    ``problems``: ``{severity, input, message}`` per problem; ``policy``: the runtime's
    description; ``latency_s``: per stage p50/p95/p99/count; ``command_jitter_s``: mean, std,
    p99/max absolute deviation of command intervals; ``counters``: the command loop's and the
    node's event counts; ``inputs``: per input topic, count, ages, errors, last error.
    """

    KIND: ClassVar[str] = "periodic"
    state: str = ""
    active: bool = False
    paused: bool = False
    dry_run: bool = False
    healthy: bool = False
    problems: list[dict[str, Any]] = field(default_factory=list)
    policy: dict[str, Any] | None = None
    configure_error: str = ""
    num_steps: int | None = None
    control_rate: float | None = None
    replan_threshold_s: float | None = None
    remaining_s: float | None = None
    chunk_rate_hz: float | None = None
    command_rate_hz: float | None = None
    command_jitter_s: dict[str, Any] = field(default_factory=dict)
    latency_s: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    task: str | None = None


EVENT_TYPES: dict[str, type[StatusEvent]] = {
    cls.KIND: cls
    for cls in (
        ChunkEvent,
        RejectedEvent,
        TransitionEvent,
        ResetEvent,
        PauseEvent,
        ResumeEvent,
        PeriodicEvent,
    )
}


def jsonable(value: Any) -> Any:
    """``value`` with floats rounded to 6 decimals, NaN/inf as None, numpy scalars as Python."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    return value


def to_dict(event: StatusEvent) -> dict[str, Any]:
    """The JSON object of ``event`` (``event`` and ``version`` first)."""
    data = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    return jsonable({"event": event.KIND, "version": data.pop("version"), **data})


def encode(event: StatusEvent) -> str:
    """``event`` as the JSON text the node publishes."""
    return json.dumps(to_dict(event))


def _accepts(hint: Any, value: Any) -> bool:
    """Whether a decoded JSON value fits a field annotation."""
    if hint is Any:
        return True
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_accepts(arg, value) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint) or hint
    if origin is bool:
        return isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, origin)


def _converted(hint: Any, value: Any) -> Any:
    floats = hint is float or float in typing.get_args(hint)
    ints = hint is int or int in typing.get_args(hint)
    if floats and not ints and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@functools.cache
def _field_hints(cls: type[StatusEvent]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(data: str | bytes | dict[str, Any] | Any) -> StatusEvent | None:
    """An event from its JSON text (or parsed object); None when it is not a known event."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError:
            return None
    if not isinstance(data, dict):
        return None
    cls = EVENT_TYPES.get(data.get("event"))  # type: ignore[arg-type]
    if cls is None:
        return None
    hints = _field_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data and _accepts(hints[f.name], data[f.name]):
            values[f.name] = _converted(hints[f.name], data[f.name])
    if "version" not in data:
        values["version"] = 0  # written before the protocol had a version
    return cls(**values)
