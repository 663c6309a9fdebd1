"""A fake clock, a fake runtime and recorded outputs for the controller's in-process tests.

The fake runtime is the policy: its chunk is ``base + state[0]`` for every action (so each
chunk says which observation made it), it can take time on the fake clock, return NaN, raise,
or call back into the test while it "computes" (a reset arriving mid-inference).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from snapflow_ros.control import (
    ActionLimits,
    BlendConfig,
    CommandLoop,
    InputSet,
    InputSlot,
    PolicyController,
    Session,
    Settings,
)
from snapflow_ros.control.status import StatusEvent

DT = 0.1
HORIZON = 5
DIM = 2
S = 1_000_000_000  # ns per second


class FakeClock:
    """Node clock in ns; moves only when told."""

    def __init__(self, t_s: float = 100.0) -> None:
        self.ns = int(t_s * S)

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> int:
        self.ns += int(round(seconds * S))
        return self.ns

    @property
    def s(self) -> float:
        return self.ns / S


@dataclass
class Msg:
    """An input message: a value, and a header stamp set by the test."""

    value: Any
    bad: str = ""  # the slot's check raises this


class Timings:
    def __init__(self, total: float) -> None:
        self.total = total

    def as_dict(self) -> dict[str, float]:
        return {
            "preprocess": 0.0,
            "prefix": 0.0,
            "denoise": self.total,
            "postprocess": 0.0,
            "total": self.total,
        }


@dataclass
class Chunk:
    actions: np.ndarray
    num_steps: int
    timings: Timings


@dataclass
class Obs:
    images: dict[str, np.ndarray]
    state: np.ndarray
    task: str
    stamp: float


class FakeRuntime:
    """See the module docstring."""

    action_dim = DIM
    chunk_size = HORIZON
    default_num_steps = 1

    def __init__(self, clock: FakeClock, latency_s: float = 0.0) -> None:
        self.clock = clock
        self.latency_s = latency_s
        self.calls: list[tuple[Obs, int | None]] = []
        self.seeds: list[int | None] = []
        self.nan = False
        self.error: Exception | None = None
        self.during: Callable[[], None] | None = None
        self.invalid = ""

    def validate(self, obs: Obs) -> None:
        if self.invalid:
            raise ValueError(self.invalid)

    def predict_chunk(self, obs: Obs, num_steps: int | None = None) -> Chunk:
        self.calls.append((obs, num_steps))
        if self.during is not None:
            self.during()
        self.clock.advance(self.latency_s)
        if self.error is not None:
            raise self.error
        base = np.arange(HORIZON, dtype=np.float64)[:, None] + float(obs.state[0])
        actions = np.repeat(base, DIM, axis=1)
        if self.nan:
            actions[1, 0] = np.nan
        return Chunk(actions, num_steps or self.default_num_steps, Timings(self.latency_s))

    def reset_noise(self, seed: int | None) -> None:
        self.seeds.append(seed)

    def describe(self) -> dict[str, Any]:
        return {"policy_type": "fake", "action_dim": DIM, "chunk_size": HORIZON}


@dataclass
class Recorder:
    """The controller's outputs, recorded."""

    commands: list[tuple[np.ndarray, int]] = field(default_factory=list)
    chunks: list[tuple[np.ndarray, int]] = field(default_factory=list)
    events: list[StatusEvent] = field(default_factory=list)
    logs: list[tuple[str, str]] = field(default_factory=list)

    def command(self, values: np.ndarray, t_ns: int) -> None:
        self.commands.append((np.array(values), t_ns))

    def chunk(self, actions: np.ndarray, stamp_ns: int) -> bool:
        self.chunks.append((np.array(actions), stamp_ns))
        return True

    def event(self, event: StatusEvent) -> None:
        self.events.append(event)

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    def of(self, kind: str) -> list[Any]:
        return [e for e in self.events if e.kind == kind]


def check(msg: Msg) -> None:
    if msg.bad:
        raise ValueError(msg.bad)


def make_inputs(stamp_mode: str = "oldest", max_task_chars: int = 1000) -> InputSet:
    camera = InputSlot("camera.front", "camera front (cam)", lambda m: m.value, check)
    state = InputSlot(
        "state.joints", "state joints (js)", lambda m: check(m) or m.value, eager=True
    )
    return InputSet(
        [("observation.images.front", camera)], [state], stamp_mode, "task", max_task_chars
    )


@dataclass
class Rig:
    """A controller on a fake clock and runtime, attached and active."""

    clock: FakeClock
    runtime: FakeRuntime
    out: Recorder
    inputs: InputSet
    loop: CommandLoop
    ctl: PolicyController

    def feed(
        self, value: float, stamp_s: float | None = None, bad: str = "", slot: str = ""
    ) -> int:
        """Both inputs (or one ``slot``) now, stamped ``stamp_s`` (default: now); returns the
        stamp in ns. The state's first value is ``value``."""
        stamp_ns = self.clock.ns if stamp_s is None else int(round(stamp_s * S))
        names = [slot] if slot else list(self.inputs.slots)
        for name in names:
            if name.startswith("camera"):
                msg = Msg(np.zeros((2, 2, 3), np.uint8), bad)
            else:
                msg = Msg(np.array([value, 0.0]), bad)
            self.inputs.slots[name].update(msg, self.clock.ns, stamp_ns)
        self.ctl.wake()
        return stamp_ns

    def step(self) -> None:
        """One inference look, then one tick, at the current time."""
        self.ctl.infer_once()
        self.ctl.tick()


def rig(
    settings: Settings | None = None,
    latency_s: float = 0.0,
    limits: ActionLimits | None = None,
    blend: str = "none",
    hold_mode: str = "none",
    stamp_mode: str = "oldest",
    latency_hint: float = 0.05,
    active: bool = True,
    inputs: InputSet | None = None,
) -> Rig:
    """A :class:`Rig` (``inputs``: others than :func:`make_inputs`' camera and state)."""
    clock = FakeClock()
    runtime = FakeRuntime(clock, latency_s)
    out = Recorder()
    settings = settings or Settings(
        task_text="pick", hold_mode=hold_mode, input_timeout=0.5, seed=7
    )
    ctl = PolicyController(clock, out, settings, name="/policy_node", monotonic=lambda: clock.s)
    inputs = inputs or make_inputs(stamp_mode)
    loop = CommandLoop(
        dt=DT,
        action_dim=DIM,
        blend=BlendConfig(blend),
        limits=limits,
        hold_mode=settings.hold_mode,
    )
    ctl.attach(
        Session(
            runtime=runtime,
            inputs=inputs,
            loop=loop,
            make_observation=Obs,
            control_rate=1.0 / DT,
            stats_window=50,
            latency_hint=latency_hint,
        )
    )
    if active:
        ctl.lifecycle_state = "active"
        ctl.activate()
    return Rig(clock, runtime, out, inputs, loop, ctl)
