"""Observations the node rejects: ``replay`` takes the ``rejected`` status event as the node's
answer and goes on (or stops with ``--stop-on-reject``), ``compare`` reports them apart from
missing chunks. And observations the node must not reject: inputs whose stamps are spread
wider than the node's ``max_future_stamp`` (replay sets ``/clock`` to the oldest one).

The matching logic and ``compare`` are tested on bags written here; the live tests replay the
golden inputs with one NaN joint-state frame in the middle through a real sim-time policy node
(a separate process, real DDS).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from snapflow_ros.bags.chunks import CHUNK_TYPE, STATUS_TYPE, read_chunks, read_status_events
from snapflow_ros.bags.io import BagMessage, BagReader, BagWriter, deserialize, typestore
from snapflow_ros.bags.lockstep import (
    MAX_REASON_CHARS,
    Answers,
    Rejection,
    parse_rejection,
)
from test.nodes.harness import domain_id, ros_env

from .helpers import (
    CHUNK_TOPIC,
    GOLDEN_INPUTS,
    GOLDEN_OUTPUTS,
    Run,
    golden_info,
    golden_node,
    golden_params,
    rewrite_bag,
    run_cli,
)

DOMAIN = domain_id(23)
SPREAD_S = 0.5  # state stamped this much after the cameras: beyond max_future_stamp (0.25 s)
STATUS_TOPIC = "/policy_node/status"
JOINT_STATE = "sensor_msgs/msg/JointState"
STRICT = ["--max-missing", "0", "--max-extra", "0"]
EXACT = ["--max-action-abs", "0", *STRICT]  # within one session: bit for bit


def event(**fields) -> dict:
    """A status event as the node publishes it (``rejected`` unless ``event`` is given)."""
    return {"event": "rejected", "node": "/policy_node", "t_ns": 5, **fields}


# ---------------------------------------------------------------------------- parse_rejection
def test_a_rejected_event_parses():
    rej = parse_rejection(
        event(stamp_ns=11_750_000_000, input="state.joints", reason="NaN in position")
    )
    assert rej == Rejection(11_750_000_000, "state.joints", "NaN in position")
    assert rej.as_dict() == {
        "stamp_ns": 11_750_000_000,
        "input": "state.joints",
        "reason": "NaN in position",
    }


@pytest.mark.parametrize(
    "data",
    [
        {"event": "chunk", "stamp_ns": 1},
        {"event": "periodic"},
        event(),  # no stamp: it answers no observation
        event(stamp_ns=None),
        event(stamp_ns="11"),
        event(stamp_ns=1.5),
        event(stamp_ns=True),
        ["rejected", 1],
        "rejected",
        None,
    ],
)
def test_other_events_and_stampless_rejections_are_no_answer(data):
    assert parse_rejection(data) is None


def test_missing_fields_and_long_reasons():
    rej = parse_rejection(event(stamp_ns=0))
    assert rej == Rejection(0, "unknown input", "no reason given")
    rej = parse_rejection(event(stamp_ns=3, input="camera.front", reason="x" * 500))
    assert rej is not None and len(rej.reason) == MAX_REASON_CHARS == 200


# ---------------------------------------------------------------------------- Answers
def test_the_answer_for_the_expected_stamp_wins():
    answers = Answers()
    assert answers.take(10) is None
    answers.add_rejection(Rejection(10, "state.joints", "NaN"))
    taken = answers.take(10)
    assert taken is not None and taken.rejection is not None and taken.chunk is None
    assert taken.stamp_ns == 10 and answers.take(10) is None

    answers.add_chunk(9, b"old")  # another observation first, then the expected one
    answers.add_rejection(Rejection(10, "camera.front", "bad encoding"))
    taken = answers.take(10)
    assert taken.stamp_ns == 10 and taken.rejection.input == "camera.front"
    other = answers.take(10)  # then what is left: an answer for another stamp
    assert other.stamp_ns == 9 and other.chunk == b"old"
    assert answers.take(10) is None


def test_a_chunk_beats_a_rejection_of_the_same_stamp_and_clear_forgets():
    answers = Answers()
    answers.add_rejection(Rejection(7, "policy", "non-finite actions"))
    answers.add_chunk(7, b"chunk")
    taken = answers.take(7)
    assert taken.chunk == b"chunk" and taken.rejection is None
    answers.add_chunk(8, b"x")
    answers.clear()
    assert answers.take(8) is None


def test_without_a_match_the_first_arrival_is_returned():
    answers = Answers()
    answers.add_rejection(Rejection(5, "state.joints", "NaN"))
    answers.add_chunk(6, b"c")
    assert answers.take(10).stamp_ns == 5  # the replay then publishes the observation again
    assert answers.take(10).stamp_ns == 6


# ---------------------------------------------------------------------------- compare
def status_bytes(data: dict) -> bytes:
    """A std_msgs/String status message holding ``data`` as JSON."""
    ts = typestore()
    msg = ts.types[STATUS_TYPE](data=json.dumps(data))
    return bytes(ts.serialize_cdr(msg, STATUS_TYPE))


def outputs_with_rejection(src: Path, dst: Path, stamp: int, with_event: bool = True) -> Path:
    """Copy the chunks and status of an outputs bag without the chunk stamped ``stamp``, and
    (``with_event``) with a ``rejected`` event for it, as the node publishes one."""
    with BagReader(src) as reader, BagWriter(dst) as writer:
        writer.add_topic(CHUNK_TOPIC, CHUNK_TYPE)
        writer.add_topic(STATUS_TOPIC, STATUS_TYPE)
        for m in reader.messages([CHUNK_TOPIC, STATUS_TOPIC]):
            if m.topic == CHUNK_TOPIC and read_stamp(m) == stamp:
                if with_event:
                    reason = "state.libero: NaN in position"
                    rejected = event(stamp_ns=stamp, input="state.libero", reason=reason)
                    writer.write(STATUS_TOPIC, m.log_ns, status_bytes(rejected))
                continue
            writer.write(m.topic, m.log_ns, m.data)
    return dst


def read_stamp(m: BagMessage) -> int:
    msg = deserialize(m.data, CHUNK_TYPE)
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def golden_chunk_stamps() -> list[int]:
    with BagReader(GOLDEN_OUTPUTS) as reader:
        return [c.stamp_ns for c in read_chunks(reader, CHUNK_TOPIC)]


def compare(out: Path, ref: Path, *extra: str) -> tuple[Run, dict | None]:
    """``compare`` with a JSON report; returns (run, report)."""
    report = out.parent / f"{out.name}.json"
    run = run_cli(["compare", str(out), str(ref), "--report", str(report), *extra])
    return run, (json.loads(report.read_text()) if report.exists() else None)


def test_compare_reports_rejected_observations_apart_from_missing_chunks(tmp_path):
    stamps = golden_chunk_stamps()
    target = stamps[len(stamps) // 2]
    out = outputs_with_rejection(GOLDEN_OUTPUTS, tmp_path / "out", target)
    run, report = compare(out, GOLDEN_OUTPUTS, *EXACT)
    assert run.rc == 0, run.text
    ch = report["chunks"]
    assert (ch["matched"], ch["missing"], ch["extra"]) == (len(stamps) - 1, 0, 0)
    assert (ch["rejected"], ch["missing_rejected"]) == (1, 1)
    assert ch["missing_rejected_stamps_ns"] == [target]
    assert report["rejections"] == [
        {"stamp_ns": target, "input": "state.libero", "reason": "state.libero: NaN in position"}
    ]
    assert "rejected by the node: 1 observations" in run.out and str(target) in run.out
    # asked for: the gate counts them
    run, report = compare(out, GOLDEN_OUTPUTS, *STRICT, "--max-rejected", "0")
    assert run.rc == 1 and "1 observations rejected by the node > 0" in run.out, run.text
    assert report["gate"]["thresholds"]["max_rejected"] == 0
    run, _ = compare(out, GOLDEN_OUTPUTS, *STRICT, "--max-rejected", "1")
    assert run.rc == 0, run.text


def test_without_a_rejection_event_the_chunk_is_missing(tmp_path):
    stamps = golden_chunk_stamps()
    target = stamps[len(stamps) // 2]
    out = outputs_with_rejection(GOLDEN_OUTPUTS, tmp_path / "out", target, with_event=False)
    run, report = compare(out, GOLDEN_OUTPUTS, *STRICT)
    assert run.rc == 1 and "1 missing chunks > 0" in run.out, run.text
    assert report["chunks"]["missing_stamps_ns"] == [target]
    assert report["chunks"]["rejected"] == report["chunks"]["missing_rejected"] == 0


# ---------------------------------------------------------------------------- live
def nan_state_bag(dst: Path) -> tuple[Path, int]:
    """The golden inputs with the positions of one joint-state message in the middle set to
    NaN; returns the bag and that message's stamp (an observation stamp of the golden run)."""
    state_topic = golden_info()["state_topic"]
    with BagReader(GOLDEN_INPUTS) as reader:
        assert reader.topics[state_topic].msgtype == JOINT_STATE
        states = [deserialize(m.data, JOINT_STATE) for m in reader.messages([state_topic])]
    state_stamps = [s.header.stamp.sec * 1_000_000_000 + s.header.stamp.nanosec for s in states]
    chunk_stamps = golden_chunk_stamps()
    unique = [s for s in chunk_stamps if state_stamps.count(s) == 1]
    target = unique[len(unique) // 2]
    assert chunk_stamps[0] < target < chunk_stamps[-1]  # in the middle of the run
    ts = typestore()

    def poison(m: BagMessage) -> bytes:
        if m.topic != state_topic:
            return m.data
        msg = deserialize(m.data, JOINT_STATE)
        if msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec != target:
            return m.data
        msg.position = np.full_like(np.asarray(msg.position, np.float64), np.nan)
        return bytes(ts.serialize_cdr(msg, JOINT_STATE))

    return rewrite_bag(GOLDEN_INPUTS, dst, poison), target


@pytest.fixture(scope="module")
def node(tiny_cache, tmp_path_factory):
    """The golden policy node (golden parameters and tiny checkpoint) on sim time."""
    tmp = tmp_path_factory.mktemp("rejected")
    with golden_node(tiny_cache, tmp, DOMAIN) as (harness, proc):
        bag, target = nan_state_bag(tmp / "nan_inputs")
        yield harness, proc, tmp, bag, target


def replay(tmp: Path, bag: Path, name: str, *extra: str) -> tuple[Run, Path]:
    """``replay`` into the module's node; returns (run, outputs path)."""
    out = tmp / name
    run = run_cli(
        ["replay", str(bag), "-o", str(out), "--wait", "180", "--timeout", "30", *extra],
        env=ros_env(DOMAIN),
        timeout=400,
    )
    return run, out


def test_the_nan_bag_has_one_poisoned_frame(tmp_path):
    bag, target = nan_state_bag(tmp_path / "nan")
    state_topic = golden_info()["state_topic"]
    with BagReader(bag) as reader:
        states = [deserialize(m.data, JOINT_STATE) for m in reader.messages([state_topic])]
        counts = {t: i.count for t, i in reader.topics.items()}
    with BagReader(GOLDEN_INPUTS) as reader:
        assert counts == {t: i.count for t, i in reader.topics.items()}
    poisoned = [s for s in states if any(math.isnan(v) for v in s.position)]
    assert len(poisoned) == 1
    stamp = poisoned[0].header.stamp
    assert stamp.sec * 1_000_000_000 + stamp.nanosec == target


def test_replay_reports_the_rejected_observation_and_goes_on(node):
    harness, proc, tmp, bag, target = node
    run, out = replay(tmp, bag, "nan_out")
    assert run.rc == 0, run.text + proc.log()[-3000:]
    assert f"(stamp {target}) rejected by the node: state." in run.out, run.text
    assert "1 rejected by the node" in run.out, run.text
    golden = golden_chunk_stamps()
    with BagReader(out) as reader:
        info = reader.replay_info()
        stamps = [c.stamp_ns for c in read_chunks(reader, CHUNK_TOPIC)]
        rejected = read_status_events(reader, STATUS_TOPIC, "rejected")
    assert stamps == [s for s in golden if s != target]  # the rest of the bag was replayed
    assert info["rejected_observations"] == 1 and info["chunks"] == len(golden) - 1
    assert info["steps"] == len(golden)
    (listed,) = info["rejections"]
    assert listed["stamp_ns"] == target and listed["input"].startswith("state.")
    assert 0 < len(listed["reason"]) <= 200
    # the node's side of the contract: one event for the one attempted observation
    assert [e.stamp_ns for e in rejected] == [target]
    # against the clean bag replayed now: every other chunk bit for bit, nothing missing
    run, clean = replay(tmp, GOLDEN_INPUTS, "clean_out")
    assert run.rc == 0 and "0 rejected by the node" in run.out, run.text
    cmp, report = compare(out, clean, *EXACT)
    assert cmp.rc == 0, cmp.text
    assert report["chunks"]["matched"] == len(golden) - 1
    assert report["chunks"]["missing"] == 0 and report["chunks"]["rejected"] == 1
    assert report["chunks"]["missing_rejected_stamps_ns"] == [target]
    assert report["actions"]["overall"]["max_abs"] == 0.0
    cmp, _ = compare(out, clean, *EXACT, "--max-rejected", "0")
    assert cmp.rc == 1 and "1 observations rejected by the node > 0" in cmp.out, cmp.text


def test_stop_on_reject_stops_at_once_with_the_reason(node):
    harness, proc, tmp, bag, target = node
    run, out = replay(tmp, bag, "nan_stop", "--stop-on-reject")
    assert run.rc == 1, run.text
    assert "Traceback" not in run.text and "timed out" not in run.text, run.text
    (line,) = [ln for ln in run.err.splitlines() if ln.strip()]
    assert line.startswith("replay: failed: observation ") and f"(stamp {target})" in line
    assert "rejected by the node: state." in line and line.endswith("(--stop-on-reject)")
    golden = golden_chunk_stamps()
    with BagReader(out) as reader:  # finalised, with the chunks before the rejected one
        info = reader.replay_info()
        stamps = [c.stamp_ns for c in read_chunks(reader, CHUNK_TOPIC)]
    assert stamps == [s for s in golden if s < target]
    assert info["rejected_observations"] == 1
    expected = golden_params()
    assert harness.get_params("input_timeout", "replan_threshold") == [
        expected["input_timeout"],
        expected["replan_threshold"],
    ]


def spread_state_bag(dst: Path, offset_s: float) -> Path:
    """The golden inputs with every joint-state stamp moved ``offset_s`` later (a robot whose
    joint states are stamped by another clock, or much later than its cameras)."""
    state_topic = golden_info()["state_topic"]
    ts = typestore()
    shift = int(round(offset_s * 1e9))

    def restamp(m: BagMessage) -> bytes:
        if m.topic != state_topic:
            return m.data
        msg = deserialize(m.data, JOINT_STATE)
        ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec + shift
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 1_000_000_000)
        return bytes(ts.serialize_cdr(msg, JOINT_STATE))

    return rewrite_bag(GOLDEN_INPUTS, dst, restamp)


def test_inputs_spread_beyond_max_future_stamp_are_replayed_and_the_tolerance_restored(node):
    harness, proc, tmp, _, _ = node
    (before,) = harness.get_params("max_future_stamp")
    assert before < SPREAD_S  # the node's own tolerance would reject these observations
    bag = spread_state_bag(tmp / "spread_inputs", SPREAD_S)
    run, out = replay(tmp, bag, "spread_out")
    assert run.rc == 0, run.text + proc.log()[-3000:]
    assert "0 rejected by the node" in run.out, run.text
    golden = golden_chunk_stamps()
    with BagReader(out) as reader:
        info = reader.replay_info()
        stamps = [c.stamp_ns for c in read_chunks(reader, CHUNK_TOPIC)]
        rejected = read_status_events(reader, STATUS_TOPIC, "rejected")
    assert not rejected and info["rejected_observations"] == 0
    assert info["chunks"] == info["steps"] == len(stamps) > 0
    assert set(stamps) <= set(golden)  # stamped by the cameras, the oldest inputs
    assert harness.get_params("max_future_stamp") == [before]
    # beyond what the node accepts at all: said and counted, not a time-out
    bag = spread_state_bag(tmp / "too_spread_inputs", 2.5)
    run, out = replay(tmp, bag, "too_spread_out")
    assert run.rc == 0, run.text
    assert "stamped 2.500 s apart" in run.out and "not asked for" in run.out, run.text
    with BagReader(out) as reader:
        info = reader.replay_info()
    assert info["too_spread_observations"] == len(stamps) and info["chunks"] == 0
