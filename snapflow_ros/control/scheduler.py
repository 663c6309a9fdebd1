"""Timed execution of action chunks: latency compensation, blending, starvation detection.

The idea follows diffusion_policy's real-robot loop: every action of a chunk gets an absolute
time (``stamp + k * dt``, where ``stamp`` is the capture time of the observation the chunk was
computed from), actions whose time has already passed when the chunk arrives are dropped, and
the controller executes the rest on its own clock.

Conventions (all times in seconds, one clock):

* A chunk of ``H`` actions with capture time ``S`` schedules action ``k`` at ``t_k = S + k*dt``.
* When the chunk arrives at time ``now``, the actions with ``t_k < now`` are *skipped* (their
  time passed during inference): ``skipped = ceil((now - S) / dt)`` clipped to ``[0, H]``.
* The command for a control tick at time ``T`` is the first action not in the past:
  ``k = ceil((T - S) / dt)`` (so a tick never sends an action whose time has passed, and a
  tick exactly on ``t_k`` sends action ``k``). ``k >= H`` means the plan is exhausted: the
  executor *starves* until the next chunk arrives.
* Blending: the new chunk's first ``n`` future actions that the previous plan also covers
  (the *overlap*) are mixed with what the previous plan would have commanded at the same
  time: ``a = w_i * new + (1 - w_i) * old`` for ``i = 0..n-1`` with

  - ``none``: ``w_i = 1`` (switch at once),
  - ``linear``: ``w_i = (i + 1) / (n + 1)``,
  - ``exponential``: ``w_i = 1 - (1 - alpha) ** (i + 1)``.

  After the overlap the new chunk is used as is. ``max_blend_steps`` (>0) caps ``n``.
* A chunk whose capture stamp lies more than ``max_lead`` seconds after its arrival
  (``S - now > max_lead``: the clocks disagree; its first action, action 0, would be due that
  far ahead) is rejected and the current plan kept. Such a plan would command its first action
  early for that long and hold off the next re-plan (its remaining horizon would look long),
  so one bad stamp could freeze the robot on one command. The default bound, 0.25 s, is far
  above the lead of a healthy plan (at most one period, e.g. lock-step simulation) and far
  below a chunk's span.

Everything here is plain Python + numpy and is unit-tested without ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BLEND_MODES = ("none", "linear", "exponential")
EPS = 1e-6  # seconds of slack when comparing times computed from different clocks
DEFAULT_MAX_LEAD = 0.25  # s: largest accepted wait for a chunk's first action (see above)


@dataclass(frozen=True)
class BlendConfig:
    """How overlapping chunks are mixed (see the module docstring)."""

    mode: str = "linear"
    alpha: float = 0.5
    max_steps: int = 0

    def __post_init__(self) -> None:
        if self.mode not in BLEND_MODES:
            raise ValueError(f"blend mode must be one of {BLEND_MODES}, got {self.mode!r}")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"blend alpha must be in (0, 1], got {self.alpha}")
        if self.max_steps < 0:
            raise ValueError(f"max blend steps must be >= 0, got {self.max_steps}")

    def weights(self, n: int) -> np.ndarray:
        """Weights of the NEW chunk for an overlap of ``n`` actions."""
        i = np.arange(n, dtype=np.float64)
        if self.mode == "none":
            return np.ones(n)
        if self.mode == "linear":
            return (i + 1.0) / (n + 1.0)
        return 1.0 - (1.0 - self.alpha) ** (i + 1.0)


@dataclass(frozen=True)
class MergeResult:
    """What happened when a chunk was added."""

    accepted: bool
    skipped: int
    overlap: int
    horizon: int
    reason: str = ""
    early: bool = False  # rejected because its first action lies too far in the future


def action_index(t: float, stamp: float, dt: float) -> int:
    """Index of the first action of a chunk stamped ``stamp`` whose time is not before ``t``."""
    return int(math.ceil((t - stamp) / dt - EPS))


def skipped_actions(now: float, stamp: float, dt: float, horizon: int) -> int:
    """Number of actions of a chunk whose time has passed at ``now`` (0..horizon)."""
    return min(max(action_index(now, stamp, dt), 0), horizon)


class Plan:
    """An executable timed trajectory: ``values[k]`` is due at ``stamp + k*dt``, ``k >= first``."""

    __slots__ = ("chunk_id", "dt", "first", "stamp", "values")

    def __init__(
        self, values: np.ndarray, stamp: float, dt: float, first: int = 0, chunk_id: int = 0
    ) -> None:
        self.values = values
        self.stamp = float(stamp)
        self.dt = float(dt)
        self.first = int(first)
        self.chunk_id = int(chunk_id)

    @property
    def horizon(self) -> int:
        """Number of actions (including the skipped ones)."""
        return int(self.values.shape[0])

    @property
    def end_time(self) -> float:
        """Time of the last action."""
        return self.stamp + (self.horizon - 1) * self.dt

    def index_at(self, t: float) -> int | None:
        """Index of the action to command at ``t``, or None when the plan is exhausted."""
        k = max(action_index(t, self.stamp, self.dt), self.first)
        return k if k < self.horizon else None

    def value_at(self, t: float) -> np.ndarray | None:
        """Action to command at ``t`` (None when exhausted)."""
        k = self.index_at(t)
        return None if k is None else self.values[k]


class ChunkScheduler:
    """Turns a stream of timed chunks into per-tick commands (not thread-safe: lock outside)."""

    def __init__(
        self, dt: float, blend: BlendConfig | None = None, max_lead: float = DEFAULT_MAX_LEAD
    ) -> None:
        if not dt > 0:
            raise ValueError(f"dt must be > 0, got {dt}")
        if not 0 <= max_lead < math.inf:
            raise ValueError(f"max_lead must be finite and >= 0, got {max_lead}")
        self.dt = float(dt)
        self.blend = blend or BlendConfig()
        self.max_lead = float(max_lead)
        self.plan: Plan | None = None
        self._next_id = 0

    def clear(self) -> None:
        """Drop the current plan (nothing is commanded until the next chunk)."""
        self.plan = None

    def add_chunk(self, actions: np.ndarray, stamp: float, now: float) -> MergeResult:
        """Schedule ``actions`` (H x D) captured at ``stamp``, arriving at ``now``."""
        values = np.asarray(actions, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] < 1:
            raise ValueError(f"a chunk must be H x D with H >= 1, got shape {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError("a chunk contains NaN/inf")
        horizon = values.shape[0]
        skipped = skipped_actions(now, stamp, self.dt, horizon)
        if skipped >= horizon:
            return MergeResult(False, skipped, 0, horizon, "every action's time already passed")
        lead = stamp - now
        if lead > self.max_lead + EPS:
            reason = f"its stamp is {lead:.3f} s ahead of now (max_lead {self.max_lead:g} s)"
            return MergeResult(False, skipped, 0, horizon, reason, early=True)
        old = self.plan
        if old is not None and old.values.shape[1] != values.shape[1]:
            old = None  # the action size changed (new policy): nothing to blend with
        blended = values.copy()
        overlap = 0
        if old is not None and self.blend.mode != "none":
            old_vals = []
            for k in range(skipped, horizon):
                v = old.value_at(stamp + k * self.dt)
                if v is None:
                    break
                old_vals.append(v)
            overlap = len(old_vals)
            if self.blend.max_steps:
                overlap = min(overlap, self.blend.max_steps)
            if overlap:
                w = self.blend.weights(overlap)[:, None]
                seg = slice(skipped, skipped + overlap)
                blended[seg] = w * values[seg] + (1.0 - w) * np.asarray(old_vals[:overlap])
        elif old is not None:
            # mode "none": report how many actions replaced the old plan's (for statistics)
            for k in range(skipped, horizon):
                if old.value_at(stamp + k * self.dt) is None:
                    break
                overlap += 1
        self._next_id += 1
        self.plan = Plan(blended, stamp, self.dt, first=skipped, chunk_id=self._next_id)
        return MergeResult(True, skipped, overlap, horizon)

    def command_at(self, t: float) -> np.ndarray | None:
        """The action to command at tick time ``t`` (None: no plan, or the plan ran out)."""
        if self.plan is None:
            return None
        return self.plan.value_at(t)

    def remaining(self, now: float) -> float:
        """Seconds of plan left after ``now`` (time of the last action minus now; <0: none)."""
        if self.plan is None:
            return -math.inf
        return self.plan.end_time - now

    def needs_chunk(self, now: float, threshold: float) -> bool:
        """True when the remaining horizon has dropped below ``threshold`` seconds."""
        return self.remaining(now) < threshold
