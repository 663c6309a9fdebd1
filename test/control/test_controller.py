"""The policy controller in-process, on a fake clock and a fake runtime: scheduling and latency
compensation, replanning, staleness, malformed inputs, clock skew, policy faults, pause /
resume / reset, discarded chunks, dry run, limits, hold modes, the task and the report.

Every call is made by the test on one thread at a clock the test sets, so each expectation is
exact (the threads of the real node are exercised by test/nodes)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from snapflow_ros.control import (
    ActionLimits,
    InputSet,
    InputSlot,
    PolicyController,
    Settings,
    auto_replan_threshold,
)
from snapflow_ros.control.controller import NON_FINITE_OUTPUT
from snapflow_ros.control.status import ChunkEvent, RejectedEvent
from snapflow_ros.ros_conversions.input_converters import image_checker, image_converter
from snapflow_ros.runtime.errors import NonFiniteOutputError, ObservationError

from .fakes import DIM, DT, HORIZON, FakeClock, Msg, Recorder, S, rig


def values(out: Recorder) -> list[float]:
    """First dimension of every command sent."""
    return [float(c[0][0]) for c in out.commands]


# --------------------------------------------------------------------------- scheduling
def test_nothing_happens_until_every_input_and_the_task_are_there():
    r = rig()
    r.step()
    assert not r.runtime.calls and not r.out.commands and not r.out.chunks
    assert {p["severity"] for p in r.ctl.report().problems} == {"missing"}
    r.feed(1.0, slot="camera.front")
    r.step()
    assert not r.runtime.calls  # the state is still missing
    r.feed(1.0)
    r.step()
    assert len(r.runtime.calls) == 1
    assert not r.out.of("rejected")  # missing inputs are no rejection


def test_a_chunk_is_published_with_its_stamp_and_commanded_tick_by_tick():
    r = rig()
    stamp = r.feed(1.0)
    r.step()
    ((actions, chunk_stamp),) = r.out.chunks
    assert chunk_stamp == stamp
    np.testing.assert_array_equal(actions[:, 0], np.arange(HORIZON) + 1.0)
    (event,) = r.out.of("chunk")
    assert isinstance(event, ChunkEvent) and event.accepted and event.published
    assert event.stamp_ns == stamp and event.skipped == 0 and event.horizon == HORIZON
    assert event.node == "/policy_node" and event.dt == DT
    for _ in range(3):
        r.clock.advance(DT)
        r.ctl.tick()
    assert values(r.out) == [1.0, 2.0, 3.0, 4.0]
    assert [t for _, t in r.out.commands] == [stamp + k * DT * S for k in range(4)]


def test_actions_whose_time_passed_during_inference_are_skipped():
    r = rig(latency_s=0.25)  # the chunk arrives 2.5 periods after its observation
    r.feed(1.0)
    r.ctl.infer_once()
    assert r.clock.s == pytest.approx(100.25)
    (event,) = r.out.of("chunk")
    assert event.skipped == 3 and event.received_ns - event.trigger_ns == 0.25 * S
    r.ctl.tick()
    assert values(r.out) == [4.0]  # action 3 is the first one not in the past


def test_a_fixed_replan_threshold_triggers_the_next_inference():
    r = rig(Settings(task_text="pick", replan_threshold=0.15))
    r.feed(1.0)
    r.step()  # plan 100.0 .. 100.4
    for _ in range(2):
        r.clock.advance(DT)
        r.step()
    assert len(r.runtime.calls) == 1  # 0.2 s of plan left
    r.clock.advance(DT)
    r.ctl.infer_once()  # 0.1 s left < 0.15
    assert len(r.runtime.calls) == 2


def test_the_automatic_threshold_follows_the_measured_latency():
    r = rig(latency_hint=0.05)
    assert r.ctl.threshold() == pytest.approx(auto_replan_threshold(0.05, DT, HORIZON))
    slow = rig(latency_s=0.2, latency_hint=0.0)
    slow.feed(1.0)
    slow.ctl.infer_once()
    assert slow.ctl.threshold() == pytest.approx(auto_replan_threshold(0.2, DT, HORIZON))


def test_a_lock_step_wait_for_the_next_chunk_is_no_starvation():
    r = rig(Settings(task_text="pick", replan_threshold=0.0))
    r.feed(1.0)
    r.step()
    for _ in range(HORIZON):  # the clock moves only between ticks, as a simulation's does
        r.clock.advance(DT)
        r.feed(1.0)
        r.ctl.tick()  # the last one finds the plan used up
    r.ctl.infer_once()  # the clock stands still until the chunk is there
    r.ctl.tick()
    counters = r.ctl.report().counters
    assert counters["plan_waits"] == 1 and counters["starvation_events"] == 0
    assert values(r.out)[-1] == 1.0  # the new chunk's first action, at the same time


# --------------------------------------------------------------------------- input faults
def test_stale_inputs_drop_the_plan_at_the_next_tick_without_a_rejection():
    r = rig(Settings(task_text="pick", input_timeout=0.15, replan_threshold=0.0))
    r.feed(1.0)
    r.step()
    r.clock.advance(DT)
    r.ctl.tick()
    r.clock.advance(DT)  # inputs 0.2 s old
    r.ctl.tick()
    assert values(r.out) == [1.0, 2.0]
    assert {p["severity"] for p in r.ctl.report().problems} == {"stale"}
    r.feed(5.0, stamp_s=r.clock.s - 0.5)  # still old
    r.step()
    assert len(r.runtime.calls) == 1 and not r.out.of("rejected")
    r.feed(5.0)
    r.ctl.tick()
    assert values(r.out) == [1.0, 2.0]  # the dropped plan is not picked up again
    r.step()
    assert values(r.out) == [1.0, 2.0, 5.0]


def test_a_malformed_input_holds_at_the_next_tick_and_is_rejected_once():
    r = rig()
    stamp = r.feed(1.0)
    r.step()
    r.clock.advance(DT)
    bad = r.feed(1.0, bad="state: NaN at indices [0]", slot="state.joints")
    r.ctl.tick()  # the plan still had actions: none is sent
    assert values(r.out) == [1.0]
    for _ in range(3):
        r.ctl.infer_once()
    (event,) = r.out.of("rejected")
    assert isinstance(event, RejectedEvent)
    assert event.input == "state.joints" and "NaN" in event.reason
    assert event.stamp_ns == min(stamp, bad)  # as the chunk would have been stamped
    report = r.ctl.report()
    assert report.counters["input_faults"] == 1 and not report.healthy
    assert any(p["severity"] == "fault" for p in report.problems)
    r.feed(2.0)
    r.step()
    assert values(r.out) == [1.0, 2.0]


def raw_image(height: int, width: int, value: int = 0) -> SimpleNamespace:
    """A raw rgb8 image message (the fields the conversions read)."""
    data = bytes([value]) * (3 * width * height)
    return SimpleNamespace(encoding="rgb8", height=height, width=width, step=3 * width, data=data)


def test_an_image_of_another_size_without_resizing_holds_at_the_next_tick():
    """``cameras.resize: false``: the node's camera slot (its check and conversion) finds an
    image of another size on arrival. It was found only when the next observation was
    converted, and the plan in force kept commanding until then."""
    camera = InputSlot(
        "camera.front",
        "camera front (cam)",
        image_converter(False, 2, 3, resize=False),
        image_checker(False, 2, 3, resize=False),
    )
    state = InputSlot("state.joints", "state joints (js)", lambda m: m.value, eager=True)
    r = rig(inputs=InputSet([("observation.images.front", camera)], [state]))

    def feed(value: float, image: SimpleNamespace) -> None:
        camera.update(image, r.clock.ns, r.clock.ns)
        state.update(Msg(np.array([value, 0.0])), r.clock.ns, r.clock.ns)

    feed(1.0, raw_image(2, 3))
    r.step()
    assert values(r.out) == [1.0]
    r.clock.advance(DT)
    camera.update(raw_image(3, 3), r.clock.ns, r.clock.ns)
    r.ctl.tick()  # the plan still had actions: none is sent
    assert values(r.out) == [1.0]
    refusal = "image is 3x3, the policy expects 3x2 (set cameras.resize: true to resize)"
    (problem,) = r.ctl.report().problems
    assert problem["severity"] == "fault" and problem["input"] == "camera.front"
    assert problem["message"] == f"camera front (cam): {refusal}"
    r.ctl.infer_once()
    (event,) = r.out.of("rejected")
    assert event.input == "camera.front" and refusal in event.reason
    assert not r.runtime.calls[1:], "a chunk from an image of another size"
    r.clock.advance(DT)
    feed(2.0, raw_image(2, 3))
    r.step()
    assert values(r.out) == [1.0, 2.0] and r.ctl.report().healthy


def test_a_rejected_observation_carries_the_newest_stamp_when_asked():
    r = rig(stamp_mode="newest")
    r.feed(1.0, slot="camera.front")
    r.clock.advance(0.01)
    newest = r.feed(1.0, bad="broken", slot="state.joints")
    r.step()
    (event,) = r.out.of("rejected")
    assert event.stamp_ns == newest


def test_inputs_stamped_ahead_wait_for_the_clock_then_are_clock_skew():
    r = rig()
    r.feed(1.0, stamp_s=r.clock.s + 1.0)  # 1 s ahead, the clock has not moved since
    r.step()
    assert not r.runtime.calls and not r.out.of("rejected")
    assert r.ctl.report().problems == []  # early: not a problem yet
    r.clock.advance(0.01)
    r.step()
    (event,) = r.out.of("rejected")
    assert "clock skew" in event.reason and "max_future_stamp 0.25" in event.reason
    assert not r.runtime.calls
    r.feed(2.0, stamp_s=r.clock.s + 0.1)  # ahead, within the tolerance
    r.clock.advance(0.01)
    r.step()
    assert len(r.runtime.calls) == 1


def test_a_raised_tolerance_accepts_a_wider_spread():
    r = rig()
    r.feed(1.0, stamp_s=r.clock.s + 0.5, slot="state.joints")
    r.feed(1.0, slot="camera.front")
    r.clock.advance(0.001)
    r.step()
    assert r.out.of("rejected") and not r.runtime.calls
    r.ctl.update_settings(max_future_stamp=1.0)
    r.step()
    assert len(r.runtime.calls) == 1 and r.loop.max_lead == 1.0


def test_an_invalid_observation_holds_until_a_valid_one():
    r = rig()
    r.feed(1.0)
    r.runtime.invalid = "state: expected shape (8,)"
    r.step()
    (event,) = r.out.of("rejected")
    assert event.input == "observation" and "expected shape" in event.reason
    assert r.ctl.fault and not r.out.commands
    r.runtime.invalid = ""
    r.feed(2.0)
    r.step()
    assert not r.ctl.fault and values(r.out) == [2.0]


def test_a_too_long_task_is_refused_and_holds():
    r = rig()
    r.feed(1.0)
    r.step()
    r.ctl.set_task("x" * 1001)
    r.clock.advance(DT)
    r.step()
    assert values(r.out) == [1.0]
    assert "1001 characters" in r.ctl.report().problems[0]["message"]
    r.ctl.set_task("place")
    assert r.ctl.task() == "place"
    r.feed(3.0)
    r.step()
    assert values(r.out) == [1.0, 3.0]
    assert r.runtime.calls[-1][0].task == "place"


# --------------------------------------------------------------------------- policy faults
def test_a_non_finite_policy_output_is_rejected_and_held():
    r = rig(Settings(task_text="pick", replan_threshold=0.35))
    r.feed(1.0)
    r.step()
    r.runtime.nan = True
    r.clock.advance(DT)
    r.feed(2.0)
    r.step()
    (event,) = r.out.of("rejected")
    assert event.input == "policy" and "NaN" in event.reason
    assert event.reason.startswith(f"policy: {NON_FINITE_OUTPUT}: ")
    assert "policy" in r.ctl.inference_error and r.ctl.fault
    assert values(r.out) == [1.0]  # the old plan is not executed past the fault
    assert r.ctl.report().counters["inference_errors"] == 1
    assert all(np.all(np.isfinite(a)) for a, _ in r.out.chunks)
    r.runtime.nan = False
    r.feed(3.0)
    r.step()
    assert values(r.out) == [1.0, 3.0] and not r.ctl.fault and not r.ctl.inference_error


def test_the_runtimes_non_finite_output_error_holds_with_its_own_reason():
    r = rig(Settings(task_text="pick", replan_threshold=0.35))
    r.feed(1.0)
    r.step()
    message = "the policy produced NaN/inf actions for this observation"
    r.runtime.error = NonFiniteOutputError(message)  # raised by the runtime, not returned
    r.clock.advance(DT)
    r.feed(2.0)
    r.step()
    (event,) = r.out.of("rejected")
    reason = f"policy: non_finite_output: {message}"
    assert (event.input, event.reason, event.stamp_ns) == ("policy", reason, r.clock.ns)
    assert r.ctl.fault == reason and r.ctl.inference_error == reason  # a visible fault
    report = r.ctl.report()
    assert report.problems == [{"severity": "fault", "input": "policy", "message": reason}]
    assert not report.healthy and report.counters["inference_errors"] == 1
    assert report.counters["input_faults"] == 0  # the inputs are not blamed
    assert ("error", f"holding: {reason}") in r.out.logs
    assert not any("inference failed" in text for _, text in r.out.logs)  # not a crash
    assert values(r.out) == [1.0]  # held: the old plan is not executed past the fault
    r.clock.advance(DT)
    r.step()
    assert values(r.out) == [1.0] and len(r.out.of("rejected")) == 1  # announced once
    r.runtime.error = None
    r.feed(3.0)
    r.step()
    assert values(r.out) == [1.0, 3.0] and not r.ctl.fault and not r.ctl.inference_error


def test_other_value_errors_of_the_policy_keep_their_message():
    r = rig()
    r.feed(1.0)
    r.runtime.error = ObservationError("state contains NaN/inf or is not numeric")
    r.step()
    (event,) = r.out.of("rejected")
    assert event.input == "policy" and NON_FINITE_OUTPUT not in event.reason
    assert event.reason == "policy: state contains NaN/inf or is not numeric"


def test_an_inference_failure_is_a_fault_until_the_next_chunk():
    r = rig()
    r.feed(1.0)
    r.runtime.error = RuntimeError("device lost")
    r.step()
    assert r.ctl.fault == "inference: RuntimeError: device lost"
    assert r.ctl.report().counters["inference_errors"] == 1
    assert ("error", "inference failed, holding: device lost") in r.out.logs
    assert not r.out.commands
    r.runtime.error = None
    r.feed(2.0)
    r.step()
    assert values(r.out) == [2.0]


# --------------------------------------------------------------------------- services
def test_pause_holds_and_stops_inference_until_resume():
    r = rig()
    r.feed(1.0)
    r.step()
    assert r.ctl.pause() is False and r.ctl.pause() is True
    assert len(r.out.of("pause")) == 1
    r.clock.advance(DT)
    r.feed(2.0)
    r.step()
    assert values(r.out) == [1.0] and len(r.runtime.calls) == 1
    assert r.ctl.report().paused and not r.ctl.report().healthy
    assert r.ctl.resume() is True and r.ctl.resume() is False
    assert len(r.out.of("resume")) == 1
    r.step()
    assert values(r.out) == [1.0, 2.0]


def test_reset_clears_plan_counters_and_reseeds_before_the_next_chunk():
    r = rig()
    r.feed(1.0)
    r.step()
    r.ctl.reset()
    report = r.ctl.report()
    assert report.counters["commands"] == 0 and report.counters["chunks_accepted"] == 0
    assert r.loop.scheduler.plan is None and r.out.of("reset")[0].t_ns == r.clock.ns
    assert r.runtime.seeds == []
    r.step()
    assert r.runtime.seeds == [7] and len(r.runtime.calls) == 2


def test_a_seed_changed_at_run_time_is_the_one_the_next_reset_uses():
    r = rig()
    r.feed(1.0)
    r.step()
    r.ctl.update_settings(seed=21)
    r.step()
    assert r.runtime.seeds == []  # a new seed waits for the next reset
    r.ctl.reset()
    r.step()
    r.ctl.update_settings(seed=-1)
    r.ctl.reset()
    r.step()
    assert r.runtime.seeds == [21, None]  # -1: a random seed


def test_a_chunk_computed_across_a_reset_is_discarded():
    r = rig()
    r.feed(1.0)
    r.runtime.during = r.ctl.reset
    r.step()
    assert not r.out.chunks and not r.out.of("chunk") and not r.out.commands
    assert r.ctl.report().counters["discarded_chunks"] == 1


def test_a_chunk_computed_while_an_input_turned_malformed_is_discarded():
    r = rig()
    r.feed(1.0)
    r.runtime.during = lambda: r.feed(1.0, bad="state: NaN at indices [0]", slot="state.joints")
    r.step()
    assert not r.out.chunks and not r.out.of("chunk") and not r.out.commands
    assert r.ctl.report().counters["discarded_chunks"] == 1
    assert r.loop.scheduler.plan is None
    r.runtime.during = None
    r.feed(2.0)
    r.step()
    assert values(r.out) == [2.0]


def test_a_chunk_computed_while_an_input_came_stamped_ahead_is_discarded():
    r = rig()
    r.feed(1.0)

    def skewed() -> None:
        r.feed(1.0, stamp_s=r.clock.s + 10.0, slot="camera.front")
        r.clock.advance(0.01)  # the clock moved: clock skew, not an early message

    r.runtime.during = skewed
    r.step()
    assert not r.out.of("chunk") and not r.out.commands
    assert r.ctl.report().counters["discarded_chunks"] == 1


def test_stop_commands_sends_one_hold_then_nothing():
    r = rig(hold_mode="zero", limits=ActionLimits.build(DIM, lower=[0.5], upper=[9.0]))
    r.feed(1.0)
    r.step()
    r.ctl.stop_commands()
    r.clock.advance(DT)
    r.step()
    assert values(r.out) == [1.0, 0.5]  # zero, clamped to the bounds
    assert not r.ctl.active


# --------------------------------------------------------------------------- settings
def test_dry_run_computes_but_publishes_nothing():
    r = rig(Settings(task_text="pick", dry_run=True))
    r.feed(1.0)
    r.step()
    assert not r.out.chunks and not r.out.commands
    (event,) = r.out.of("chunk")
    assert event.accepted and not event.published
    assert r.ctl.report().counters["dry_run_commands"] == 1


def test_chunks_and_commands_are_clamped_to_the_limits():
    r = rig(limits=ActionLimits.build(DIM, lower=[-1.0], upper=[2.5], max_delta=[0.5]))
    r.feed(1.0)
    r.step()
    ((actions, _),) = r.out.chunks
    assert actions.max() == 2.5
    for _ in range(4):
        r.clock.advance(DT)
        r.ctl.tick()
    assert values(r.out) == [1.0, 1.5, 2.0, 2.5, 2.5]


@pytest.mark.parametrize(("mode", "expected"), [("none", [1.0, 2.0]), ("last", [1.0, 2.0, 2.0])])
def test_hold_modes_while_inputs_are_stale(mode, expected):
    r = rig(Settings(task_text="pick", hold_mode=mode, input_timeout=0.15))
    r.feed(1.0)
    r.step()
    r.clock.advance(DT)
    r.ctl.tick()
    r.clock.advance(DT)
    r.ctl.tick()
    assert values(r.out) == expected


def test_num_steps_goes_to_the_runtime_and_clears_latency_statistics():
    r = rig()
    r.feed(1.0)
    r.step()
    assert r.runtime.calls[-1][1] is None and r.ctl.report().latency_s
    r.ctl.update_settings(num_steps=10)
    assert r.ctl.report().latency_s == {} and r.ctl.report().num_steps == 10
    assert ("info", "num_steps -> 10") in r.out.logs
    r.clock.advance(0.4)
    r.feed(1.0)
    r.step()
    assert r.runtime.calls[-1][1] == 10


def test_the_report_says_what_the_node_does():
    r = rig()
    stamp = r.feed(1.0)
    r.step()
    report = r.ctl.report()
    assert (report.state, report.active, report.paused, report.healthy) == (
        "active",
        True,
        False,
        True,
    )
    assert report.num_steps == 1 and report.control_rate == pytest.approx(1 / DT)
    assert report.policy["policy_type"] == "fake" and report.task == "pick"
    assert report.inputs["state.joints"]["count"] == 1
    assert report.inputs["camera.front"]["age_s"] == (r.clock.ns - stamp) / S
    assert report.counters["commands"] == 1 and report.counters["chunks_accepted"] == 1
    assert report.remaining_s == pytest.approx((HORIZON - 1) * DT)
    assert set(report.latency_s) >= {"total", "e2e", "obs_age", "convert"}


def test_an_unconfigured_controller_reports_and_serves_without_a_session():
    clock, out = FakeClock(), Recorder()
    ctl = PolicyController(clock, out)
    ctl.tick()
    ctl.infer_once()
    assert ctl.pause() is False and ctl.resume() is True
    ctl.reset()
    report = ctl.report()
    assert report.state == "unconfigured" and report.policy is None and report.inputs == {}
    assert [e.kind for e in out.events] == ["pause", "resume", "reset"]


@pytest.mark.parametrize(("simulated", "level"), [(False, "warning"), (True, "info")])
def test_a_clock_jump_is_logged_by_clock_kind(simulated, level):
    """A simulator's reset (sim time) is routine; on a wall clock a jump means a stalled node."""
    r = rig(Settings(task_text="pick"))
    r.ctl.simulated_clock = simulated
    r.feed(1.0)
    r.step()
    r.clock.advance(3.0)
    r.ctl.tick()
    jumps = [(lvl, m) for lvl, m in r.out.logs if m.startswith("the clock jumped 3.")]
    assert len(jumps) == 1 and jumps[0][0] == level, r.out.logs
    assert ("simulator" in jumps[0][1]) == simulated
    assert r.ctl.report().counters["clock_jumps"] == 1


def test_repeated_log_lines_are_throttled():
    r = rig(Settings(task_text="pick", input_timeout=0.15))
    r.feed(1.0)
    r.step()
    r.clock.advance(0.2)
    for _ in range(50):
        r.ctl.tick()
    holding = [m for _, m in r.out.logs if m.startswith("holding")]
    assert len(holding) == 1
    r.clock.advance(2.5)
    r.ctl.tick()  # a 2.5 s clock jump: inputs stale once, as expected, and not logged
    assert len([m for _, m in r.out.logs if m.startswith("holding")]) == 1
    r.clock.advance(0.05)
    r.ctl.tick()
    holding = [m for _, m in r.out.logs if m.startswith("holding")]
    assert len(holding) == 2 and holding[1].endswith("(+49 similar)")


def test_ticks_and_inferences_on_two_threads_keep_commands_in_time_order():
    """The node's two threads (executor: ticks; inference) on the wall clock."""
    out = Recorder()
    r = rig(active=False)
    ctl = PolicyController(time.monotonic_ns, out, Settings(task_text="pick"))
    session = r.ctl.session
    r.ctl.detach()
    ctl.attach(session)
    ctl.activate()
    stop = threading.Event()

    def feed_and_infer():
        while not stop.is_set():
            now = time.monotonic_ns()
            for slot in session.inputs.slots.values():
                slot.update(_msg(slot.name), now, now)
            ctl.infer_once()
            time.sleep(0.002)

    def tick():
        while not stop.is_set():
            ctl.tick()
            time.sleep(0.005)

    threads = [threading.Thread(target=feed_and_infer), threading.Thread(target=tick)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(5)
    stamps = [t for _, t in out.commands]
    assert stamps and stamps == sorted(stamps)
    assert not [m for level, m in out.logs if level == "error"]


def _msg(name: str) -> Msg:
    value = np.zeros((2, 2, 3), np.uint8) if name.startswith("camera") else np.zeros(2)
    return Msg(value)


# --------------------------------------------------------------------------- rate limits
def test_rejections_of_one_input_are_announced_at_most_once_per_second():
    """A malformed input with new messages at 100 Hz was one ``rejected`` event per message."""
    r = rig()
    r.feed(1.0)
    r.step()  # a chunk from good inputs
    for i in range(150):  # 1.5 s of a joint state with a NaN at 100 Hz
        r.clock.advance(0.01)
        r.feed(1.0 + i, bad="state: NaN at indices [0]", slot="state.joints")
        r.ctl.tick()  # holds: the plan is dropped, an observation is due
        r.ctl.infer_once()
    events = r.out.of("rejected")
    assert r.ctl.report().counters["input_faults"] == 150  # every rejection is counted
    assert len(events) == 2, [e.suppressed for e in events]  # at 0 s and at 1 s
    assert events[0].suppressed == 0 and events[1].suppressed == 99
    assert events[1].t_ns - events[0].t_ns == S
    assert all(e.input == "state.joints" and "NaN" in e.reason for e in events)
    r.clock.advance(0.01)
    r.feed(2.0, bad="broken image", slot="camera.front")  # another input: its own limit
    r.ctl.infer_once()
    assert r.out.of("rejected")[-1].input == "camera.front"


@pytest.mark.parametrize("how", ["chunk", "reset", "resume"])
def test_the_first_rejection_after_good_inputs_reset_or_resume_is_announced_at_once(how):
    r = rig()
    r.feed(1.0)
    r.step()
    r.clock.advance(0.01)
    r.feed(1.0, bad="NaN", slot="state.joints")
    r.ctl.tick()
    r.ctl.infer_once()
    assert len(r.out.of("rejected")) == 1
    r.clock.advance(0.01)
    if how == "chunk":  # good inputs again make a chunk
        r.feed(2.0)
        r.ctl.infer_once()
        assert r.out.chunks[-1][0][0, 0] == 2.0
    elif how == "reset":
        r.ctl.reset()
    else:
        r.ctl.pause()
        r.ctl.resume()
    r.clock.advance(0.01)
    r.feed(3.0, bad="NaN again", slot="state.joints")
    r.ctl.tick()
    r.ctl.infer_once()
    events = r.out.of("rejected")
    assert len(events) == 2 and "NaN again" in events[1].reason


def test_a_flood_of_tasks_logs_two_lines_per_period_and_ends_with_the_task_in_force():
    """1000 tasks in 1 s were 1000 info lines (103/s seen on the node)."""
    r = rig()
    for i in range(1000):
        r.clock.advance(0.001)
        r.ctl.set_task(f"task number {i}")
        r.ctl.tick()
    lines = [m for level, m in r.out.logs if m.startswith("task: ")]
    assert lines == ["task: 'task number 0'"]
    r.clock.advance(1.01)  # 2 s after the first line
    r.ctl.tick()
    lines = [m for level, m in r.out.logs if m.startswith("task: ")]
    assert lines[1:] == ["task: 'task number 999' (+998 earlier changes not logged)"]
    r.ctl.set_task("task number 999")  # unchanged: no line
    r.clock.advance(5.0)
    r.ctl.report()
    assert len([m for _, m in r.out.logs if m.startswith("task: ")]) == 2
    assert r.ctl.task() == "task number 999"


def test_num_steps_changes_are_logged_at_most_once_per_period():
    r = rig()
    for i in range(50):
        r.clock.advance(0.01)
        r.ctl.update_settings(num_steps=1 + i % 2)
    lines = [m for _, m in r.out.logs if m.startswith("num_steps")]
    assert lines == ["num_steps -> 1"]
    r.clock.advance(2.0)
    r.ctl.report()  # the status timer flushes too
    lines = [m for _, m in r.out.logs if m.startswith("num_steps")]
    assert lines[1:] == ["num_steps -> 2 (+48 earlier changes not logged)"]
    assert r.ctl.settings.num_steps == 2


def test_a_change_held_back_by_the_log_rate_is_logged_when_the_session_is_detached():
    """The node's shutdown and cleanup detach the session: the task in force is logged then,
    not by a timer after the node has gone (or never)."""
    r = rig()
    r.ctl.set_task("first task")
    r.clock.advance(0.5)
    r.ctl.set_task("second task")  # within the period: held back
    assert [m for _, m in r.out.logs if m.startswith("task: ")] == ["task: 'first task'"]
    r.ctl.detach()
    lines = [m for _, m in r.out.logs if m.startswith("task: ")]
    assert lines == ["task: 'first task'", "task: 'second task'"]
    r.clock.advance(5.0)
    r.ctl.tick()
    r.ctl.report()
    assert len([m for _, m in r.out.logs if m.startswith("task: ")]) == 2
