"""The LIBERO bridge's episode events: typed, one encoder, one decoder (no ROS).

The bridge publishes one JSON object per ``std_msgs/String`` on ``libero/episode`` (reliable,
transient local) and answers ``~/reset`` / ``~/next_episode`` with the ``start`` event's JSON.
Every object has ``event`` (its kind) first, then the fields of its class in class order:

* ``start`` (:class:`EpisodeStart`): an episode began (after a reset);
* ``end`` (:class:`EpisodeEnd`): an episode ended, with its result, counters and timings.

:func:`to_json` writes an event (the bridge's only encoder), :func:`decode_episode_event`
reads one back (every reader's decoder). Decoding is strict: text that is not JSON, not an
object, of an unknown kind, without a field or with a field of the wrong type raises
``ValueError`` saying which. Keys it does not know are ignored (a newer bridge). Fields that
older bridges did not write (``rendered_steps``, ``objects`` of ``end``) are None when absent
and left out when None, so an old recording decodes and encodes back to the same text.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

_LATER = {"added_later": True}  # metadata: absent from older bridges' events (None: left out)
# An object counts as lifted when it rose this far above its start height (settling and
# pushes move objects by millimetres; a grasped and lifted one rises by centimetres).
LIFT_M = 0.03


@dataclass(frozen=True, kw_only=True)
class CommandCounts:
    """The commands of an episode: received, applied to the simulation, rejected (malformed),
    clipped to [-1, 1], stale (lock-step: stamped before the current step)."""

    received: int
    applied: int
    rejected: int
    clipped: int
    stale: int


@dataclass(frozen=True, kw_only=True)
class EpisodeEvent:
    """What every episode event has: its kind (the ``event`` key on the wire)."""

    KIND: ClassVar[str] = ""

    @property
    def kind(self) -> str:
        """The ``event`` field of this event."""
        return self.KIND


@dataclass(frozen=True, kw_only=True)
class EpisodeStart(EpisodeEvent):
    """An episode began: its id, task and initial state, step limit, timing mode, simulation
    time of its start and the stamp of its first observation (ns; ``stamps``: ``sim`` in
    lock-step, ``wall`` in real time), and how long the reset and the environment's
    construction took (s)."""

    KIND: ClassVar[str] = "start"
    episode_id: int
    suite: str
    task_index: int
    task: str
    task_name: str
    init_state_index: int
    max_steps: int
    mode: str
    start_ns: int
    first_stamp_ns: int
    stamps: str
    reset_s: float
    build_s: float


@dataclass(frozen=True, kw_only=True)
class EpisodeEnd(EpisodeEvent):
    """An episode ended: why (``reason``: ``success``, ``max_steps``, ``env_done``, ``reset``,
    ``sim_error``, ``shutdown``; ``success`` only for ``success``), its steps, simulated and
    wall time (s), mean step / publish / command-wait times (s, None without samples), the
    commands, held / no-op / kicked / overrun / rendered steps, the simulation time at its
    end (ns), the final 8-D LeRobot state and, per movable object, ``max_rise_m``,
    ``final_rise_m`` and ``moved_xy_m``, plus, for an object that rose :data:`LIFT_M`, where
    the hand held it: ``lift_eef_dx_m``, ``lift_eef_dy_m``, ``lift_eef_dz_m`` (end-effector
    minus object position, world frame, at the first step it was that high)."""

    KIND: ClassVar[str] = "end"
    episode_id: int
    suite: str
    task_index: int
    task: str
    init_state_index: int
    success: bool
    steps: int
    reason: str
    max_steps: int
    mode: str
    sim_time_s: float
    wall_s: float
    steps_per_s: float | None
    step_mean_s: float | None
    publish_mean_s: float | None
    wait_mean_s: float | None
    commands: CommandCounts
    held_steps: int
    noop_steps: int
    kicks: int
    overruns: int
    rendered_steps: int | None = field(default=None, metadata=_LATER)
    end_ns: int
    final_state: list[float]
    objects: dict[str, dict[str, float]] | None = field(default=None, metadata=_LATER)


EVENT_TYPES: dict[str, type[EpisodeEvent]] = {cls.KIND: cls for cls in (EpisodeStart, EpisodeEnd)}


def to_json(event: EpisodeEvent) -> str:
    """``event`` as the JSON text the bridge publishes (``event`` first, then its fields)."""
    data: dict[str, Any] = {"event": event.kind}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if value is None and f.metadata.get("added_later"):
            continue
        data[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return json.dumps(data)


def decode_episode_event(text: str | bytes) -> EpisodeStart | EpisodeEnd:
    """The event in ``text`` (one message of ``libero/episode``, or a reset's reply);
    ValueError when it is not JSON, not an object, of an unknown kind, lacks a field or has
    one of the wrong type."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"episode event is not JSON ({exc}): {_preview(text)}") from None
    if not isinstance(data, dict):
        raise ValueError(f"episode event is not a JSON object: {_preview(text)}")
    if "event" not in data:
        raise ValueError(f"episode event without an 'event' key: {_preview(text)}")
    kind = data["event"]
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        known = ", ".join(repr(k) for k in sorted(EVENT_TYPES))
        raise ValueError(f"unknown episode event {kind!r} (known: {known})")
    return _build(cls, data, f"episode event {kind!r}", "")  # type: ignore[return-value]


def _preview(text: str | bytes, limit: int = 80) -> str:
    shown = text if isinstance(text, str) else text.decode("utf-8", "replace")
    return repr(shown if len(shown) <= limit else shown[:limit] + "...")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, data: dict[str, Any], what: str, prefix: str) -> Any:
    """An instance of the dataclass ``cls`` from a JSON object, every field checked."""
    fields = dataclasses.fields(cls)
    missing = [
        f"{prefix}{f.name}"
        for f in fields
        if f.name not in data and f.default is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"{what} lacks {', '.join(repr(m) for m in missing)}")
    hints = _hints(cls)
    values = {
        f.name: _checked(hints[f.name], data[f.name], what, f"{prefix}{f.name}")
        for f in fields
        if f.name in data
    }
    return cls(**values)


def _checked(hint: Any, value: Any, what: str, where: str) -> Any:
    """``value`` if it fits the annotation ``hint`` (nested dataclasses built), else
    ValueError naming the field."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise _wrong(what, where, value, "an object")
        return _build(hint, value, what, f"{where}.")
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _checked(args[0], value, what, where)
    origin = typing.get_origin(hint)
    if origin is list:
        if not isinstance(value, list):
            raise _wrong(what, where, value, "a list")
        (item,) = typing.get_args(hint)
        return [_checked(item, v, what, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _wrong(what, where, value, "an object")
        item = typing.get_args(hint)[1]
        return {k: _checked(item, v, what, f"{where}.{k}") for k, v in value.items()}
    number = isinstance(value, int | float) and not isinstance(value, bool)
    fits = {
        bool: isinstance(value, bool),
        int: number and isinstance(value, int),
        float: number,  # an integral JSON number is a float too
        str: isinstance(value, str),
    }[hint]
    if not fits:
        raise _wrong(what, where, value, hint.__name__)
    return value


def _wrong(what: str, where: str, value: Any, expected: str) -> ValueError:
    shown = f"{value!r} ({type(value).__name__})"
    return ValueError(f"{what}: {where!r} is {shown}, expected {expected}")
