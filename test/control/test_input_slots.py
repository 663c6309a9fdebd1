"""Input slots and the input set: faults on arrival, cached conversions, the judgement at a
time (missing, stale, clock skew, early) and the observation with its stamp."""

from __future__ import annotations

import numpy as np
import pytest

from snapflow_ros.control import InputProblem, InputSlot, short, task_preview

from .fakes import Msg, S, make_inputs


def test_a_check_failing_on_arrival_is_the_slots_fault_until_a_good_message():
    slot = InputSlot("camera.front", "camera front", lambda m: m.value, lambda m: m.value.shape)
    slot.update(Msg(None), recv_ns=5)
    assert slot.state().fault and slot.errors == 1
    with pytest.raises(InputProblem) as err:
        slot.value()
    assert err.value.fault and err.value.input_name == "camera.front"
    slot.update(Msg(np.zeros(3)), recv_ns=6, stamp_ns=4)
    assert slot.state().fault == "" and slot.value()[1:] == (4, 6)


def test_an_unset_stamp_is_the_receive_time_and_a_stamp_fault_is_a_fault():
    slot = InputSlot("state.joints", "state", lambda m: m.value, eager=True)
    slot.update(Msg(1.0), recv_ns=9)
    assert slot.state().stamp_ns == 9
    slot.update(Msg(1.0), recv_ns=10, stamp_ns=3, stamp_fault="nanosec >= 1e9")
    assert slot.state().fault == "nanosec >= 1e9"
    slot.mark_unreadable("AttributeError: no header")
    assert slot.state().fault.startswith("unreadable message") and slot.errors == 2


def test_conversions_run_once_per_message():
    calls = []

    def convert(msg):
        calls.append(msg)
        return msg.value * 2

    slot = InputSlot("camera.front", "camera", convert)
    slot.update(Msg(np.ones(2)), recv_ns=1)
    for _ in range(3):
        np.testing.assert_array_equal(slot.value()[0], [2.0, 2.0])
    assert len(calls) == 1
    slot.update(Msg(np.ones(2)), recv_ns=2)
    slot.value()
    assert len(calls) == 2


def test_a_conversion_failure_becomes_the_slots_fault():
    slot = InputSlot("camera.front", "camera", lambda m: 1 / 0)
    slot.update(Msg(1), recv_ns=1)
    with pytest.raises(InputProblem, match="division by zero"):
        slot.value()
    assert "division" in slot.state().fault


def test_problems_at_a_time():
    inputs = make_inputs()
    now = 100 * S
    kinds = {p.input: p.severity for p in inputs.problems(now, 0.5, 0.25, "pick")}
    assert kinds == {"camera.front": "missing", "state.joints": "missing"}
    inputs.slots["camera.front"].update(Msg(np.zeros((2, 2, 3))), now, now - S)  # 1 s old
    inputs.slots["state.joints"].update(Msg(np.zeros(2)), now, now + S // 2)  # 0.5 s ahead
    kinds = {p.input: p.severity for p in inputs.problems(now, 0.5, 0.25, "pick")}
    assert kinds == {"camera.front": "stale", "state.joints": "early"}
    kinds = {p.input: p.severity for p in inputs.problems(now + 1, 0.5, 0.25, "pick")}
    assert kinds["state.joints"] == "fault"
    assert {p.input for p in inputs.problems(now + 1, 2.0, 1.0, "pick")} == set()
    assert [p.input for p in inputs.problems(now + 1, 2.0, 1.0, "")] == ["task"]


@pytest.mark.parametrize(("mode", "expected"), [("oldest", 10), ("newest", 12)])
def test_the_observation_is_stamped_by_its_oldest_or_newest_input(mode, expected):
    inputs = make_inputs(mode)
    inputs.slots["camera.front"].update(Msg(np.zeros((2, 2, 3), np.uint8)), 13, 10)
    inputs.slots["state.joints"].update(Msg(np.array([1.0, 2.0])), 14, 12)
    observed = inputs.observe(14, 1.0, 1.0, "pick")
    assert observed.stamp_ns == expected and observed.task == "pick"
    assert (observed.newest_stamp_ns, observed.newest_recv_ns) == (12, 14)
    assert observed.state.dtype == np.float32 and observed.state.tolist() == [1.0, 2.0]
    assert list(observed.images) == ["observation.images.front"]


def test_observe_says_why_not_and_which_stamp_a_fault_carries():
    inputs = make_inputs()
    with pytest.raises(InputProblem) as err:
        inputs.observe(10, 1.0, 1.0, "pick")
    assert not err.value.fault and not err.value.retry
    inputs.slots["camera.front"].update(Msg(np.zeros((2, 2, 3)), bad="bad encoding"), 10, 7)
    inputs.slots["state.joints"].update(Msg(np.zeros(2)), 10, 9)
    with pytest.raises(InputProblem) as err:
        inputs.observe(10, 1.0, 1.0, "pick")
    assert err.value.fault and err.value.input_name == "camera.front"
    assert err.value.stamp_ns == 7
    inputs.slots["camera.front"].update(Msg(np.zeros((2, 2, 3))), 10, 10 + 2 * S)
    with pytest.raises(InputProblem) as err:  # ahead of a clock that did not move: wait
        inputs.observe(10, 1.0, 1.0, "pick")
    assert err.value.retry and not err.value.fault


def test_the_task_topic_overrides_the_parameter_and_is_bounded():
    inputs = make_inputs(max_task_chars=10)
    assert inputs.task("from parameter") == "from parameter"
    assert inputs.set_task("topic") is True and inputs.set_task("topic") is False
    assert inputs.task("from parameter") == "topic"
    assert inputs.set_task("x" * 11) is False
    assert "11 characters on task, at most 10" in inputs.task_fault
    generation = inputs.generation()
    inputs.set_task("ok")
    assert inputs.generation() == generation + 1 and inputs.task_fault == ""


def test_texts_from_inputs_stay_short():
    assert len(short("x" * 1000)) == 200 and short("abc") == "abc"
    assert task_preview("y" * 500) == "y" * 80 + "... (500 characters)"


@pytest.mark.parametrize("stamp_s", [-1.0, -(2.0**31), 1e-9])
def test_only_a_zero_stamp_means_no_stamp_a_negative_one_is_stale(stamp_s):
    """sec = -1 (1969) or the wire value -2^31 used to count as received now: full-rate
    commands from a node reporting itself healthy. They are judged like any other stamp."""
    inputs = make_inputs()
    now = 100 * S
    stamp = round(stamp_s * S)
    inputs.slots["camera.front"].update(Msg(np.zeros((2, 2, 3))), now, stamp)
    inputs.slots["state.joints"].update(Msg(np.zeros(2)), now, stamp)
    assert inputs.slots["state.joints"].state().stamp_ns == stamp
    problems = inputs.problems(now, 0.5, 0.25, "pick")
    assert {p.input: p.severity for p in problems} == {
        "camera.front": "stale",
        "state.joints": "stale",
    }
    with pytest.raises(InputProblem) as err:
        inputs.observe(now, 0.5, 0.25, "pick")
    assert not err.value.fault and "stale" in str(err.value)
    inputs.slots["state.joints"].update(Msg(np.zeros(2)), now, 0)  # zero: no stamp
    assert inputs.slots["state.joints"].state().stamp_ns == now


def test_a_stamp_far_in_the_future_is_clock_skew():
    inputs = make_inputs()
    now = 100 * S
    far = (2**31 - 1) * S  # the largest stamp a header can carry (2038)
    inputs.slots["camera.front"].update(Msg(np.zeros((2, 2, 3))), now, now)
    inputs.slots["state.joints"].update(Msg(np.zeros(2)), now, far)
    kinds = {p.input: p.severity for p in inputs.problems(now + 1, 0.5, 0.25, "pick")}
    assert kinds == {"state.joints": "fault"}
