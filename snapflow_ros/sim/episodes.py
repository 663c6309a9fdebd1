"""The LIBERO bridge's logic without ROS: episodes, commands, the lock-step clock protocol and
real-time pacing.

:class:`EpisodeDriver` owns the simulation (built and stepped in one thread, which its
OpenGL context is bound to), the episode state machine (reset -> steps -> end: success, step
limit, reset, shutdown, simulation error), the latest validated command, the requests of the
services (reset, next initial state) and the episode counters. The ROS node around it only
converts messages (:class:`BridgeOutputs` turns observations, ``/clock`` values and episode
events into messages) and declares the parameters the driver reads through ``param(name)``.

Time:

* ``lockstep``: one simulation step per command. Observations are stamped with simulation
  time; ``/clock`` follows ``lockstep.stamp_lead`` behind them and advances one period per
  step, after ``lockstep.clock_delay`` (the policy node takes the inputs before its tick).
  A command is fresh when its stamp is at least the current clock (or, unstamped, when it
  arrived after the last observation). When none comes, the driver *kicks*: it publishes the
  observation again and steps ``/clock`` one period back and forward, so the node's timer
  fires again at the same time (waits double up to ``lockstep.kick_max``).
* ``realtime``: a wall clock at the control frequency; a step without a new command applies a
  no-op (``realtime.missing: noop``) or repeats the last command (``hold``, at most
  ``realtime.command_timeout`` old); optionally the episode waits at step 0 for the first
  command. It never tries to catch up after an overrun.

Rendering on demand (``render.on_demand``, lock-step only): rendering the cameras costs most of
a step, yet a policy that executes whole chunks reads an image only where its plan runs out.
The node's chunk messages say where (:meth:`EpisodeDriver.chunk`: capture stamp + length), so
the driver renders the observation of that step, of an episode's start and, so that no camera
goes silent for longer than the node tolerates, at least every ``render.max_age`` seconds;
other steps publish the state without images. A step whose chunk is not known yet (its
message still in flight) is rendered: a late message costs time, never a wrong image.

This module imports no ROS; it is tested with a fake simulator.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from snapflow_ros.control.stats import ThrottledLog
from snapflow_ros.sim.episode_events import (
    LIFT_M,
    CommandCounts,
    EpisodeEnd,
    EpisodeEvent,
    EpisodeStart,
    to_json,
)
from snapflow_ros.sim.placements import noise_seed
from snapflow_ros.sim.scripted_expert import (
    PickPlaceTask,
    expert_task,
    privileged_state,
    target_position,
)
from snapflow_ros.sim.suites import CONTROL_FREQ, NOOP_ACTION, NUM_INIT_STATES

DT_NS = 1_000_000_000 // CONTROL_FREQ
NO_POLICY_NODE = "no policy_node set"  # BridgeOutputs.policy: nothing to ask
WAIT_WARNING_S = 10.0  # lock-step: warn when no command came for this long


class BridgeOutputs(Protocol):
    """What the driver publishes (the node: messages on its topics, its logger)."""

    def observation(self, obs: Any, stamp_ns: int, privileged: np.ndarray | None = None) -> None:
        """Publish the observation (cameras, joints, pose, state) stamped ``stamp_ns``;
        ``privileged``: the object's and target's positions (``privileged_state`` on)."""

    def republish(self, stamp_ns: int | None = None) -> None:
        """Publish the last observation again (``stamp_ns``: with fresh stamps)."""

    def clock(self, ns: int) -> None:
        """Publish ``/clock``."""

    def task(self, text: str) -> None:
        """Publish the task (latched)."""

    def episode(self, event: EpisodeEvent) -> None:
        """Publish an episode event (:class:`~snapflow_ros.sim.episode_events.EpisodeStart` /
        :class:`~snapflow_ros.sim.episode_events.EpisodeEnd`, written with its ``to_json``)."""

    def policy(self, action: str, seed: int | None = None) -> str:
        """Ask the policy node to ``pause``, ``reset`` or ``resume`` (``reset`` with ``seed``:
        set its ``seed`` parameter first): '' when done, else why not ("no policy_node set"
        when there is none to ask)."""
        ...

    def log(self, level: str, message: str) -> None:
        """Log at ``level`` (info, warning, error)."""


@dataclass
class Command:
    """A validated command: the action, its header stamp (0: none) and arrival number."""

    action: np.ndarray
    stamp_ns: int
    seq: int
    recv_mono: float


@dataclass
class EpisodeStats:
    """Counters and timings of one episode."""

    episode_id: int = 0
    start_wall: float = 0.0
    start_ns: int = 0
    received: int = 0
    applied: int = 0
    rejected: int = 0
    clipped: int = 0
    stale: int = 0
    held: int = 0
    noop: int = 0
    kicks: int = 0
    overruns: int = 0
    rendered: int = 0  # observations whose cameras were rendered (the start one included)
    step_s: list[float] = field(default_factory=list)
    publish_s: list[float] = field(default_factory=list)
    wait_s: list[float] = field(default_factory=list)
    objects: ObjectMotion | None = None


class ObjectMotion:
    """How far the scene's movable objects moved in an episode: each one's highest rise above
    its start height, its rise at the end, how far it ended from its start in x-y (m), and
    where the end-effector was relative to it when it first rose :data:`LIFT_M` (the grasp)."""

    def __init__(self, start: dict[str, np.ndarray]) -> None:
        self.start = {name: np.asarray(p, np.float64).copy() for name, p in start.items()}
        self.max_rise = dict.fromkeys(self.start, 0.0)
        self.last = {name: p.copy() for name, p in self.start.items()}
        self.lift_eef_offset: dict[str, np.ndarray] = {}

    def update(self, positions: dict[str, np.ndarray], eef_pos: np.ndarray | None = None) -> None:
        """Take the objects' (and, when given, the end-effector's) positions after a step."""
        for name, start in self.start.items():
            if name in positions:
                p = np.asarray(positions[name], np.float64)
                self.last[name] = p.copy()
                self.max_rise[name] = max(self.max_rise[name], float(p[2] - start[2]))
                lifted = self.max_rise[name] >= LIFT_M
                if lifted and eef_pos is not None and name not in self.lift_eef_offset:
                    self.lift_eef_offset[name] = np.asarray(eef_pos, np.float64) - p

    def report(self) -> dict[str, dict[str, float]]:
        """Per object: ``max_rise_m``, ``final_rise_m``, ``moved_xy_m`` and, once lifted,
        ``lift_eef_dx_m`` / ``dy`` / ``dz`` (rounded to 0.1 mm)."""
        report: dict[str, dict[str, float]] = {}
        for name, start in self.start.items():
            row = {
                "max_rise_m": round(self.max_rise[name], 4),
                "final_rise_m": round(float(self.last[name][2] - start[2]), 4),
                "moved_xy_m": round(float(np.linalg.norm(self.last[name][:2] - start[:2])), 4),
            }
            if name in self.lift_eef_offset:
                for axis, value in zip("xyz", self.lift_eef_offset[name], strict=True):
                    row[f"lift_eef_d{axis}_m"] = round(float(value), 4)
            report[name] = row
        return report


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def privileged_task(param: Callable[[str], Any], suite: str, task: int) -> PickPlaceTask | None:
    """The expert task whose object and target ``privileged_state`` publishes (None when
    off); ValueError when the task has no scripted expert to name them."""
    if not param("privileged_state"):
        return None
    try:
        return expert_task(suite, task)
    except ValueError as exc:
        raise ValueError(f"privileged_state: {exc}") from None


class EpisodeDriver:
    """The bridge's episodes (see the module docstring).

    ``param(name)`` reads a bridge parameter (current value); ``set_param(name, value)``
    changes one (the next initial state); ``make_sim()`` builds the simulator in the
    simulation thread; ``validate(values, out_of_range)`` checks a 7-D action (returns
    ``(action, clipped)``, raises ``ValueError`` with a ``kind``).
    """

    def __init__(
        self,
        param: Callable[[str], Any],
        set_param: Callable[[str, Any], None],
        outputs: BridgeOutputs,
        make_sim: Callable[[], Any],
        validate: Callable[[Any, str], tuple[np.ndarray, bool]],
    ) -> None:
        self._p = param
        self._set_param = set_param
        self._out = outputs
        self._make_sim = make_sim
        self._validate = validate
        self._log = ThrottledLog(outputs.log, 2.0)
        self._lock = threading.Lock()
        self._cmd_cond = threading.Condition(self._lock)
        self._latest: Command | None = None
        self._seq = 0
        self._requests: queue.Queue[tuple[str, threading.Event, dict[str, Any]]] = queue.Queue()
        self._stop = threading.Event()
        self.fatal = ""
        self.sim: Any = None
        self.running = False
        self._episode_id = 0
        self.stats = EpisodeStats()
        self._time_ns = int(round(self._p("clock.start") * 1e9 / DT_NS)) * DT_NS
        self._lead_ns = int(round(float(self._p("lockstep.stamp_lead")) * 1e9))
        self._obs_seq = 0
        self._last_gripper = -1.0
        self.mode = str(self._p("mode"))
        self._rt_next = 0.0
        self._rt_episode = -1
        self._rt_used = 0
        self._privileged: PickPlaceTask | None = None
        self._plan_end_ns = 0  # render.on_demand: where the node's latest chunk runs out
        self._last_render_step = 0

    # ================================================================== commands
    def command(self, values: Any, stamp_ns: int = 0, names: list[str] | None = None) -> None:
        """A command arrived (``names``: the joint names of a JointState, taken in the order
        of ``command.names`` when that is set)."""
        wanted = [n for n in (self._p("command.names") or []) if n]
        if names and wanted:
            index = {n: i for i, n in enumerate(names)}
            missing = [n for n in wanted if n not in index]
            if missing or len(names) != len(values):
                self._reject(f"names {list(names)} do not provide {missing or wanted}", "names")
                return
            values = [values[index[n]] for n in wanted]
        try:
            action, clipped = self._validate(values, str(self._p("command.out_of_range")))
        except ValueError as exc:
            self._reject(str(exc), getattr(exc, "kind", "value"))
            return
        with self._lock:
            self._seq += 1
            self.stats.received += 1
            if clipped:
                self.stats.clipped += 1
            self._latest = Command(action, stamp_ns, self._seq, time.monotonic())
            self._cmd_cond.notify_all()
        if clipped:
            self._log(
                "clip",
                "warning",
                f"command on {self._p('command.topic')} outside [-1, 1], clipped to "
                f"{np.round(action, 3).tolist()}",
            )

    def chunk(self, stamp_ns: int, length: int) -> None:
        """The policy node published a chunk of ``length`` actions computed from the
        observation stamped ``stamp_ns`` (render.on_demand: its plan runs out ``length``
        steps later). Chunks from before the current episode are ignored."""
        if length <= 0:
            return
        with self._lock:
            if stamp_ns >= self.stats.start_ns:
                self._plan_end_ns = max(self._plan_end_ns, stamp_ns + length * DT_NS)

    def _render_next(self) -> bool:
        """Must the observation of the next step be rendered? (see the module docstring)"""
        if self.mode != "lockstep" or not self._p("render.on_demand"):
            return True
        next_ns = self._time_ns + DT_NS
        with self._lock:
            plan_end = self._plan_end_ns
        if next_ns >= plan_end - DT_NS // 2:
            return True  # the plan runs out here (or is unknown): the node reads this image
        age_s = (self.sim.steps + 1 - self._last_render_step) * DT_NS * 1e-9
        return age_s >= float(self._p("render.max_age")) - 1e-9

    def _reject(self, why: str, kind: str) -> None:
        with self._lock:
            self.stats.rejected += 1
            total = self.stats.rejected
        self._log(
            f"reject:{kind}",
            "error",
            f"rejected command on {self._p('command.topic')}: {why} "
            f"({total} rejected this episode; the simulation did not move)",
        )

    # ================================================================== services
    def request(self, kind: str, timeout: float = 600.0) -> tuple[bool, str]:
        """Ask the simulation thread for ``reset`` or ``next`` (initial state); waits for it.
        Returns ``(success, message)`` (the ``start`` event as JSON on success)."""
        done = threading.Event()
        result: dict[str, Any] = {}
        self._requests.put((kind, done, result))
        with self._lock:
            self._cmd_cond.notify_all()
        if not done.wait(timeout):
            return False, f"{kind}: no answer within {timeout:.0f} s"
        return bool(result.get("success")), str(result.get("message", ""))

    def _serve_requests(self) -> bool:
        try:
            kind, done, result = self._requests.get_nowait()
        except queue.Empty:
            return False
        try:
            if kind in ("next", "auto_next"):
                count = self.sim.num_init_states or NUM_INIT_STATES
                self._set_param("init_state_index", (int(self._p("init_state_index")) + 1) % count)
            if kind == "auto_next":  # as libero_eval: no command from the old plan meanwhile
                self._ask_policy("pause")
            info = self._reset()
            if kind == "auto_next":  # a new plan and noise seed from the new first observation
                base = int(self._p("policy_noise_seed"))
                self._ask_policy("reset", noise_seed(base, int(self._p("init_state_index"))))
                self._ask_policy("resume")
            result.update(success=True, message=to_json(info))
        except Exception as exc:  # a bad suite/task/index must not kill the bridge
            result.update(success=False, message=f"{kind} failed: {type(exc).__name__}: {exc}")
            self._out.log("error", result["message"])
        finally:
            done.set()
        return True

    def _ask_policy(self, action: str, seed: int | None = None) -> None:
        why = self._out.policy(action, seed)
        if why and why != NO_POLICY_NODE and not self._stop.is_set():  # stopping: expected
            self._out.log("warning", f"auto_next: policy node {action} failed: {why}")

    # ================================================================== simulation thread
    def run(self) -> None:
        """The simulation thread: build the simulator, serve requests, step episodes until
        :meth:`stop` (the episode in progress then ends with reason ``shutdown``)."""
        try:
            self.sim = self._make_sim()
            if self._p("autostart"):
                self._reset()
            while not self._stop.is_set():
                if self._serve_requests():
                    continue
                if not self.running:
                    with self._lock:
                        self._cmd_cond.wait(0.1)
                    continue
                try:
                    if self.mode == "lockstep":
                        self._lockstep_step()
                    else:
                        self._realtime_step()
                except Exception as exc:  # a failing step ends the episode, not the bridge
                    self._out.log("error", f"step failed: {type(exc).__name__}: {exc}")
                    if self.running:
                        self._end("sim_error")
            if self.running and self.sim.steps > 0:
                self._end("shutdown")
            elif self.running:  # reset, but not one step taken: no result to report
                self.running = False
                self._out.log(
                    "info",
                    f"episode {self._episode_id} stopped before its first step (no result)",
                )
        except Exception as exc:  # report; the node exits non-zero
            self.fatal = f"{type(exc).__name__}: {exc}"
            self._out.log("error", f"simulation stopped: {self.fatal}")
        finally:
            if self.sim is not None:
                self.sim.close()

    def stop(self) -> None:
        """Ask the simulation thread to end (returns at once)."""
        self._stop.set()
        with self._lock:
            self._cmd_cond.notify_all()

    def _reset(self) -> EpisodeStart:
        if self.running:
            self._end("reset")
        sim = self.sim
        suite = str(self._p("suite"))
        self._privileged = privileged_task(self._p, suite, int(self._p("task_index")))
        sim.config.max_steps = int(self._p("episode_length"))
        self.mode = str(self._p("mode"))
        obs = sim.reset(suite, int(self._p("task_index")), int(self._p("init_state_index")))
        self._time_ns += int(round(self._p("clock.reset_gap") * 1e9 / DT_NS)) * DT_NS
        self._episode_id += 1
        self._last_render_step = 0
        with self._lock:
            self._latest = None
            self._plan_end_ns = 0
            self.stats = EpisodeStats(
                episode_id=self._episode_id,
                start_wall=time.monotonic(),
                start_ns=self._time_ns,
                objects=ObjectMotion(obs.object_pos),
                rendered=1,
            )
        self._last_gripper = -1.0
        self._out.task(sim.task_language)
        first_stamp = self._stamp_ns()
        info = EpisodeStart(
            episode_id=self._episode_id,
            suite=suite,
            task_index=sim.config.task_index,
            task=sim.task_language,
            task_name=sim.task_name,
            init_state_index=sim.config.init_state_index,
            max_steps=sim.max_steps,
            mode=self.mode,
            start_ns=self._time_ns,
            first_stamp_ns=first_stamp,
            stamps="sim" if self.mode == "lockstep" else "wall",
            reset_s=round(sim.timing.reset_s, 4),
            build_s=round(sim.timing.build_s, 4),
        )
        self._out.episode(info)
        self.running = True
        if self.mode == "lockstep":
            # Clock first (one period early): the state array has no header, so the node
            # stamps it on arrival; arriving after the jump keeps it fresh.
            self._out.clock(self._time_ns - DT_NS - self._lead_ns)
        self._publish_obs(obs, first_stamp)
        self._out.log(
            "info",
            f"episode {self._episode_id}: {suite} task {sim.config.task_index} "
            f"({sim.task_language!r}), init state {sim.config.init_state_index}, "
            f"{sim.max_steps} steps max, {self.mode}",
        )
        return info

    def _stamp_ns(self) -> int:
        return self._time_ns if self.mode == "lockstep" else time.time_ns()

    def _end(self, reason: str) -> None:
        sim = self.sim
        self.running = False
        sim.end_episode()
        st = self.stats
        wall = time.monotonic() - st.start_wall
        result = EpisodeEnd(
            episode_id=st.episode_id,
            suite=sim.config.suite,
            task_index=sim.config.task_index,
            task=sim.task_language,
            init_state_index=sim.config.init_state_index,
            success=reason == "success",
            steps=sim.steps,
            reason=reason,
            max_steps=sim.max_steps,
            mode=self.mode,
            sim_time_s=round(sim.steps / CONTROL_FREQ, 4),
            wall_s=round(wall, 4),
            steps_per_s=round(sim.steps / wall, 4) if wall > 0 else None,
            step_mean_s=_mean(st.step_s),
            publish_mean_s=_mean(st.publish_s),
            wait_mean_s=_mean(st.wait_s),
            commands=CommandCounts(
                received=st.received,
                applied=st.applied,
                rejected=st.rejected,
                clipped=st.clipped,
                stale=st.stale,
            ),
            held_steps=st.held,
            noop_steps=st.noop,
            kicks=st.kicks,
            overruns=st.overruns,
            rendered_steps=st.rendered,
            end_ns=self._time_ns,
            final_state=[round(float(v), 6) for v in sim.observation.state],
            objects=st.objects.report() if st.objects is not None else {},
        )
        self._out.episode(result)
        self._out.log(
            "info",
            f"episode {st.episode_id} ended: {reason}, success={result.success}, "
            f"{sim.steps} steps in {wall:.1f} s",
        )
        if self._p("auto_next") and reason not in ("reset", "shutdown"):
            self._requests.put(("auto_next", threading.Event(), {}))

    def _publish_obs(self, obs: Any, stamp_ns: int) -> None:
        start = time.perf_counter()
        task = self._privileged
        extra = (
            None
            if task is None
            else privileged_state(obs, target_position(self.sim, obs, task), task)
        )
        self._out.observation(obs, stamp_ns, extra)
        with self._lock:
            self._obs_seq = self._seq
        if self.mode == "lockstep":
            # Let the policy node take these inputs before its clock (and its tick) advances.
            self._stop.wait(float(self._p("lockstep.clock_delay")))
            self._out.clock(stamp_ns - self._lead_ns)
        self.stats.publish_s.append(time.perf_counter() - start)

    def _apply(self, action: np.ndarray, source: str = "command") -> None:
        render = self._render_next()
        self.sim.pause_rendering(not render)
        result = self.sim.step(action)
        if render:
            self._last_render_step = self.sim.steps
            self.stats.rendered += 1
        self.stats.step_s.append(result.step_s)
        if self.stats.objects is not None:
            self.stats.objects.update(result.observation.object_pos, result.observation.eef_pos)
        if source == "command":
            self.stats.applied += 1
        self._last_gripper = float(action[-1])
        self._time_ns += DT_NS
        self._publish_obs(result.observation, self._stamp_ns())
        if result.done:
            self._end(result.reason)

    # ------------------------------------------------------------------ lock-step
    def _kick(self, wait: float) -> None:
        """Make the policy node's timer fire again at the current time.

        A timer on simulation time fires once per clock advance. When the node had no plan
        at that tick (its first chunk was still being computed), the bridge steps the clock
        one period back and forward again: the node's timer re-arms (a backward jump re-arms
        ROS timers one period after the new time) and fires at the same time once more. Same
        time, so the command is the one the plan gives for this step.
        """
        self._out.republish()
        self._out.clock(self._time_ns - self._lead_ns - DT_NS)
        self._stop.wait(min(0.02, wait / 2))
        self._out.clock(self._time_ns - self._lead_ns)
        self.stats.kicks += 1

    def _take_lockstep_command(self) -> Command | None:
        cmd = self._latest
        if cmd is None:
            return None
        clock = self._time_ns - self._lead_ns
        fresh = cmd.stamp_ns >= clock if cmd.stamp_ns > 0 else cmd.seq > self._obs_seq
        if not fresh:
            return None
        self._latest = None
        return cmd

    def _lockstep_step(self) -> None:
        start = time.monotonic()
        period = float(self._p("lockstep.kick_period"))
        longest = float(self._p("lockstep.kick_max"))
        next_kick = start + period
        cmd = None
        while not self._stop.is_set() and self._requests.empty():
            with self._lock:
                cmd = self._take_lockstep_command()
                if cmd is None and self._latest is not None:
                    self.stats.stale += 1
                    self._latest = None
                if cmd is None:
                    self._cmd_cond.wait(max(0.0, min(next_kick - time.monotonic(), 0.5)))
                    cmd = self._take_lockstep_command()
            if cmd is not None:
                break
            now = time.monotonic()
            if now >= next_kick:
                self._kick(period)
                period = min(period * 2.0, longest)
                next_kick = time.monotonic() + period
            waited = now - start
            if waited > WAIT_WARNING_S:
                self._log(
                    "waiting",
                    "warning",
                    f"lock-step: no command on {self._p('command.topic')} for {waited:.0f} s "
                    f"(step {self.sim.steps}); is the policy node running, with use_sim_time?",
                )
        if cmd is None:
            return
        self.stats.wait_s.append(time.monotonic() - start)
        self._apply(cmd.action)

    # ------------------------------------------------------------------ real time
    def _realtime_step(self) -> None:
        period = 1.0 / CONTROL_FREQ
        if self._rt_episode != self._episode_id:
            self._rt_next = time.monotonic()
            self._rt_episode = self._episode_id
            self._rt_used = 0
        if self._p("realtime.wait_first_command") and self.sim.steps == 0:
            with self._lock:
                has = self._latest is not None
            if not has:
                self._out.republish(time.time_ns())  # inputs stay fresh while the policy starts
                with self._lock:
                    self._cmd_cond.wait(period)
                self._rt_next = time.monotonic()
                return
        delay = self._rt_next - time.monotonic()
        if delay > 0:
            self._stop.wait(delay)
        with self._lock:
            cmd = self._latest
        now = time.monotonic()
        if cmd is not None and cmd.seq > self._rt_used:
            self._rt_used = cmd.seq
            action, source = cmd.action, "command"
        elif (
            cmd is not None
            and self._p("realtime.missing") == "hold"
            and now - cmd.recv_mono <= float(self._p("realtime.command_timeout"))
        ):
            action, source = cmd.action, "hold"
            self.stats.held += 1
        else:
            action = np.array([*NOOP_ACTION[:6], self._last_gripper], np.float64)
            source = "noop"
            self.stats.noop += 1
        self._apply(action, source)
        self._rt_next += period
        if time.monotonic() > self._rt_next:
            self.stats.overruns += 1
            self._rt_next = time.monotonic()  # do not try to catch up: one step per period
