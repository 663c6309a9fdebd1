"""replay's step planner (snapflow_ros.bags.replay_plan) without ROS: from a bag's messages, the
chosen inputs and the mode, what is published when and what the replay waits for; which topics
it publishes and records; the outputs bag's info. No rclpy, no node."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from snapflow_ros.bags.errors import BagError
from snapflow_ros.bags.io import (
    BagMessage,
    BagReader,
    BagWriter,
    header_stamp_ns,
    typestore,
    with_header_stamp,
)
from snapflow_ros.bags.replay_plan import (
    GATE_TIMEOUT_S,
    Ask,
    LockstepPlan,
    NodeGraph,
    Publish,
    Skip,
    Stats,
    TimedPlan,
    choose_inputs,
    choose_outputs,
    outputs_info,
    recorded_stamps,
    summary,
)
from snapflow_ros.control.input_slots import MAX_FUTURE_STAMP

IMAGE = "sensor_msgs/msg/Image"
JOINTS = "sensor_msgs/msg/JointState"
STRING = "std_msgs/msg/String"
CHUNK = "trajectory_msgs/msg/JointTrajectory"
STATUS = "std_msgs/msg/String"
FRONT, WRIST, STATE, TASK = "/cam/front", "/cam/wrist", "/joint_states", "/task"
INPUTS = {FRONT: IMAGE, WRIST: IMAGE, STATE: JOINTS, TASK: STRING}
PARAMS = {
    "observation_stamp": "oldest",
    "replan_threshold": 0.5,
    "input_timeout": 0.5,
    "max_future_stamp": 0.25,
}
S = 1_000_000_000  # one second in ns
T0 = 10 * S  # the first frame of frames()


# ---------------------------------------------------------------------------- messages
def _header(ts, stamp_ns: int):
    T = ts.types
    time = T["builtin_interfaces/msg/Time"](sec=stamp_ns // S, nanosec=stamp_ns % S)
    return T["std_msgs/msg/Header"](stamp=time, frame_id="f")


def _image(stamp_ns: int) -> bytes:
    ts = typestore()
    msg = ts.types[IMAGE](
        header=_header(ts, stamp_ns),
        height=1,
        width=1,
        encoding="rgb8",
        is_bigendian=0,
        step=3,
        data=np.zeros(3, np.uint8),
    )
    return bytes(ts.serialize_cdr(msg, IMAGE))


def _joints(stamp_ns: int) -> bytes:
    ts = typestore()
    msg = ts.types[JOINTS](
        header=_header(ts, stamp_ns),
        name=["j"],
        position=np.array([0.5]),
        velocity=np.array([], np.float64),
        effort=np.array([], np.float64),
    )
    return bytes(ts.serialize_cdr(msg, JOINTS))


def _string(text: str) -> bytes:
    ts = typestore()
    return bytes(ts.serialize_cdr(ts.types[STRING](data=text), STRING))


def msg(topic: str, log_ns: int, stamp_ns: int = 0) -> BagMessage:
    """A message of ``topic`` logged at ``log_ns``, stamped ``stamp_ns`` (all but the task)."""
    data = {FRONT: _image, WRIST: _image, STATE: _joints}.get(topic)
    return BagMessage(
        topic, INPUTS[topic], log_ns, _string("stack the cups") if data is None else data(stamp_ns)
    )


def published(m: BagMessage) -> Publish:
    return Publish(m.topic, m.data, m.log_ns)


# ---------------------------------------------------------------------------- lock-step
def test_lockstep_publishes_the_task_at_once_and_each_observation_before_asking_for_it():
    task = msg(TASK, 0)
    state_old, state = msg(STATE, 5 * S, 90), msg(STATE, 8 * S, 95)
    front, wrist = msg(FRONT, 10 * S, 100), msg(WRIST, 11 * S, 100)
    front2, wrist2 = msg(FRONT, 20 * S, 200), msg(WRIST, 21 * S, 200)
    late_state = msg(STATE, 22 * S, 205)  # stamped after the second frame: not in it
    plan = LockstepPlan(INPUTS, PARAMS)
    assert plan.observation == [FRONT, WRIST, STATE] and plan.step_topics == [FRONT, WRIST]
    actions = list(plan.actions([task, state_old, state, front, wrist, front2, wrist2, late_state]))
    first, second = (a for a in actions if isinstance(a, Ask))
    assert actions == [
        published(task),  # at once
        # the first frame (both cameras at 100) is complete when a later-stamped message
        # comes: the newest message of each topic (not state_old), in log-time order
        published(state),
        published(front),
        published(wrist),
        first,
        published(front2),
        published(wrist2),
        second,
    ]  # and late_state waits for a frame that never completes: not published
    # what to wait for: the chunk stamped with the oldest input stamp; /clock at that stamp
    assert (first.step.index, first.step.expected_stamp_ns, first.clock_ns) == (0, 95, 95)
    assert first.observation == {FRONT: front.data, WRIST: wrist.data, STATE: state.data}
    assert (second.step.index, second.step.expected_stamp_ns, second.clock_ns) == (1, 95, 95)
    assert second.step.clock_ns == 200  # the newest stamp
    assert second.observation == {FRONT: front2.data, WRIST: wrist2.data, STATE: state.data}


def test_the_last_frame_is_asked_for_at_the_end_of_the_bag():
    messages = [msg(STATE, 1, 10), msg(FRONT, 2, 10), msg(WRIST, 3, 12)]
    actions = list(LockstepPlan(INPUTS, PARAMS).actions(messages))
    assert actions[:3] == [published(m) for m in messages]
    (ask,) = actions[3:]
    assert isinstance(ask, Ask) and ask.step.expected_stamp_ns == 10 and ask.clock_ns == 10


def frames(count: int, spread_ns: int = 0) -> list[BagMessage]:
    """``count`` frames one second apart from T0: state stamped ``spread_ns`` before the
    cameras."""
    out = []
    for i in range(count):
        t = T0 + i * S
        out += [msg(STATE, t, t - spread_ns), msg(FRONT, t + 1, t), msg(WRIST, t + 2, t)]
    return out


def asks(actions) -> list[Ask]:
    return [a for a in actions if isinstance(a, Ask)]


def test_newest_stamp_mode_and_no_gate_without_a_numeric_input_timeout():
    params = {**PARAMS, "observation_stamp": "newest", "input_timeout": None}
    plan = LockstepPlan({FRONT: IMAGE, WRIST: IMAGE, STATE: JOINTS}, params)
    assert not plan.gate
    (ask,) = asks(plan.actions(frames(1, spread_ns=S // 2)))
    # no gate: /clock at the newest stamp; the node answers with the newest stamp
    assert ask.clock_ns == ask.step.clock_ns == T0
    assert ask.step.expected_stamp_ns == T0 and ask.step.oldest_ns == T0 - S // 2
    assert plan.node_settings() == ({"replan_threshold": 0.0}, {"replan_threshold": 0.5})


def test_the_gate_settings_and_their_restore_cover_only_the_parameters_the_node_has():
    plan = LockstepPlan(INPUTS, PARAMS)
    assert plan.gate
    changed, restore = plan.node_settings()
    assert changed == {
        "replan_threshold": 0.0,
        "input_timeout": GATE_TIMEOUT_S,
        "max_future_stamp": MAX_FUTURE_STAMP,
    }
    assert restore == {k: PARAMS[k] for k in changed}
    older = LockstepPlan(INPUTS, {**PARAMS, "max_future_stamp": None})  # a node without it
    assert "max_future_stamp" not in older.node_settings()[0]


def test_an_observation_stamped_too_far_apart_is_skipped_after_its_inputs():
    old_state = msg(STATE, T0, T0 - int((MAX_FUTURE_STAMP + 0.5) * S))  # one, long ago
    messages = [old_state, *[m for m in frames(2) if m.topic != STATE]]
    actions = list(LockstepPlan(INPUTS, PARAMS).actions(messages))
    skips = [a for a in actions if isinstance(a, Skip)]
    assert len(skips) == 2 and not asks(actions)
    assert [s.spread_s for s in skips] == pytest.approx(
        [MAX_FUTURE_STAMP + 0.5, MAX_FUTURE_STAMP + 1.5]
    )
    assert actions[:4] == [*[published(m) for m in messages[:3]], skips[0]]
    # without the gate the node's own tolerance applies: asked for
    ungated = LockstepPlan(INPUTS, {**PARAMS, "input_timeout": None})
    assert len(asks(ungated.actions(messages))) == 2


def test_every_nth_frame_and_only_the_recorded_stamps():
    plan = LockstepPlan(INPUTS, PARAMS, every=2)
    assert [a.step.frame_ns for a in asks(plan.actions(frames(5)))] == [T0, T0 + 2 * S, T0 + 4 * S]
    assert plan.skipped == 2
    only = LockstepPlan(INPUTS, PARAMS, only_stamps={T0 + S, T0 + 3 * S})
    stamps = [a.step.expected_stamp_ns for a in asks(only.actions(frames(5)))]
    assert stamps == [T0 + S, T0 + 3 * S] and only.skipped == 3
    assert [a.step.index for a in asks(LockstepPlan(INPUTS, PARAMS).actions(frames(3)))] == [
        0,
        1,
        2,
    ]


def test_step_topics_choose_the_frames():
    plan = LockstepPlan(INPUTS, PARAMS, step_topics=["joint_states"])  # made absolute
    assert plan.step_topics == [STATE]
    with pytest.raises(BagError, match="step topic /nope is not one of the replayed inputs"):
        LockstepPlan(INPUTS, PARAMS, step_topics=["/nope"])


def test_stopping_the_iteration_ends_the_plan():
    actions = LockstepPlan(INPUTS, PARAMS).actions(frames(10))
    seen = []
    for action in actions:
        seen.append(action)
        if isinstance(action, Ask):
            break
    assert len(asks(seen)) == 1 and len(seen) == 4


# ---------------------------------------------------------------------------- timed
def test_timed_sim_time_keeps_stamps_and_sets_the_clock_at_the_playback_rate():
    offset = 3 * S  # header stamps are 3 s ahead of the log times
    messages = [msg(TASK, 10 * S), msg(FRONT, 11 * S, 14 * S), msg(STATE, 12 * S, 15 * S)]
    plan = TimedPlan(INPUTS, rate=2.0, sim_time=True)
    assert plan.measure_offset(messages) == offset
    timed = list(plan.messages(messages))
    assert [(t.topic, t.at_s, t.clock_ns, t.restamp) for t in timed] == [
        (TASK, 0.0, 10 * S + offset, False),
        (FRONT, 0.5, 11 * S + offset, False),
        (STATE, 1.0, 12 * S + offset, False),
    ]
    assert [t.data for t in timed] == [m.data for m in messages]  # the recorded bytes
    assert plan.clock_at(0.25) == 10 * S + S // 2 + offset  # 0.25 s of wall = 0.5 s of bag


def test_timed_wall_clock_restamps_stamped_messages_and_stops_after_the_duration():
    messages = [msg(TASK, 0), msg(FRONT, S, S), msg(STATE, 2 * S, 2 * S), msg(WRIST, 4 * S, 4 * S)]
    plan = TimedPlan(INPUTS, duration=2.5, sim_time=False)
    timed = list(plan.messages(messages))
    assert [(t.topic, t.at_s, t.clock_ns, t.restamp) for t in timed] == [
        (TASK, 0.0, None, False),  # no header: published as recorded
        (FRONT, 1.0, None, True),
        (STATE, 2.0, None, True),
    ]  # the wrist frame at 4 s is beyond 2.5 s of bag time
    shifted = with_header_stamp(timed[1].data, header_stamp_ns(timed[1].data) + 7)
    assert header_stamp_ns(shifted) == S + 7
    with pytest.raises(BagError, match="--rate must be > 0"):
        TimedPlan(INPUTS, rate=0)


# ---------------------------------------------------------------------------- topics
@pytest.fixture
def bag(tmp_path: Path) -> Path:
    """A bag with the four inputs, a chunk topic and an empty topic."""
    path = tmp_path / "in"
    with BagWriter(path) as writer:
        for topic, msgtype in INPUTS.items():
            writer.add_topic(topic, msgtype)
        writer.add_topic("/empty", JOINTS)
        for m in [msg(TASK, 1), *frames(2)]:
            writer.write(m.topic, m.log_ns, m.data)
    return path


def node(subs: dict[str, str], hashes: dict[str, set[str]] | None = None) -> NodeGraph:
    pubs = {"/policy_node/action_chunk": CHUNK, "/policy_node/status": STATUS}
    return NodeGraph("/policy_node", subs, pubs, hashes or {})


def test_inputs_are_the_bag_topics_the_node_subscribes_to(bag):
    with BagReader(bag) as reader:
        assert (
            choose_inputs(reader, node({**INPUTS, "/other": IMAGE}), allow_missing=["other"])
            == INPUTS
        )
        assert choose_inputs(reader, node(INPUTS), topics=["cam/front"]) == {FRONT: IMAGE}
        with pytest.raises(BagError, match=r"topics the node subscribes to: /other \(.*Image\)"):
            choose_inputs(reader, node({**INPUTS, "/other": IMAGE}))
        with pytest.raises(BagError, match="--topics: /task is not an input of /policy_node"):
            choose_inputs(reader, node({FRONT: IMAGE}), topics=[TASK])
        with pytest.raises(BagError, match="type mismatch on /task: the bag has std_msgs/msg/St"):
            choose_inputs(reader, node({TASK: "std_msgs/msg/Int32"}))
        with pytest.raises(BagError, match="definition differs from the node's"):
            choose_inputs(reader, node({TASK: STRING}, {TASK: {"RIHS01_" + "0" * 64}}))
        with pytest.raises(BagError, match="topic /empty has no messages in the bag"):
            choose_inputs(reader, node({"/empty": JOINTS}))
        with pytest.raises(BagError, match="none of the bag's topics is an input"):
            choose_inputs(reader, node({"/x": IMAGE}), allow_missing=["/x"])
        with pytest.raises(BagError, match="--trigger recorded: the bag has no recorded chunks"):
            recorded_stamps(reader, "/policy_node/action_chunk")


def test_outputs_to_record_and_the_chunk_and_status_topics():
    graph = NodeGraph(
        "/policy_node",
        {},
        {
            "/policy_node/action_chunk": CHUNK,
            "/policy_node/debug_chunk": CHUNK,
            "/policy_node/status": STATUS,
            "/policy_node/command": JOINTS,
        },
    )
    out = choose_outputs(graph, "lockstep", record=["command", "action"])
    # --record keeps those; lock-step adds the status, whose rejections answer observations
    assert set(out.topics) == {
        "/policy_node/command",
        "/policy_node/action_chunk",
        "/policy_node/status",
    }
    assert set(choose_outputs(graph, "timed", record=["command"]).topics) == {
        "/policy_node/command"
    }
    with pytest.raises(BagError, match="publishes no trajectory_msgs/msg/JointTrajectory"):
        choose_outputs(graph, "lockstep", record=["command"])  # nothing answers observations
    full = choose_outputs(graph, "lockstep")
    assert (full.chunk_topic, full.status_topic, full.warning) == (
        "/policy_node/action_chunk",
        "/policy_node/status",
        "",
    )
    given = choose_outputs(graph, "timed", chunk_topic="policy_node/debug_chunk")
    assert given.chunk_topic == "/policy_node/debug_chunk" and len(given.topics) == 4
    silent = NodeGraph("/policy_node", {}, {"/policy_node/action_chunk": CHUNK})
    assert (
        "rejects will end the replay with a time-out" in choose_outputs(silent, "lockstep").warning
    )
    assert choose_outputs(silent, "timed").warning == ""


# ---------------------------------------------------------------------------- the outputs bag
def test_the_outputs_info_and_the_summary_line():
    stats = Stats(published=9, steps=3, chunks=2, rejected=1, resent=1, step_wall_s=[0.2, 0.1, 0.3])
    stats.rejections.append({"observation": 1, "stamp_ns": 77, "input": "state", "reason": "NaN"})
    info = outputs_info("/b", "lockstep", "/policy_node", True, 0, stats, 1.0, "frames", "reseed")
    assert info["steps"] == 3 and info["rejected_observations"] == 1 and info["published"] == 9
    assert info["rejections"][0]["stamp_ns"] == 77
    line = summary("/out", {"/c": 2, "/a": 5}, stats)
    assert line == (
        "wrote /out (/a: 5, /c: 2); 3 observations: 2 chunks, 1 rejected by the node "
        "(stamps 77), 1 re-sent, median step 200 ms"
    )


def test_the_planner_imports_no_ros():
    code = (
        "import sys, snapflow_ros.bags.replay_plan; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'rclpy', 'torch', 'sensor_msgs'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
