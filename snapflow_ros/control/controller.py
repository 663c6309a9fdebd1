"""The policy node's logic without ROS: when to infer, what to command, what to report.

:class:`PolicyController` owns everything the node decides: the command loop (scheduler,
limits, hold), the replan policy, the epochs that discard chunks computed before a reset,
pause or deactivation, the fault and re-seed flags, the counters, latency statistics and
rates, and the status events. The ROS node around it only converts messages, owns the
threads (its executor calls :meth:`PolicyController.tick` from the control timer and the
input callbacks; its inference thread calls :meth:`PolicyController.infer_once`) and turns
what the controller emits through :class:`Outputs` into messages. Time comes from an
injected clock (node clock, ns; simulation time in lock-step), so the logic runs and is
tested with a fake clock and a fake runtime.

Threads: every method may be called from any thread; one lock inside guards all state.
Commands are published under that lock (ticks, merges and stops are ordered in time); the
policy runs outside it.

A control tick (:meth:`~PolicyController.tick`) judges the inputs at that instant (see
:mod:`.input_slots`): anything wrong drops the plan and holds, so nothing computed from earlier
inputs is executed past that point. An inference (:meth:`~PolicyController.infer_once`) runs
when the plan's remaining horizon is below the replan threshold (``replan_threshold``, or
automatic: 1.5 x p95 trigger-to-chunk latency + 2 periods) and the inputs changed since the
last failed attempt; a malformed observation is announced once as a ``rejected`` event, and
so is a policy output with NaN/inf actions (input ``policy``, reason code
:data:`NON_FINITE_OUTPUT`), which holds until a valid chunk arrives.

Rate limits: an input that stays malformed while new messages keep arriving is rejected once
per message, so ``rejected`` events of one input are announced at most once per
:data:`REJECTED_PERIOD_S` (the next one says how many were not: ``suppressed``; every
rejection is still counted in ``input_faults`` / ``inference_errors``). The first rejection
after a merged chunk, ``reset``, ``resume`` or activation is always announced (``replay``
asks for one observation at a time that way). Task and ``num_steps`` changes are logged
through a :class:`~.stats.ChangeLog` (at most one line per 2 s each, the latest value last;
a line still held back when the session is detached is logged then).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from snapflow_ros.control.input_slots import (
    InputProblem,
    InputSet,
    Observed,
    Problem,
    short,
    task_preview,
)
from snapflow_ros.control.loop import CommandLoop, auto_replan_threshold
from snapflow_ros.control.settings import Settings
from snapflow_ros.control.stats import ChangeLog, LatencyStats, RateMeter, ThrottledLog
from snapflow_ros.control.status import (
    ChunkEvent,
    PauseEvent,
    PeriodicEvent,
    RejectedEvent,
    ResetEvent,
    ResumeEvent,
    StatusEvent,
)

LATENCY_STAGES = ("preprocess", "prefix", "denoise", "postprocess", "total")
COUNTS = ("inference_errors", "input_faults", "discarded_chunks", "nonfinite_commands")
STARVATION_RECENT_S = 5.0  # diagnostics warn this long after a starvation
RATE_WINDOW_S = 5.0
NON_FINITE_OUTPUT = "non_finite_output"  # reason code of a policy output with NaN/inf actions
REJECTED_PERIOD_S = 1.0  # at most one ``rejected`` event per input per this many seconds
LOG_PERIOD_S = 2.0  # throttled log lines: one per key per this many seconds


class NonFiniteOutput(ValueError):
    """The policy returned NaN/inf actions. The runtime raises its own
    ``snapflow_ros.runtime.NonFiniteOutputError`` with the same :attr:`code` (this layer
    cannot import the runtime: errors are told apart by their ``code``)."""

    code = NON_FINITE_OUTPUT


class Runtime(Protocol):
    """What the controller needs of a policy runtime (:class:`snapflow_ros.runtime.PolicyRuntime`).

    ``predict_chunk`` returns an object with ``actions`` (H x D), ``num_steps`` and
    ``timings`` (``as_dict()``: seconds per stage). ``validate`` and ``predict_chunk`` raise
    ``ValueError`` when the observation, or the policy's output for it, cannot be used; one for
    NaN/inf actions carries ``code`` = :data:`NON_FINITE_OUTPUT`
    (``snapflow_ros.runtime.NonFiniteOutputError``).
    """

    action_dim: int
    chunk_size: int
    default_num_steps: int

    def validate(self, obs: Any) -> Any: ...

    def predict_chunk(self, obs: Any, num_steps: int | None = None) -> Any: ...

    def reset_noise(self, seed: int | None) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class Outputs(Protocol):
    """Where the controller's decisions go (the node: messages and its logger)."""

    def command(self, values: np.ndarray, t_ns: int) -> None:
        """Publish one command (tick time ``t_ns``)."""

    def chunk(self, actions: np.ndarray, stamp_ns: int) -> bool:
        """Publish a whole chunk (observation stamp ``stamp_ns``); False when not published."""

    def event(self, event: StatusEvent) -> None:
        """Publish a status event."""

    def log(self, level: str, message: str) -> None:
        """Log at ``level`` (debug, info, warning, error)."""


@dataclass
class Session:
    """What a configure builds: the runtime, the inputs, the command loop and how to make an
    observation for the runtime (``make_observation(images=, state=, task=, stamp=)``)."""

    runtime: Runtime
    inputs: InputSet
    loop: CommandLoop
    make_observation: Callable[..., Any]
    control_rate: float
    stats_window: int = 200
    latency_hint: float = 0.0  # s: first chunk's latency, until real samples exist


class PolicyController:
    """The node's logic (see the module docstring).

    ``log_throttled(key, level, message)`` logs what can repeat at every tick or message
    (one line per key every 2 s); ``log_changes`` logs changing values (task, num_steps) at
    the same rate, the latest one last; the node uses both.
    """

    def __init__(
        self,
        clock: Callable[[], int],
        outputs: Outputs,
        settings: Settings | None = None,
        name: str = "",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._out = outputs
        self.name = name
        # True on a simulation clock (use_sim_time): a clock jump is then a simulator's reset,
        # logged at info; on a wall clock it means the node stalled, logged as a warning.
        self.simulated_clock = False
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._monotonic = monotonic
        self.log_throttled = ThrottledLog(outputs.log, LOG_PERIOD_S, monotonic)
        self.log_changes = ChangeLog(outputs.log, LOG_PERIOD_S, monotonic)
        self._rejected_last: dict[str, float] = {}  # input -> when its last event went out
        self._rejected_suppressed: dict[str, int] = {}  # input -> rejections not announced
        self._session: Session | None = None
        self._settings = settings or Settings()
        self._settings_version = 0
        self.lifecycle_state = "unconfigured"
        self.configure_error = ""
        self._active = False
        self._paused = False
        self._epoch = 0
        self._fault = ""
        self._inference_error = ""
        self._reseed = False
        self._failed_generation: int | None = None
        self._counts = dict.fromkeys((*COUNTS, "dry_run_commands"), 0)
        self._latency = LatencyStats(200)
        self._chunk_meter = RateMeter(RATE_WINDOW_S)
        self._command_meter = RateMeter(RATE_WINDOW_S)
        self._last_starvation_ns = 0

    # ================================================================== session and lifecycle
    @property
    def session(self) -> Session | None:
        """The configured runtime, inputs and loop (None while unconfigured)."""
        return self._session

    @property
    def settings(self) -> Settings:
        """The current run-time settings."""
        return self._settings

    @property
    def paused(self) -> bool:
        """True after :meth:`pause` until :meth:`resume`."""
        return self._paused

    @property
    def fault(self) -> str:
        """Why the node holds after a policy problem ('' when it does not)."""
        return self._fault

    @property
    def inference_error(self) -> str:
        """The last inference failure ('' after a good chunk)."""
        return self._inference_error

    def attach(self, session: Session) -> None:
        """Start working with a configured session (inactive until :meth:`activate`)."""
        dt = session.loop.dt
        with self._lock:
            self._session = session
            self._latency = LatencyStats(session.stats_window)
            self._command_meter = RateMeter(RATE_WINDOW_S, nominal_period=dt)
            self._chunk_meter = RateMeter(RATE_WINDOW_S)
            self._failed_generation = None
            self._apply_settings_to_loop()

    def detach(self) -> None:
        """Forget the session (cleanup, shutdown): no more ticks, chunks or inputs. A task or
        ``num_steps`` change still held back by the log's rate limit is logged now, not by a
        later timer (which may never come, or come from a node being destroyed)."""
        with self._lock:
            self._active = False
            self._epoch += 1
            self._session = None
        self.log_changes.flush(force=True)

    def activate(self) -> None:
        """Start executing: a fresh plan, commands from the next chunk on."""
        now = self._clock() * 1e-9
        with self._lock:
            if self._session is not None:
                self._session.loop.reset()
            self._epoch += 1
            self._fault = ""
            self._active = True
            self._rejected_last.clear()
        self._command_meter.start(now)
        self._chunk_meter.start(now)
        self.wake()

    def stop_commands(self) -> None:
        """Stop executing: drop the plan, send one hold command (if configured), stop ticks."""
        with self._lock:
            self._active = False
            self._epoch += 1
            if self._session is None:
                return
            loop = self._session.loop
            loop.stop()
            hold = loop.hold_command()
            if hold is not None and not self._settings.dry_run:
                self._out.command(hold, self._clock())

    @property
    def active(self) -> bool:
        """True between :meth:`activate` and :meth:`stop_commands` / :meth:`detach`."""
        return self._active

    def _running(self) -> bool:
        return self._active and not self._paused and self._session is not None

    # ================================================================== services
    def reset(self) -> None:
        """Drop the plan, clear faults, counters and statistics, re-seed the noise."""
        with self._lock:
            self._epoch += 1
            if self._session is not None:
                self._session.loop.reset()
            self._fault = ""
            self._inference_error = ""
            self._reseed = True
            self._rejected_last.clear()
            self._counts = dict.fromkeys(self._counts, 0)
            self._latency.clear()
            now_ns = self._clock()
            self._command_meter.start(now_ns * 1e-9)
            self._chunk_meter.start(now_ns * 1e-9)
            self._last_starvation_ns = 0
        self.wake()
        self.log_throttled("srv_reset", "info", "reset: plan, statistics and noise seed reset")
        self.emit(ResetEvent(t_ns=now_ns))

    def pause(self) -> bool:
        """No inference, no commands (hold) until :meth:`resume`; True if it was paused."""
        with self._lock:
            was = self._paused
            self._paused = True
            self._epoch += 1
            if self._session is not None:
                self._session.loop.stop()
        if not was:
            self.log_throttled("srv_pause", "info", "paused: no inference, no commands (hold)")
            self.emit(PauseEvent())
        return was

    def resume(self) -> bool:
        """Undo :meth:`pause`; True if it was paused."""
        with self._lock:
            was = self._paused
            self._paused = False
            self._rejected_last.clear()
        self.wake()
        if was:
            self.log_throttled("srv_resume", "info", "resumed")
            self.emit(ResumeEvent())
        return was

    # ================================================================== settings and inputs
    def update_settings(self, **changes: Any) -> None:
        """Change run-time settings (field names of :class:`Settings`); the inputs are judged
        again."""
        with self._lock:
            old = self._settings
            new = dataclasses.replace(old, **changes)
            if new.num_steps != old.num_steps:
                self._latency.clear()
                steps = new.num_steps or "checkpoint default"
                self.log_changes.changed("num_steps", "info", f"num_steps -> {steps}")
            self._settings = new
            self._settings_version += 1
            self._apply_settings_to_loop()
        self.wake()

    def _apply_settings_to_loop(self) -> None:
        if self._session is not None:
            self._session.loop.hold_mode = self._settings.hold_mode
            self._session.loop.set_max_lead(self._settings.max_future_stamp)

    def set_task(self, text: str) -> None:
        """A task arrived on the task topic (refused, and holding, when too long)."""
        session = self._session
        if session is None:
            return
        changed = session.inputs.set_task(text)
        self.wake()
        fault = session.inputs.task_fault
        if fault:
            self.log_throttled("task", "error", f"task rejected, holding: {fault}")
        elif changed:
            self.log_changes.changed("task", "info", f"task: {task_preview(text)!r}")

    def task(self) -> str:
        """The task the policy gets (topic, else the ``task.text`` setting)."""
        session = self._session
        text = self._settings.task_text
        return session.inputs.task(text) if session is not None else text

    def wake(self) -> None:
        """Something changed (an input, a tick, a setting): the inference thread looks again."""
        self._wake.set()

    def wait_for_work(self, timeout: float) -> None:
        """Block the inference thread until :meth:`wake` or ``timeout`` seconds."""
        self._wake.wait(timeout)
        self._wake.clear()

    # ================================================================== health
    def _health(self, now_ns: int) -> tuple[bool, list[Problem]]:
        """Problems at ``now_ns`` that stop commands (inputs, then a policy fault)."""
        problems: list[Problem] = []
        if self._session is not None:
            problems = [
                p for p in self._input_problems(self._session, now_ns) if p.severity != "early"
            ]
        if self._fault:
            problems.append(Problem("fault", "policy", self._fault))
        return not problems, problems

    def _input_problems(self, session: Session, now_ns: int) -> list[Problem]:
        """What is wrong with the session's inputs at ``now_ns`` under the current settings."""
        s = self._settings
        return session.inputs.problems(now_ns, s.input_timeout, s.max_future_stamp, s.task_text)

    def recent_starvation(self, now_ns: int) -> bool:
        """True within a few seconds of a starvation event (diagnostics warn meanwhile)."""
        last = self._last_starvation_ns
        return bool(last) and now_ns - last < STARVATION_RECENT_S * 1e9

    def threshold(self) -> float | None:
        """Remaining-horizon threshold (s) that triggers the next inference (None: no policy)."""
        with self._lock:
            return self._threshold()

    def _threshold(self) -> float | None:
        session = self._session
        if session is None:
            return None
        fixed = float(self._settings.replan_threshold)
        if fixed >= 0:
            return fixed
        e2e = self._latency.values("e2e")
        latency = float(np.percentile(e2e, 95)) if e2e else session.latency_hint
        return auto_replan_threshold(latency, session.loop.dt, session.runtime.chunk_size)

    # ================================================================== control tick
    def tick(self) -> None:
        """One control tick: judge the inputs, publish the command (or hold). Never raises."""
        try:
            self.log_changes.flush()
            self._tick()
        except Exception as exc:  # never let a tick kill the node
            self.log_throttled("tick", "error", f"control tick failed: {type(exc).__name__}: {exc}")
        self.wake()

    def _tick(self) -> None:
        with self._lock:
            session = self._session
            if session is None or not self._active:
                return
            loop = session.loop
            now_ns = self._clock()
            healthy, problems = self._health(now_ns)
            events = loop.counters.starvation_events
            jumps = loop.counters.clock_jumps
            result = loop.tick(now_ns * 1e-9, healthy and not self._paused)
            starved = loop.counters.starvation_events > events
            jumped = loop.last_jump if loop.counters.clock_jumps > jumps else 0.0
            if starved:
                self._last_starvation_ns = now_ns
            cmd = result.command
            if cmd is not None:
                if not np.all(np.isfinite(cmd)):
                    self._counts["nonfinite_commands"] += 1
                    cmd = None
                elif self._settings.dry_run:
                    self._counts["dry_run_commands"] += 1
                    self.log_throttled(
                        "dry_run",
                        "info",
                        f"dry_run: would command {np.array2string(cmd, precision=3)} "
                        f"({result.source})",
                    )
                else:
                    self._out.command(cmd, now_ns)
                if cmd is not None and result.source == "plan":
                    self._command_meter.record(now_ns * 1e-9)
            paused = self._paused
        if starved:
            self._log_starvation()
        if jumped:
            cause = "a simulator's next episode?" if self.simulated_clock else "a stalled node?"
            self.log_throttled(
                "clock_jump",
                "info" if self.simulated_clock else "warning",
                f"the clock jumped {jumped:.2f} s forward since the last tick ({cause}): "
                "plan dropped, next chunk from the new inputs",
            )
        # Right after a clock jump the inputs are stale once, as expected: the jump line says why.
        if jumped and all(p.severity == "stale" for p in problems):
            problems = []
        if problems and not paused:
            text = "; ".join(p.message for p in problems)
            if any(p.severity == "fault" for p in problems):
                self.log_throttled("fault", "error", f"holding, bad input: {text}")
            else:
                self.log_throttled(
                    "inputs", "warning", f"holding, no command from these inputs: {text}"
                )

    def _log_starvation(self) -> None:
        self.log_throttled(
            "starved",
            "warning",
            "starved: the plan ran out and the clock moved on before a new chunk arrived "
            "(inference slower than the plan; see replan_threshold, num_steps)",
        )

    # ================================================================== inference
    def infer_once(self) -> None:
        """One look at the plan and the inputs from the inference thread: predict and merge a
        chunk when one is due and the inputs make an observation. Never raises."""
        try:
            self._failed_generation = self._infer(self._failed_generation)
        except Exception as exc:  # keep the inference thread alive whatever happens
            with self._lock:
                self._counts["inference_errors"] += 1
            with contextlib.suppress(Exception):  # logging must not end the thread
                self.log_throttled(
                    "worker", "error", f"inference worker error: {type(exc).__name__}: {exc}"
                )
            time.sleep(0.05)

    def _infer(self, failed_generation: int | None) -> int | None:
        """Returns the input generation that failed (None: nothing failed), so unchanged
        inputs are not tried again."""
        with self._lock:
            session = self._session
            if session is None or not self._running():
                return failed_generation
            trigger_ns = self._clock()
            threshold = self._threshold()
            if threshold is None or not session.loop.needs_chunk(trigger_ns * 1e-9, threshold):
                return failed_generation
            epoch = self._epoch
            settings = self._settings
            generation = session.inputs.generation() + self._settings_version
        if generation == failed_generation:
            return failed_generation  # nothing new since the last failure
        try:
            observed = session.inputs.observe(
                trigger_ns, settings.input_timeout, settings.max_future_stamp, settings.task_text
            )
        except InputProblem as exc:
            if exc.retry:
                return failed_generation  # judged again once the clock moves
            if exc.fault:
                self._reject(exc)
            return generation
        obs = session.make_observation(
            images=observed.images,
            state=observed.state,
            task=observed.task,
            stamp=observed.stamp_ns * 1e-9,
        )
        try:
            session.runtime.validate(obs)
        except ValueError as exc:
            problem = InputProblem(
                short(f"observation: {exc}"),
                fault=True,
                input_name="observation",
                stamp_ns=observed.stamp_ns,
            )
            with self._lock:
                self._fault = str(problem)  # hold until a valid observation makes a chunk
            self._reject(problem)
            return generation
        with self._lock:
            reseed, self._reseed = self._reseed, False
        if reseed:
            session.runtime.reset_noise(settings.noise_seed)
        try:
            chunk = session.runtime.predict_chunk(obs, num_steps=settings.steps)
            actions = np.asarray(chunk.actions, np.float64)
            if not np.all(np.isfinite(actions)):
                raise NonFiniteOutput("the policy returned NaN/inf actions")
        except ValueError as exc:  # the observation was valid: the output is not
            code = getattr(exc, "code", "")
            why = f"{code}: {exc}" if code == NON_FINITE_OUTPUT else str(exc)
            problem = InputProblem(
                short(f"policy: {why}"),
                fault=True,
                input_name="policy",
                stamp_ns=observed.stamp_ns,
            )
            self._reject(problem, hold=True)
            with self._lock:
                self._inference_error = str(problem)
            return generation
        except Exception as exc:
            with self._lock:
                self._fault = short(f"inference: {type(exc).__name__}: {exc}")
                self._inference_error = self._fault
                self._counts["inference_errors"] += 1
            self.log_throttled("inference", "error", f"inference failed, holding: {exc}")
            return generation
        self._merge(session, chunk, actions, observed, trigger_ns, epoch)
        return None

    def _merge(
        self,
        session: Session,
        chunk: Any,
        actions: np.ndarray,
        observed: Observed,
        trigger_ns: int,
        epoch: int,
    ) -> None:
        """Schedule a predicted chunk (unless a reset, pause, stop or malformed input came
        meanwhile), publish it and account for it."""
        loop = session.loop
        with self._lock:
            done_ns = self._clock()  # read under the lock: ticks and merges are time-ordered
            # an input that turned malformed or clock-skewed while this chunk was computed: the
            # tick holds anyway, so the chunk is discarded rather than scheduled
            faulted = any(p.severity == "fault" for p in self._input_problems(session, done_ns))
            if epoch != self._epoch or not self._running() or faulted:
                self._counts["discarded_chunks"] += 1
                return
            events = loop.counters.starvation_events
            result = loop.add_chunk(actions, observed.stamp_ns * 1e-9, done_ns * 1e-9)
            starved = loop.counters.starvation_events > events
            if starved:
                self._last_starvation_ns = done_ns
            plan = loop.scheduler.plan
            chunk_id = plan.chunk_id if result.accepted and plan is not None else None
            self._fault = ""
            self._inference_error = ""
            self._rejected_last.clear()  # good inputs made a chunk: announce the next at once
            published = False
            if not self._settings.dry_run and loop.last_chunk is not None:
                published = bool(self._out.chunk(loop.last_chunk, observed.stamp_ns))
            publish_ns = self._clock()
        self._chunk_meter.record(done_ns * 1e-9)
        timings = chunk.timings.as_dict()
        e2e = (done_ns - trigger_ns) * 1e-9
        overhead = max(e2e - timings["total"], 0.0)
        samples = {k: timings[k] for k in LATENCY_STAGES}
        samples.update(
            {
                "convert": observed.convert_s,
                "e2e": e2e,
                "overhead": overhead,
                "obs_age": (done_ns - observed.stamp_ns) * 1e-9,
            }
        )
        self._latency.add_many(samples)
        if starved:
            self._log_starvation()
        if result.early:
            self.log_throttled("early", "warning", f"chunk not executed: {result.reason}")
        elif not result.accepted:
            self.log_throttled(
                "late",
                "warning",
                f"chunk arrived too late: all {result.horizon} actions already in the past "
                f"(observation {samples['obs_age']:.3f} s old); lower num_steps or control_rate",
            )
        self.emit(
            ChunkEvent(
                chunk_id=chunk_id,
                accepted=result.accepted,
                published=published,
                stamp_ns=observed.stamp_ns,
                trigger_ns=trigger_ns,
                received_ns=done_ns,
                published_ns=publish_ns,
                skipped=result.skipped,
                overlap=result.overlap,
                horizon=result.horizon,
                num_steps=int(chunk.num_steps),
                timings=timings,
                convert_s=observed.convert_s,
                overhead_s=overhead,
                input_latency_s=(observed.newest_recv_ns - observed.newest_stamp_ns) * 1e-9,
                dt=loop.dt,
            )
        )

    def _reject(self, problem: InputProblem, hold: bool = False) -> None:
        """A malformed observation (or policy output): count it, announce it (``rejected``,
        at most once per :data:`REJECTED_PERIOD_S` per input), log (throttled); ``hold``: keep
        holding until a chunk."""
        reason = short(str(problem))
        name = problem.input_name
        now = self._monotonic()
        with self._lock:
            key = "input_faults" if name != "policy" else "inference_errors"
            self._counts[key] += 1
            if hold:
                self._fault = reason
            last = self._rejected_last.get(name)
            announce = last is None or now - last >= REJECTED_PERIOD_S
            if announce:
                self._rejected_last[name] = now
                suppressed = self._rejected_suppressed.pop(name, 0)
            else:
                self._rejected_suppressed[name] = self._rejected_suppressed.get(name, 0) + 1
        if hold:
            self.log_throttled("rejected", "error", f"holding: {reason}")
        if announce:
            self.emit(
                RejectedEvent(
                    stamp_ns=problem.stamp_ns, input=name, reason=reason, suppressed=suppressed
                )
            )

    # ================================================================== events, logs, report
    def emit(self, event: StatusEvent) -> None:
        """Publish a status event (the node's name and the clock filled in; best effort)."""
        try:
            event.node = self.name
            if event.t_ns is None:
                event.t_ns = self._clock()
            self._out.event(event)
        except Exception as exc:  # status is best effort (e.g. during shutdown)
            with contextlib.suppress(Exception):
                self._out.log("debug", f"status event not sent: {exc}")

    def report(self) -> PeriodicEvent:
        """Everything the status topic and /diagnostics say."""
        self.log_changes.flush()
        now_ns = self._clock()
        now = now_ns * 1e-9
        with self._lock:
            session = self._session
            healthy, problems = self._health(now_ns)
            loop = session.loop if session is not None else None
            counters = loop.counters.as_dict() if loop is not None else {}
            inputs = session.inputs.report(now_ns) if session is not None else {}
            runtime = session.runtime if session is not None else None
            steps = self._settings.num_steps or (runtime.default_num_steps if runtime else None)
            remaining = loop.remaining(now) if loop is not None else None
            threshold = self._threshold()
            counts = dict(self._counts)
            paused = self._paused
        latency = {name: self._latency.summary(name) for name in self._latency.names()}
        return PeriodicEvent(
            node=self.name,
            t_ns=now_ns,
            state=self.lifecycle_state,
            active=self._active,
            paused=paused,
            dry_run=bool(self._settings.dry_run),
            healthy=healthy and not paused,
            problems=[p._asdict() for p in problems],
            policy=runtime.describe() if runtime is not None else None,
            configure_error=self.configure_error,
            num_steps=steps,
            control_rate=session.control_rate if session is not None else None,
            replan_threshold_s=threshold,
            remaining_s=remaining if remaining is not None and np.isfinite(remaining) else None,
            chunk_rate_hz=self._chunk_meter.rate(now),
            command_rate_hz=self._command_meter.rate(now),
            command_jitter_s=self._command_meter.jitter(),
            latency_s=latency,
            counters={**counters, **counts},
            inputs=inputs,
            task=task_preview(self.task()) if session is not None else None,
        )
