"""The bridge's episode events (snapflow_ros/sim/episode_events.py): the JSON on
``libero/episode`` is what the bridge wrote before the events were typed (same keys, same
order, same values), every kind decodes back to an equal event, recordings of older bridges
decode and encode back to the same text, and malformed messages give a clear ValueError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from snapflow_ros.sim.episode_events import (
    CommandCounts,
    EpisodeEnd,
    EpisodeStart,
    decode_episode_event,
    to_json,
)
from test.fresh_interpreter import run_without

from ..control.test_layers import ROS
from .test_episodes import LEAD_NS, FakeSim, Rig

GOLDEN_INPUTS = Path(__file__).resolve().parents[1] / "data" / "golden" / "inputs"

START = EpisodeStart(
    episode_id=3,
    suite="libero_spatial",
    task_index=0,
    task="pick up the black bowl",
    task_name="pick_up_the_black_bowl",
    init_state_index=2,
    max_steps=280,
    mode="lockstep",
    start_ns=31_000_000_000,
    first_stamp_ns=31_000_000_000,
    stamps="sim",
    reset_s=3.9,
    build_s=6.2,
)
# The start event as the bridge built it before it was typed: keys in this order.
START_WIRE = {
    "event": "start",
    "episode_id": 3,
    "suite": "libero_spatial",
    "task_index": 0,
    "task": "pick up the black bowl",
    "task_name": "pick_up_the_black_bowl",
    "init_state_index": 2,
    "max_steps": 280,
    "mode": "lockstep",
    "start_ns": 31_000_000_000,
    "first_stamp_ns": 31_000_000_000,
    "stamps": "sim",
    "reset_s": 3.9,
    "build_s": 6.2,
}

END = EpisodeEnd(
    episode_id=3,
    suite="libero_spatial",
    task_index=0,
    task="pick up the black bowl",
    init_state_index=2,
    success=False,
    steps=280,
    reason="max_steps",
    max_steps=280,
    mode="lockstep",
    sim_time_s=14.0,
    wall_s=73.1,
    steps_per_s=3.83,
    step_mean_s=0.227,
    publish_mean_s=None,
    wait_mean_s=0.018,
    commands=CommandCounts(received=281, applied=280, rejected=1, clipped=2, stale=3),
    held_steps=4,
    noop_steps=5,
    kicks=28,
    overruns=6,
    rendered_steps=29,
    end_ns=45_000_000_000,
    final_state=[-0.47, -0.19, 1.11, 2.44, -0.13, -1.16, 0.004, -0.004],
    objects={
        "bowl_1": {
            "max_rise_m": 0.112,
            "final_rise_m": 0.0011,
            "moved_xy_m": 0.2,
            "lift_eef_dx_m": 0.0012,
            "lift_eef_dy_m": -0.0497,
            "lift_eef_dz_m": 0.0351,
        }
    },
)
END_WIRE = {
    "event": "end",
    "episode_id": 3,
    "suite": "libero_spatial",
    "task_index": 0,
    "task": "pick up the black bowl",
    "init_state_index": 2,
    "success": False,
    "steps": 280,
    "reason": "max_steps",
    "max_steps": 280,
    "mode": "lockstep",
    "sim_time_s": 14.0,
    "wall_s": 73.1,
    "steps_per_s": 3.83,
    "step_mean_s": 0.227,
    "publish_mean_s": None,
    "wait_mean_s": 0.018,
    "commands": {"received": 281, "applied": 280, "rejected": 1, "clipped": 2, "stale": 3},
    "held_steps": 4,
    "noop_steps": 5,
    "kicks": 28,
    "overruns": 6,
    "rendered_steps": 29,
    "end_ns": 45_000_000_000,
    "final_state": [-0.47, -0.19, 1.11, 2.44, -0.13, -1.16, 0.004, -0.004],
    "objects": {
        "bowl_1": {
            "max_rise_m": 0.112,
            "final_rise_m": 0.0011,
            "moved_xy_m": 0.2,
            "lift_eef_dx_m": 0.0012,
            "lift_eef_dy_m": -0.0497,
            "lift_eef_dz_m": 0.0351,
        }
    },
}


@pytest.mark.parametrize(("event", "wire"), [(START, START_WIRE), (END, END_WIRE)])
def test_every_kind_is_written_as_before_and_decodes_back(event, wire):
    text = to_json(event)
    assert text == json.dumps(wire)  # same keys, same order, same values: byte for byte
    decoded = decode_episode_event(text)
    assert decoded == event and type(decoded) is type(event)
    assert decoded.kind == wire["event"]
    assert decode_episode_event(text.encode()) == event  # bytes too


def test_the_driver_publishes_the_events_it_published_before():
    """The real driver (fake simulator): one episode of one successful step. Its JSON is the
    dict the driver built before, key for key; only timings measured on the wall clock (and
    the kicks, which depend on them) are taken from what it sent."""
    r = Rig(sim=FakeSim(done_after=1))
    try:
        start = r.started()
        r.driver.command([0.0] * 7, stamp_ns=start.first_stamp_ns - LEAD_NS)
        r.wait(lambda: r.out.events("end"), "the end event")
    finally:
        r.close()
    start_text, end_text = [item[2] for item in r.out.of("episode")]
    assert start_text == json.dumps(
        {
            "event": "start",
            "episode_id": 1,
            "suite": "libero_spatial",
            "task_index": 0,
            "task": "put the bowl on the plate",
            "task_name": "bowl_plate",
            "init_state_index": 0,
            "max_steps": 280,
            "mode": "lockstep",
            "start_ns": 11_000_000_000,  # clock.start 1 s + clock.reset_gap 10 s
            "first_stamp_ns": 11_000_000_000,
            "stamps": "sim",
            "reset_s": 0.01,
            "build_s": 0.02,
        }
    )
    sent = json.loads(end_text)
    assert end_text == json.dumps(
        {
            "event": "end",
            "episode_id": 1,
            "suite": "libero_spatial",
            "task_index": 0,
            "task": "put the bowl on the plate",
            "init_state_index": 0,
            "success": True,
            "steps": 1,
            "reason": "success",
            "max_steps": 280,
            "mode": "lockstep",
            "sim_time_s": 0.05,
            "wall_s": sent["wall_s"],
            "steps_per_s": sent["steps_per_s"],
            "step_mean_s": sent["step_mean_s"],
            "publish_mean_s": sent["publish_mean_s"],
            "wait_mean_s": sent["wait_mean_s"],
            "commands": {"received": 1, "applied": 1, "rejected": 0, "clipped": 0, "stale": 0},
            "held_steps": 0,
            "noop_steps": 0,
            "kicks": sent["kicks"],
            "overruns": 0,
            "rendered_steps": 2,  # the start observation and the step's
            "end_ns": 11_050_000_000,
            "final_state": [0.0] * 8,
            "objects": {
                "can_1": {
                    "max_rise_m": 0.05,
                    "final_rise_m": 0.05,
                    "moved_xy_m": 0.0,
                    "lift_eef_dx_m": 0.0,
                    "lift_eef_dy_m": 0.05,
                    "lift_eef_dz_m": 0.035,
                }
            },
        }
    )
    assert isinstance(sent["wall_s"], float) and isinstance(sent["step_mean_s"], float)


def _recorded_episode_events() -> list[str]:
    store = get_typestore(Stores.ROS2_KILTED)
    with Reader(GOLDEN_INPUTS) as reader:
        return [
            store.deserialize_cdr(raw, conn.msgtype).data
            for conn, _, raw in reader.messages()
            if conn.topic == "/libero/episode"
        ]


def test_a_recording_of_an_older_bridge_decodes_and_encodes_back_unchanged():
    """The golden bag's events come from a bridge before ``rendered_steps`` and ``objects``."""
    texts = _recorded_episode_events()
    assert [json.loads(t)["event"] for t in texts] == ["start", "end"]
    start, end = (decode_episode_event(t) for t in texts)
    assert isinstance(start, EpisodeStart) and isinstance(end, EpisodeEnd)
    assert (end.steps, end.reason, end.commands.stale) == (30, "max_steps", 1)
    assert end.rendered_steps is None and end.objects is None  # not written then
    assert [to_json(start), to_json(end)] == texts


def test_unknown_keys_of_a_newer_bridge_are_ignored():
    wire = {**START_WIRE, "camera_fps": 20}
    assert decode_episode_event(json.dumps(wire)) == START


def _without(wire: dict, *keys: str) -> str:
    return json.dumps({k: v for k, v in wire.items() if k not in keys})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"event": "start", "episode_id": ', "episode event is not JSON (Expecting value"),
        ("", "episode event is not JSON"),
        ('["start"]', "episode event is not a JSON object: '[\"start\"]'"),
        ('{"episode_id": 1}', "episode event without an 'event' key"),
        ('{"event": "paused"}', "unknown episode event 'paused' (known: 'end', 'start')"),
        ('{"event": 1}', "unknown episode event 1 (known: 'end', 'start')"),
        (_without(START_WIRE, "first_stamp_ns"), "episode event 'start' lacks 'first_stamp_ns'"),
        (
            _without(END_WIRE, "steps", "end_ns"),
            "episode event 'end' lacks 'steps', 'end_ns'",
        ),
        (
            json.dumps({**END_WIRE, "commands": {"received": 1, "applied": 1}}),
            "episode event 'end' lacks 'commands.rejected', 'commands.clipped', 'commands.stale'",
        ),
        (
            json.dumps({**END_WIRE, "steps": "280"}),
            "episode event 'end': 'steps' is '280' (str), expected int",
        ),
        (
            json.dumps({**END_WIRE, "steps": 280.0}),
            "episode event 'end': 'steps' is 280.0 (float), expected int",
        ),
        (
            json.dumps({**END_WIRE, "success": 0}),
            "episode event 'end': 'success' is 0 (int), expected bool",
        ),
        (
            json.dumps({**END_WIRE, "end_ns": None}),
            "episode event 'end': 'end_ns' is None (NoneType), expected int",
        ),
        (
            json.dumps({**END_WIRE, "commands": {**END_WIRE["commands"], "applied": True}}),
            "episode event 'end': 'commands.applied' is True (bool), expected int",
        ),
        (
            json.dumps({**END_WIRE, "commands": [1, 2, 3, 4, 5]}),
            "episode event 'end': 'commands' is [1, 2, 3, 4, 5] (list), expected an object",
        ),
        (
            json.dumps({**END_WIRE, "final_state": [0.1, "x"]}),
            "episode event 'end': 'final_state[1]' is 'x' (str), expected float",
        ),
        (
            json.dumps({**END_WIRE, "objects": {"bowl": {"max_rise_m": "high"}}}),
            "episode event 'end': 'objects.bowl.max_rise_m' is 'high' (str), expected float",
        ),
        (
            json.dumps({**START_WIRE, "task": None}),
            "episode event 'start': 'task' is None (NoneType), expected str",
        ),
    ],
)
def test_malformed_messages_raise_a_clear_value_error(text, message):
    with pytest.raises(ValueError) as raised:
        decode_episode_event(text)
    assert str(raised.value).startswith(message), str(raised.value)


def test_optional_fields_may_be_null_or_integral():
    """None where the bridge writes None (no samples, zero wall time); an integral number
    where a float is expected is a float."""
    wire = {**END_WIRE, "steps_per_s": None, "step_mean_s": None, "wall_s": 73}
    event = decode_episode_event(json.dumps(wire))
    assert (event.steps_per_s, event.step_mean_s, event.wall_s) == (None, None, 73)
    assert to_json(event) == json.dumps(wire)


def test_importing_the_events_loads_no_ros_torch_or_opencv():
    run_without("import snapflow_ros.sim.episode_events", (*ROS, "torch", "cv2"))
