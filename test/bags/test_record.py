"""``record`` against the synthetic camera/joint source, over real DDS (separate processes)."""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from rosbags.image import message_to_cvimage
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import Image

from snapflow_ros.bags.io import BagReader, deserialize, header_stamp_ns
from snapflow_ros.nodes.synthetic_source import synthetic_frame, synthetic_joints
from test.nodes.harness import domain_id, ros_env, wait_for

from .helpers import Proc, assert_clean_error, run_cli

DOMAIN = domain_id(21)
CAMS = ["/camera/front/image_raw", "/camera/wrist/image_raw"]
CAMERA_PERIOD_S = 0.1  # the source's camera_rate below
JOINT_PERIOD_S = 0.05  # its joint_rate


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """The synthetic source (2 cameras at 10 Hz, joints at 20 Hz, latched task)."""
    tmp = tmp_path_factory.mktemp("record")
    env = ros_env(DOMAIN)
    proc = Proc(
        [
            "synthetic_source",
            "--ros-args",
            "-p",
            "camera_rate:=10.0",
            "-p",
            "joint_rate:=20.0",
            "-p",
            "task:=stack the cups",
        ],
        env,
        tmp / "source.log",
    )
    context = Context()
    rclpy.init(context=context, domain_id=DOMAIN)
    node = rclpy.create_node("record_test_listener", context=context)
    frames: list[int] = []
    node.create_subscription(
        Image, CAMS[0], lambda m: frames.append(time.monotonic_ns()), qos_profile_sensor_data
    )
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        yield env, executor, frames, tmp, proc
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        assert proc.stop() == 0, proc.log()


def run_delay_s(pids: list[int]) -> float:
    """Seconds the threads of ``pids`` have spent runnable but waiting for a CPU, summed
    (``/proc/<pid>/task/*/schedstat``, second field): how much the machine held them back."""
    total = 0
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, IndexError, ValueError):  # a thread ended
                total += int(stat.read_text().split()[1])
    return total * 1e-9


class HeldBack:
    """While open, measures how long the machine held processes ``pids`` back (their run-queue
    waits, summed over their threads; :attr:`seconds`)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> HeldBack:
        self._start = run_delay_s(self.pids)
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = max(run_delay_s(self.pids) - self._start, 0.0)


def _wait_frames(executor, frames: list[int], n: int, since: int) -> None:
    def enough() -> bool:
        executor.spin_once(timeout_sec=0.05)
        return sum(1 for f in frames if f > since) >= n

    wait_for(enough, 60, f"{n} camera frames")


def _recording(proc: Proc, topics: list[str]) -> None:
    """Wait until ``record`` has stored a first message of every topic in ``topics``."""
    wait_for(
        lambda: all(f"first message on {t}\n" in proc.log() for t in topics) or proc.proc.poll(),
        60,
        f"record to receive {topics}",
    )
    assert proc.proc.poll() is None, proc.log()


@pytest.mark.timing
def test_ctrl_c_finalises_a_bag_with_exact_messages_and_latched_task(source):
    env, node, frames, tmp, source_proc = source
    bag = tmp / "sigint"
    with Proc(
        ["record", *CAMS, "/joint_states", "task", "-o", str(bag)], env, tmp / "r1.log"
    ) as rec:
        _recording(rec, [*CAMS, "/joint_states", "/task"])
        # the frames' stamps are the source's publish times, the bag is the recorder's: a gap
        # between them comes from one of these two processes being held back (or a loss)
        with HeldBack([source_proc.proc.pid, rec.proc.pid]) as held:
            _wait_frames(node, frames, 12, time.monotonic_ns())
        assert rec.stop(signal.SIGINT) == 0, rec.log()
    assert "Traceback" not in rec.log()
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap" and meta["version"] == 9
    with BagReader(bag) as reader:
        topics = reader.topics
        assert topics["/task"].count == 1  # published before record started: transient local
        assert topics["/task"].qos[0].durability.name == "TRANSIENT_LOCAL"
        assert topics[CAMS[0]].qos[0].reliability.name == "BEST_EFFORT"
        assert topics[CAMS[0]].count >= 5 and topics["/joint_states"].count >= 8
        gaps_s = np.diff([header_stamp_ns(m.data) for m in reader.messages([CAMS[0]])]) * 1e-9
        assert np.all(gaps_s > 0), gaps_s  # every frame newer than the one before: in order
        # continuous: no run of lost frames (5 periods, plus what the machine held back the
        # source and the recorder)
        assert gaps_s.max() < 5 * CAMERA_PERIOD_S + held.seconds, (gaps_s, held.seconds)
        task = [deserialize(m.data, "std_msgs/msg/String").data for m in reader.messages(["/task"])]
        assert task == ["stack the cups"]
        for i, cam in enumerate(CAMS):  # the recorded pixels are the source's, byte for byte
            for m in list(reader.messages([cam]))[:3]:
                t = header_stamp_ns(m.data) * 1e-9
                img = message_to_cvimage(deserialize(m.data, "sensor_msgs/msg/Image"), "rgb8")
                assert np.array_equal(img, synthetic_frame(t, 48, 64, i))
                assert m.log_ns >= header_stamp_ns(m.data)  # log time = receive time
        js = deserialize(
            next(reader.messages(["/joint_states"])).data, "sensor_msgs/msg/JointState"
        )
        t = (js.header.stamp.sec * 10**9 + js.header.stamp.nanosec) * 1e-9
        np.testing.assert_allclose(js.position, synthetic_joints(t, 8))
    with Reader(bag) as reader:  # rosbags' own reader agrees on the counts
        assert reader.message_count == sum(topics[t].count for t in topics)


@pytest.mark.timing
def test_duration_sqlite3_given_type_and_regex(source):
    """``--duration 2.5``: 2.5 s of messages from the first one. ``record`` checks the time
    between spins of at most 0.05 s and the joint states arrive every 0.05 s, so the first
    and last log times are at most 2.5 + 0.05 s apart (+ 0.05 s for the last callback) and at
    least 2.5 - 0.05 s (- 0.2 s for late deliveries). Judged while the machine held the
    source and the recorder back for at most 0.1 s (run-queue waits, measured from the
    first message to the end); when three attempts were all held back longer, what the last
    one was held back widens the window."""
    env, node, frames, tmp, source_proc = source
    duration_s, spin_s, late_s, quiet_s = 2.5, 0.05, 0.2, 0.1

    def record(attempt: int) -> tuple[Path, float]:
        bag = tmp / f"duration{attempt}"
        cmd = [
            "record",
            "--type",
            f"{CAMS[1]}:=sensor_msgs/msg/Image",
            "--regex",
            "^/joint_sta",
            "-o",
            str(bag),
            "--storage",
            "sqlite3",
            "--duration",
            str(duration_s),
        ]
        with Proc(cmd, env, tmp / f"duration{attempt}.log") as rec:
            wait_for(
                lambda: "first message on" in rec.log() or rec.proc.poll() is not None,
                60,
                "record to receive a first message",
            )
            with HeldBack([source_proc.proc.pid, rec.proc.pid]) as held:
                rc = rec.proc.wait(120)
        assert rc == 0, rec.log()
        return bag, held.seconds

    for attempt in range(1, 4):
        bag, held_s = record(attempt)
        if held_s <= quiet_s:
            break
        print(f"timing: source and recorder held back {held_s:.2f} s (> {quiet_s} s), again")
    with BagReader(bag) as reader:
        topics = reader.topics
        assert set(topics) == {CAMS[1], "/joint_states"}
        assert topics[CAMS[1]].count >= 10
        span_s = (reader.end_ns - reader.start_ns) * 1e-9
    extra_s = max(held_s - quiet_s, 0.0)
    lowest = duration_s - JOINT_PERIOD_S - late_s - extra_s
    assert lowest <= span_s <= duration_s + 2 * spin_s + extra_s, (span_s, held_s)
    assert next(bag.glob("*.db3")).is_file()


def test_sigterm_also_finalises(source):
    env, node, frames, tmp, _ = source
    bag = tmp / "sigterm"
    with Proc(["record", "--all", "-o", str(bag)], env, tmp / "r3.log") as rec:
        _recording(rec, [CAMS[0]])
        _wait_frames(node, frames, 3, time.monotonic_ns())
        assert rec.stop(signal.SIGTERM) == 0, rec.log()
    with BagReader(bag) as reader:
        assert "/rosout" not in reader.topics and "/parameter_events" not in reader.topics
        assert reader.topics[CAMS[0]].count >= 1


def test_bad_requests_are_clean_errors(source):
    env, node, frames, tmp, _ = source
    (tmp / "exists").mkdir()
    assert_clean_error(
        run_cli(["record", "/x", "-o", str(tmp / "exists")], env=env), "exists already"
    )
    assert_clean_error(
        run_cli(["record", "--type", "/x:=nope_msgs/msg/Nope", "-o", str(tmp / "u")], env=env),
        "nope_msgs/msg/Nope",
    )
    run = run_cli(
        [
            "record",
            "--type",
            "/joint_states:=std_msgs/msg/String",
            "-o",
            str(tmp / "mismatch"),
            "--duration",
            "30",
        ],
        env=env,
        timeout=120,
    )
    assert run.rc == 2, run.text
    errors = [ln for ln in run.err.splitlines() if ln.strip()]
    assert errors == [
        "record: error: type mismatch on /joint_states: --type says std_msgs/msg/String, "
        "the graph has sensor_msgs/msg/JointState"
    ], run.err
    assert (tmp / "mismatch" / "metadata.yaml").is_file()  # finalised anyway
    assert run_cli(["record", "-o", str(tmp / "none")], env=env).rc == 2  # nothing to record
    run = run_cli(
        ["record", "/no/such/topic", "-o", str(tmp / "silent"), "--duration", "1", "--wait", "2"],
        env=env,
    )
    assert_clean_error(run, "no message on the requested topics within 2 s")
    assert (tmp / "silent" / "metadata.yaml").is_file()
