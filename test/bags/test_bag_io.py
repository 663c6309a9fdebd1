"""Pure-Python bag layer: rosbag2 files as the format defines them, stamps, lock-step plan,
matching, and the golden bags themselves (no ROS processes)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.image import message_to_cvimage
from rosbags.rosbag2 import Reader

from snapflow_ros.bags.chunks import Chunk, match_chunks, read_chunks
from snapflow_ros.bags.errors import BagError
from snapflow_ros.bags.io import (
    BagReader,
    BagWriter,
    deserialize,
    ensure_type,
    has_header,
    header_stamp_ns,
    make_qos,
    typestore,
    with_header_stamp,
)
from snapflow_ros.bags.lockstep import StepPlanner
from snapflow_ros.policies.tiny import ensure_tiny_checkpoint

from .helpers import (
    CHUNK_TOPIC,
    GOLDEN,
    GOLDEN_INPUTS,
    GOLDEN_OUTPUTS,
    WEIGHT_NORM_RTOL,
    fingerprint_differences,
    golden_camera_topics,
    golden_info,
    golden_spec,
    read_mcap_records,
    weights_fingerprint,
)

IMAGE = "sensor_msgs/msg/Image"
JOINTS = "sensor_msgs/msg/JointState"
STRING = "std_msgs/msg/String"
T0 = 1_700_000_000_123_456_789


def _image(stamp_ns: int) -> bytes:
    ts = typestore()
    T = ts.types
    header = T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
        frame_id="cam",
    )
    msg = T[IMAGE](
        header=header,
        height=2,
        width=3,
        encoding="rgb8",
        is_bigendian=0,
        step=9,
        data=np.arange(18, dtype=np.uint8),
    )
    return bytes(ts.serialize_cdr(msg, IMAGE))


def _string(text: str) -> bytes:
    ts = typestore()
    return bytes(ts.serialize_cdr(ts.types[STRING](data=text), STRING))


def _write_sample(path: Path, storage: str) -> dict[str, list[int]]:
    times = {"/cam": [T0 + i * 100_000_000 for i in range(5)], "/task": [T0 + 50]}
    with BagWriter(path, storage) as writer:
        writer.add_topic("/cam", IMAGE, [make_qos(reliable=False)])
        writer.add_topic("/task", STRING, [make_qos(transient_local=True, depth=1)])
        for t in times["/cam"]:
            writer.write("/cam", t + 1000, _image(t))
        writer.write("/task", times["/task"][0], _string("pick"))
    return times


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_written_bag_metadata_follows_the_rosbag2_format(tmp_path, storage):
    bag = tmp_path / "bag"
    times = _write_sample(bag, storage)
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9
    assert meta["storage_identifier"] == storage
    files = meta["relative_file_paths"]
    assert len(files) == 1 and (bag / files[0]).is_file()
    assert files[0].endswith(".mcap" if storage == "mcap" else ".db3")
    assert meta["message_count"] == 6
    assert meta["starting_time"]["nanoseconds_since_epoch"] == T0 + 50
    assert meta["duration"]["nanoseconds"] == times["/cam"][-1] + 1000 - (T0 + 50)
    assert meta["files"][0]["path"] == files[0] and meta["files"][0]["message_count"] == 6
    topics = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    assert {n: t["message_count"] for n, t in topics.items()} == {"/cam": 5, "/task": 1}
    cam, task = topics["/cam"]["topic_metadata"], topics["/task"]["topic_metadata"]
    assert cam["type"] == IMAGE and cam["serialization_format"] == "cdr"
    assert cam["type_description_hash"] == typestore().hash_rihs01(IMAGE)
    assert cam["type_description_hash"].startswith("RIHS01_")
    keys = {
        "history",
        "depth",
        "reliability",
        "durability",
        "deadline",
        "lifespan",
        "liveliness",
        "liveliness_lease_duration",
        "avoid_ros_namespace_conventions",
    }
    assert set(cam["offered_qos_profiles"][0]) == keys
    assert cam["offered_qos_profiles"][0]["reliability"] == "best_effort"
    assert task["offered_qos_profiles"][0]["durability"] == "transient_local"
    # rosbags' own reader, and ours, read it back byte for byte
    with Reader(bag) as reader:
        got = [(c.topic, t, bytes(d)) for c, t, d in reader.messages()]
    assert sorted(got) == sorted(
        [("/cam", t + 1000, _image(t)) for t in times["/cam"]]
        + [("/task", T0 + 50, _string("pick"))]
    )
    with BagReader(bag) as reader:
        assert [header_stamp_ns(m.data) for m in reader.messages(["/cam"])] == times["/cam"]


def test_mcap_file_has_the_ros2_profile_schemas_channels_and_metadata(tmp_path):
    _write_sample(tmp_path / "bag", "mcap")
    rec = read_mcap_records(next((tmp_path / "bag").glob("*.mcap")))
    assert rec["header"][0] == "ros2"
    assert rec["data_end"] and rec["footer"]
    schemas = {s["name"]: s for s in rec["schemas"].values()}
    assert set(schemas) == {IMAGE, STRING}
    assert all(s["encoding"] == "ros2msg" for s in schemas.values())
    assert "std_msgs/Header header" in schemas[IMAGE]["data"]
    assert "MSG: std_msgs/Header" in schemas[IMAGE]["data"]  # dependencies embedded
    channels = {c["topic"]: c for c in rec["channels"].values()}
    assert set(channels) == {"/cam", "/task"}
    for channel in channels.values():
        assert channel["encoding"] == "cdr"
        assert "offered_qos_profiles" in channel["metadata"]
    assert "transient_local" in channels["/task"]["metadata"]["offered_qos_profiles"]
    assert "rosbag2" in rec["metadata"]
    embedded = yaml.safe_load(rec["metadata"]["rosbag2"]["serialized_metadata"])
    assert embedded["message_count"] == 6


def test_sqlite3_file_has_the_rosbag2_tables(tmp_path):
    _write_sample(tmp_path / "bag", "sqlite3")
    db = sqlite3.connect(next((tmp_path / "bag").glob("*.db3")))
    tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
    assert {"topics", "messages", "metadata", "message_definitions", "schema"} <= tables
    cols = {r[1] for r in db.execute("pragma table_info(topics)")}
    assert {
        "name",
        "type",
        "serialization_format",
        "offered_qos_profiles",
        "type_description_hash",
    } <= cols
    assert db.execute("select count(*) from messages").fetchone()[0] == 6
    defs = dict(db.execute("select topic_type, encoding from message_definitions"))
    assert defs == {IMAGE: "ros2msg", STRING: "ros2msg"}


def test_writer_refuses_existing_outputs_and_unknown_types(tmp_path):
    (tmp_path / "exists").mkdir()
    with pytest.raises(BagError, match="exists already"):
        BagWriter(tmp_path / "exists")
    with BagWriter(tmp_path / "b") as writer, pytest.raises(BagError, match="unknown message type"):
        writer.add_topic("/x", "nonexistent_pkg/msg/Thing")
    with BagWriter(tmp_path / "c") as writer, pytest.raises(BagError, match="type mismatch"):
        writer.add_topic("/x", IMAGE, expected_hash="RIHS01_" + "0" * 64)
    assert (tmp_path / "c" / "metadata.yaml").is_file()  # still finalised


def test_types_missing_from_rosbags_come_from_installed_msg_files():
    ensure_type("lifecycle_msgs/msg/TransitionEvent")
    assert "lifecycle_msgs/msg/TransitionEvent" in typestore().fielddefs
    assert has_header(IMAGE) and has_header(JOINTS)
    assert not has_header(STRING) and not has_header("rosgraph_msgs/msg/Clock")


def test_header_stamps_are_read_and_rewritten_in_place():
    data = _image(T0)
    assert header_stamp_ns(data) == T0
    moved = with_header_stamp(data, T0 + 5_000_000_123)
    assert header_stamp_ns(moved) == T0 + 5_000_000_123
    assert moved[12:] == data[12:] and moved[:4] == data[:4]
    msg = deserialize(moved, IMAGE)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == divmod(T0 + 5_000_000_123, 10**9)
    big = bytes([0, 0, 0, 0]) + (12).to_bytes(4, "big") + (34).to_bytes(4, "big")
    assert header_stamp_ns(big) == 12 * 10**9 + 34
    with pytest.raises(BagError, match="too short"):
        header_stamp_ns(b"\x00\x01\x00\x00")


def _planner(mode: str = "oldest", every: int = 1, only: set[int] | None = None) -> StepPlanner:
    types = {"/front": IMAGE, "/wrist": IMAGE, "/joints": JOINTS, "/task": STRING}
    stamped = {"/front": True, "/wrist": True, "/joints": True, "/task": False}
    return StepPlanner(types, stamped, [], mode, every, only)


def _run(planner: StepPlanner, messages: list[tuple[str, int | None]]) -> list[tuple]:
    """Drive the planner like ``replay``: (expected stamp, oldest, newest, published before)."""
    steps, published = [], []
    for i, (topic, stamp) in enumerate(messages):
        step = planner.before(topic, stamp)
        if step is not None:
            steps.append((step.expected_stamp_ns, step.oldest_ns, step.clock_ns, len(published)))
        published.append(topic)
        planner.after(topic, i, stamp)
    step = planner.flush()
    if step is not None:
        steps.append((step.expected_stamp_ns, step.oldest_ns, step.clock_ns, len(published)))
    return steps


def test_lockstep_plan_fires_once_per_complete_frame_before_newer_messages():
    p = _planner()
    assert p.step_topics == ["/front", "/wrist"]
    messages = [
        ("/task", None),
        ("/joints", 95),
        ("/front", 100),
        ("/wrist", 100),  # frame 100
        ("/joints", 100),  # same stamp as the frame: still part of it
        ("/joints", 120),  # newer: frame 100 fires before it
        ("/front", 200),
        ("/joints", 170),
        ("/wrist", 200),  # frame 200 ...
        ("/wrist", 200),  # a repeat of the same frame: nothing new
    ]  # ... fires at the end of the bag
    assert _run(p, messages) == [(100, 100, 100, 5), (170, 170, 200, 10)]
    newest = _planner("newest")
    assert _run(newest, messages[:6]) == [(100, 100, 100, 5)]
    sparse = _planner(every=2)
    frames = [("/joints", 1)] + [(t, s) for s in (10, 20, 30) for t in ("/front", "/wrist")]
    assert [s[0] for s in _run(sparse, frames)] == [1, 1]  # frames 10 and 30 (joints oldest)
    assert sparse.skipped == 1
    only = _planner(only={20})
    frames = [(t, s) for s in (10, 20, 30) for t in ("/joints", "/front", "/wrist")]
    assert [s[0] for s in _run(only, frames)] == [20]
    assert only.skipped == 2
    incomplete = _planner()  # no joints yet: no observation, nothing to ask for
    assert _run(incomplete, [("/front", 10), ("/wrist", 10), ("/front", 20)]) == []
    with pytest.raises(BagError, match="no header stamp"):
        StepPlanner({"/task": STRING, "/j": JOINTS}, {"/task": False, "/j": True}, ["/task"])


def _chunk(stamp: int, value: float = 0.0) -> Chunk:
    return Chunk(stamp, stamp, ("a", "b"), np.full((3, 2), value))


def test_matching_by_stamp_pairs_equal_stamps_in_order_and_counts_missing_extra():
    ref = [_chunk(s) for s in (10, 20, 20, 30, 50)]
    out = [_chunk(s) for s in (5, 20, 20, 20, 30, 52)]
    m = match_chunks(ref, out)
    assert m.pairs == [(1, 1), (2, 2), (3, 4)]
    assert m.missing == [0, 4] and m.extra == [0, 3, 5]
    loose = match_chunks(ref, out, tolerance_ns=2)
    assert (4, 5) in loose.pairs
    by_order = match_chunks(ref, out, by="order")
    assert len(by_order.pairs) == 5 and by_order.extra == [5] and by_order.missing == []


# ---------------------------------------------------------------------------- the golden bags
def test_golden_bags_are_small_and_complete():
    size = sum(f.stat().st_size for f in GOLDEN.rglob("*") if f.is_file())
    assert size < 3_000_000, f"golden bags too large: {size} bytes"
    info = golden_info()
    spec = golden_spec()
    with BagReader(GOLDEN_INPUTS) as reader:
        topics = reader.topics
        assert {t: topics[t].msgtype for t in info["inputs"]} == info["inputs"]
        assert topics[CHUNK_TOPIC].count >= 1  # what the node published live
        assert {t: i.count for t, i in topics.items()} == info["counts"]["inputs"]
        for cam in golden_camera_topics():
            for m in list(reader.messages([cam]))[:3]:
                img = message_to_cvimage(deserialize(m.data, IMAGE), "rgb8")
                assert img.shape == (spec.image_height, spec.image_width, 3)
                assert img.std() > 5  # a rendered scene, not a blank frame
        state = [deserialize(m.data, JOINTS) for m in reader.messages([info["state_topic"]])]
        assert all(len(s.position) == spec.state_dim for s in state)
    with BagReader(GOLDEN_OUTPUTS) as reader:
        chunks = read_chunks(reader, CHUNK_TOPIC)
        assert reader.replay_info()["mode"] == "lockstep"
    assert len(chunks) == info["counts"]["outputs"][CHUNK_TOPIC] >= 20
    assert all(c.actions.shape == (spec.chunk_size, spec.action_dim) for c in chunks)
    assert len({c.stamp_ns for c in chunks}) == len(chunks)


@pytest.mark.numerics
def test_golden_checkpoint_is_the_one_the_tests_build(tiny_cache):
    """Same architecture exactly, same weights within float32 rounding of another CPU."""
    ckpt = ensure_tiny_checkpoint(golden_spec(), tiny_cache)
    expected = golden_info()["checkpoint"]["weights"]
    assert fingerprint_differences(expected, weights_fingerprint(ckpt)) == [], (
        "the tiny checkpoint changed: regenerate the golden bags with "
        "`.venv/bin/python scripts/make_golden_bag.py` and review the diff"
    )


def test_the_weights_fingerprint_tells_another_checkpoint_apart(tiny_cache):
    golden = weights_fingerprint(ensure_tiny_checkpoint(golden_spec(), tiny_cache))
    reseeded = replace(golden_spec(), seed=1)
    other = weights_fingerprint(ensure_tiny_checkpoint(reseeded, tiny_cache))
    assert other["structure"] == golden["structure"]  # same architecture, other draws
    changed = fingerprint_differences(golden, other)
    assert len(changed) > golden["tensors"] // 2, changed
    rel = [abs(a - b) / a for a, b in zip(golden["norms"], other["norms"], strict=True) if a]
    assert max(rel) > 1000 * WEIGHT_NORM_RTOL  # far outside rounding
    wider = replace(golden_spec(), state_dim=golden_spec().state_dim + 2)
    wider_ckpt = ensure_tiny_checkpoint(wider, tiny_cache)
    arch = fingerprint_differences(golden, weights_fingerprint(wider_ckpt))
    assert len(arch) == 1 and arch[0].startswith("architecture:"), arch
