"""The per-tick command logic of the policy node, without ROS.

:class:`CommandLoop` owns the chunk scheduler, the action limits and the hold behaviour, and
counts what happened (commands, holds, starvation). The node calls :meth:`CommandLoop.add_chunk`
from its inference thread and :meth:`CommandLoop.tick` from its control timer (under one lock)
and publishes whatever the tick returns.

Starvation (the plan ran out while executing) is counted only once the clock has moved on
without a plan: a tick that finds no plan is provisional until a later tick still has none
(starvation) or the next chunk arrives with the clock still at that tick's time. The latter is
a lock-step simulation waiting for the policy (its clock stands still until it gets a
command): a *wait* (``plan_waits``), not a fault. On a wall clock, time always moves between a
tick and the next chunk, so every real starvation is still counted.

A clock that jumps forward by more than ``jump_after`` between two ticks (a simulator starting
its next episode, a bag played from a later point, a timer that stalled) is not starvation:
the plan ran out because time skipped, not because inference was slow. The loop drops the plan
(it was computed before the jump) and counts a ``clock_jumps`` event instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from snapflow_ros.control.limits import ActionLimits
from snapflow_ros.control.scheduler import (
    DEFAULT_MAX_LEAD,
    EPS,
    BlendConfig,
    ChunkScheduler,
    MergeResult,
)

HOLD_MODES = ("none", "last", "zero")
DEFAULT_JUMP_AFTER = 1.0  # s of clock between two ticks that count as a jump, not starvation


@dataclass
class LoopCounters:
    """Event counts since the last reset."""

    ticks: int = 0
    commands: int = 0
    holds: int = 0
    starved_ticks: int = 0
    starvation_events: int = 0
    plan_waits: int = 0
    clock_jumps: int = 0
    unhealthy_ticks: int = 0
    chunks_accepted: int = 0
    chunks_late: int = 0
    chunks_early: int = 0
    actions_skipped: int = 0

    def as_dict(self) -> dict[str, int]:
        """Counters as a plain dict."""
        return dict(self.__dict__)


@dataclass
class TickResult:
    """What one control tick decided.

    ``command`` is what to publish (None: publish nothing); ``source`` is ``plan`` (from a
    chunk), ``hold`` (the hold command) or ``idle`` (nothing to send). ``starved``: no plan
    while executing (counted as starvation only once the clock moves on, see the module).
    """

    command: np.ndarray | None
    source: str
    starved: bool = False
    chunk_id: int = 0
    index: int | None = None


def auto_replan_threshold(latency: float, dt: float, horizon: int, margin: float = 1.5) -> float:
    """Remaining-horizon threshold (s) that lets a new chunk arrive before the plan runs out.

    ``margin * latency + 2 * dt`` (latency: a high percentile of trigger-to-chunk time),
    at least one period and at most the chunk's span (then inference runs back to back).
    """
    span = max(horizon - 1, 1) * dt
    return float(min(max(margin * max(latency, 0.0) + 2.0 * dt, dt), span))


@dataclass
class CommandLoop:
    """Chunk scheduling + limits + hold for a fixed control period ``dt``."""

    dt: float
    action_dim: int
    blend: BlendConfig = field(default_factory=BlendConfig)
    limits: ActionLimits | None = None
    hold_mode: str = "none"
    max_lead: float = DEFAULT_MAX_LEAD
    jump_after: float = DEFAULT_JUMP_AFTER

    def __post_init__(self) -> None:
        if self.hold_mode not in HOLD_MODES:
            raise ValueError(f"hold mode must be one of {HOLD_MODES}, got {self.hold_mode!r}")
        if self.limits is None:
            self.limits = ActionLimits.build(self.action_dim)
        if self.limits.dim != self.action_dim:
            raise ValueError(
                f"limits are for {self.limits.dim} dims, actions have {self.action_dim}"
            )
        if not self.jump_after > 0:
            raise ValueError(f"jump_after must be > 0, got {self.jump_after}")
        self.scheduler = ChunkScheduler(self.dt, self.blend, self.max_lead)
        self.counters = LoopCounters()
        self.last_command: np.ndarray | None = None
        self.last_chunk: np.ndarray | None = None  # the last chunk added, clamped
        self._executing = False
        self._starving = False
        self._no_plan_since: float | None = None  # time of the first tick without a plan
        self._pending_ticks = 0  # ticks without a plan not yet counted as starved
        self._last_tick: float | None = None  # clock of the previous tick
        self.last_jump = 0.0  # s, the latest forward clock jump

    # ------------------------------------------------------------------ chunks
    def add_chunk(self, actions: np.ndarray, stamp: float, now: float) -> MergeResult:
        """Clamp a chunk to the bounds (kept in :attr:`last_chunk`, what a node publishes)
        and schedule it (raises ValueError on NaN/shape)."""
        clamped = self.limits.clamp_chunk(actions)
        self.last_chunk = clamped
        result = self.scheduler.add_chunk(clamped, stamp, now)
        self.counters.actions_skipped += result.skipped
        if result.accepted:
            self.counters.chunks_accepted += 1
            if self._no_plan_since is not None:
                if now > self._no_plan_since + EPS:
                    self._count_starvation()
                else:
                    self.counters.plan_waits += 1  # the clock waited for this chunk
            self._end_no_plan()
        elif result.early:
            self.counters.chunks_early += 1
        else:
            self.counters.chunks_late += 1
        return result

    def set_max_lead(self, seconds: float) -> None:
        """Change the largest accepted lead of a chunk's first action (see the scheduler)."""
        if not 0 <= seconds < np.inf:
            raise ValueError(f"max_lead must be finite and >= 0, got {seconds}")
        self.max_lead = self.scheduler.max_lead = float(seconds)

    def needs_chunk(self, now: float, threshold: float) -> bool:
        """True when the plan's remaining horizon is below ``threshold`` seconds."""
        return self.scheduler.needs_chunk(now, threshold)

    def remaining(self, now: float) -> float:
        """Seconds of plan left (negative or -inf: none)."""
        return self.scheduler.remaining(now)

    # ------------------------------------------------------------------ ticks
    def hold_command(self) -> np.ndarray | None:
        """The command sent while holding (None: send nothing)."""
        if self.hold_mode == "last":
            return None if self.last_command is None else self.last_command.copy()
        if self.hold_mode == "zero":
            return self.limits.clamp(np.zeros(self.action_dim))
        return None

    def _hold(self, starved: bool = False) -> TickResult:
        cmd = self.hold_command()
        if cmd is None:
            return TickResult(None, "idle", starved)
        self.counters.holds += 1
        return TickResult(cmd, "hold", starved)

    def tick(self, now: float, healthy: bool = True) -> TickResult:
        """Decide the command for the tick at ``now``.

        ``healthy=False`` (stale/missing/bad inputs, paused) drops the plan and holds: nothing
        computed from earlier data is executed past that point. A forward clock jump of more
        than ``jump_after`` since the last tick drops the plan too (see the module).
        """
        self.counters.ticks += 1
        gap = 0.0 if self._last_tick is None else now - self._last_tick
        self._last_tick = now
        if gap > self.jump_after:
            self.counters.clock_jumps += 1
            self.last_jump = gap
            self.stop()  # what was planned before the jump is not executed after it
        if not healthy:
            self.counters.unhealthy_ticks += 1
            self.stop()
            return self._hold()
        plan = self.scheduler.plan
        index = plan.index_at(now) if plan is not None else None
        if plan is None or index is None:
            starved = self._executing
            if starved:
                self._pending_ticks += 1
                if self._no_plan_since is None:
                    self._no_plan_since = now
                elif now > self._no_plan_since + EPS:
                    self._count_starvation()  # the clock moved on and still no plan
            return self._hold(starved)
        cmd = self.limits.apply(plan.values[index], self.last_command)
        self.last_command = cmd
        self._executing = True
        self._end_no_plan()
        self.counters.commands += 1
        return TickResult(cmd, "plan", False, plan.chunk_id, index)

    def _count_starvation(self) -> None:
        self.counters.starved_ticks += self._pending_ticks
        self._pending_ticks = 0
        if not self._starving:
            self.counters.starvation_events += 1
        self._starving = True

    def _end_no_plan(self) -> None:
        self._no_plan_since = None
        self._pending_ticks = 0
        self._starving = False

    def stop(self) -> None:
        """Drop the plan; what follows a stop is not counted as starvation."""
        self.scheduler.clear()
        self._executing = False
        self._end_no_plan()

    def reset(self) -> None:
        """Drop the plan, the last command and every counter."""
        self.stop()
        self.last_command = None
        self._last_tick = None
        self.counters = LoopCounters()
