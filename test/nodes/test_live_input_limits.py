"""Live input the policy node must bound, against the node as a separate process over real DDS.

Negative header stamps (1969, and -2^31, what a sender writing 2^31 s puts on the wire) are
stale, not "received now"; a flood of tasks or ``num_steps`` changes gives a few log lines,
not one per message; a JPEG with valid markers and corrupt data prints nothing of libjpeg's
to stderr and is one throttled fault; ``rejected`` events of an input that stays malformed are
at most one per second; images above ``cameras.max_pixels`` are refused before conversion;
an image of another size than the policy's (the node runs with ``cameras.resize: false``, the
feed's frames being the policy's 64x48) holds at the next tick, named in the status, until
images of the right size come again; parameters that apply at the next configure say so when
set; several refused parameters are each named in the log. Everything is read where an
operator reads it: the node's log (stdout and stderr of the process), ``~/status``,
``/diagnostics`` and the parameter service's answer.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sensor_msgs.msg import CompressedImage, JointState

from snapflow_ros.nodes.synthetic_source import synthetic_frame, synthetic_joints
from snapflow_ros.ros_conversions import ns_to_stamp_fields, rgb_to_compressed, rgb_to_image

from .harness import (
    JOINTS,
    Harness,
    NodeProcess,
    domain_id,
    fed_node_process,
    header_ns,
    wait_for,
    write_params,
)

DOMAIN = domain_id(61)
RATE = 20.0
MAX_PIXELS = 10_000  # the feed's 64x48 frames pass; 128x96 does not
TASK = "pick up the red cube"


@pytest.fixture(scope="module")
def running(tiny_smolvla_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live_input_limits")
    params = write_params(
        tmp / "params.yaml",
        {
            "policy_path": str(tiny_smolvla_dir),
            "control_rate": RATE,
            "num_steps": 1,
            "torch_threads": 1,
            "input_timeout": 1.0,
            "status_rate": 5.0,
            "hold_mode": "none",
            "cameras.wrist.compressed": True,
            "cameras.wrist.topic": "camera/wrist/image_raw/compressed",
            "cameras.max_pixels": MAX_PIXELS,
            "cameras.resize": False,
        },
    )
    log = tmp / "node.log"
    with fed_node_process(params, DOMAIN, log, compressed=("wrist",)) as running:
        yield running
    assert "ignoring parameters" not in log.read_text(), "cameras.max_pixels is not a parameter"


@pytest.fixture
def good(running):
    """The node fed good inputs again, commands flowing."""
    harness, proc = running
    harness.feed.mode = "good"
    harness.feed.silent = set()
    harness.feed.paused = False
    harness.feed.stamp_offset = 0.0
    harness.publish_task(TASK)
    harness.wait_commands(3, timeout=60)
    return harness, proc


@contextlib.contextmanager
def publishing(publish: Callable[[], None], rate: float = 30.0) -> Iterator[None]:
    """Call ``publish`` at ``rate`` Hz from a thread while the block runs."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        period, next_t = 1.0 / rate, time.monotonic()
        try:
            while not stop.is_set():
                publish()
                next_t += period
                stop.wait(max(0.0, next_t - time.monotonic()))
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, name="test_publisher", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
    assert not errors, errors


def stamped(msg: Any, sec: int, nanosec: int) -> Any:
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    return msg


def now_stamp() -> tuple[int, int]:
    return ns_to_stamp_fields(time.time_ns())


def log_since(proc: NodeProcess, offset: int) -> list[str]:
    return proc.log()[offset:].splitlines()


# --------------------------------------------------------------------- stamps
@pytest.mark.parametrize("sec", [-1, -(2**31)], ids=["1969", "wire_-2^31"])
def test_negative_stamps_are_stale_and_the_node_holds(good, sec):
    """They used to count as received now: full-rate commands, the node reporting healthy."""
    harness, proc = good
    harness.feed.paused = True

    def publish() -> None:
        t = time.time()
        for i, name in enumerate(harness.feed.cameras):
            frame = synthetic_frame(t, 48, 64, i)
            msg = rgb_to_compressed(frame) if name == "wrist" else rgb_to_image(frame)
            harness.cam_pubs[name].publish(stamped(msg, sec, 0))
        joints = JointState(name=list(JOINTS), position=synthetic_joints(t, 8).tolist())
        harness.joint_pub.publish(stamped(joints, sec, 0))

    with publishing(publish):
        level, message = harness.wait_diagnostic("inputs", "state joints", "camera front", "stale")
        assert level == 1, message
        assert not harness.commands_during(0.5), "a command while holding"
        report = harness.latest_report()
        assert not report.healthy
        assert {p["input"] for p in report.problems if p["severity"] == "stale"} >= {
            "camera.front",
            "camera.wrist",
            "state.joints",
        }
    harness.feed.paused = False
    harness.wait_commands(5, timeout=30)


# --------------------------------------------------------------------- log rates
def test_a_flood_of_tasks_gives_a_few_log_lines_ending_with_the_task_in_force(good):
    """Every task message was an INFO line (103 lines/s under a 1 kHz flood)."""
    harness, proc = good
    offset = len(proc.log())
    start = time.monotonic()
    for i in range(1000):
        harness.publish_task(f"flood task {i}")
        time.sleep(0.001)  # the flood's pace: 1 kHz
    final = "put the red cube in the bowl"
    harness.publish_task(final)
    flood_s = time.monotonic() - start

    def task_lines() -> list[str]:
        return [line for line in log_since(proc, offset) if "task: '" in line]

    # the last line is the task in force (logged at most 2 s after the flood)
    wait_for(lambda: (ls := task_lines()) and f"task: '{final}'" in ls[-1], 15, "the task")
    lines = task_lines()
    assert len(lines) <= 3 + flood_s / 2, "\n".join(lines[:20])
    assert any("earlier changes not logged" in line for line in lines), "\n".join(lines)
    harness.publish_task(TASK)


def test_num_steps_changes_give_a_few_log_lines(good):
    harness, proc = good
    offset = len(proc.log())
    start = time.monotonic()
    for i in range(20):  # 2, 1, 2, ..., 1
        (result,) = harness.set_params(num_steps=2 - i % 2)
        assert result.successful and result.reason == "", result.reason  # applies now
    sets_s = time.monotonic() - start

    def steps_lines() -> list[str]:
        return [line for line in log_since(proc, offset) if "num_steps ->" in line]

    # the last line is the value in force (logged at most 2 s after the last change)
    wait_for(
        lambda: (ls := steps_lines()) and "num_steps -> 1" in ls[-1] and len(ls) > 1,
        15,
        "the value in force",
    )
    lines = steps_lines()
    assert len(lines) <= 3 + sets_s / 2, "\n".join(lines)
    assert any("earlier changes not logged" in line for line in lines), "\n".join(lines)


# --------------------------------------------------------------------- corrupt JPEG
def wrong_size_image() -> Any:
    """A raw front camera image of 40x30, not the policy's 64x48."""
    return rgb_to_image(synthetic_frame(0.0, 30, 40, 0))


def corrupt_jpeg() -> CompressedImage:
    """Valid markers (start, frame header, end), the compressed data cut short."""
    data = bytes(rgb_to_compressed(synthetic_frame(0.0, 48, 64, 1)).data)
    sos = data.find(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    return CompressedImage(format="jpeg", data=data[: start + 50] + b"\xff\xd9")


def test_a_corrupt_jpeg_is_one_throttled_fault_and_nothing_on_stderr(good):
    """libjpeg's ``Corrupt JPEG data ...`` was printed once per decode (27 lines/s), past
    the node's log throttle, and the garbage image was used."""
    harness, proc = good
    offset = len(proc.log())
    since = time.time_ns()
    bad = corrupt_jpeg()
    harness.feed.silent = {"wrist"}
    start = time.monotonic()
    with publishing(lambda: harness.cam_pubs["wrist"].publish(stamped(bad, *now_stamp()))):
        level, message = harness.wait_diagnostic("inputs", "Corrupt JPEG data")
        assert level == 2 and "camera wrist" in message, message
        assert not harness.commands_during(0.5), "a command while holding"
        wait_for(lambda: time.monotonic() - start > 4.0, 10, "4 s of corrupt images")
        rejected = [e for e in harness.events("rejected", since) if e.input == "camera.wrist"]
    seconds = time.monotonic() - start
    lines = log_since(proc, offset)
    raw = [line for line in lines if line.lstrip().startswith("Corrupt JPEG data")]
    assert not raw, f"{len(raw)} lines of the decoder on stderr"
    ours = [line for line in lines if "Corrupt JPEG data" in line]
    assert 1 <= len(ours) <= 2 + seconds / 2, "\n".join(ours)
    assert all("holding, bad input" in line for line in ours), "\n".join(ours)
    assert rejected and "decoder: Corrupt JPEG data" in rejected[0].reason
    harness.feed.silent = set()
    harness.wait_commands(5, timeout=30)


# --------------------------------------------------------------------- rejected events
def test_rejected_events_of_a_malformed_input_are_at_most_one_per_second(good):
    """~110 ``rejected`` events/s went out while a joint state was malformed."""
    harness, proc = good
    since = time.time_ns()
    harness.feed.mode = "nan_joint"
    first = wait_for(
        lambda: [e for e in harness.events("rejected", since) if e.input == "state.joints"],
        20,
        "a rejected event for state.joints",
    )[0]
    wait_for(lambda: time.time_ns() - first.t_ns > 3.5e9, 10, "3.5 s of malformed joints")
    events = [e for e in harness.events("rejected", since) if e.input == "state.joints"]
    harness.feed.mode = "good"
    seconds = (events[-1].t_ns - first.t_ns) * 1e-9
    assert 3 <= len(events) <= 2 + seconds, [e.t_ns for e in events]
    assert all(b.t_ns - a.t_ns >= 0.99e9 for a, b in itertools.pairwise(events))
    assert first.suppressed == 0 and all(e.suppressed > 0 for e in events[1:])
    assert harness.latest_report().counters["input_faults"] > len(events)
    harness.wait_commands(5, timeout=30)


# --------------------------------------------------------------------- image size
def test_an_image_above_cameras_max_pixels_is_refused_and_holds(good):
    harness, proc = good
    since = time.time_ns()
    big = rgb_to_image(synthetic_frame(0.0, 96, 128, 0))  # 12288 pixels
    harness.feed.silent = {"front"}
    with publishing(lambda: harness.cam_pubs["front"].publish(stamped(big, *now_stamp()))):
        level, message = harness.wait_diagnostic("inputs", "cameras.max_pixels")
        assert level == 2 and "camera front" in message and "128x96" in message, message
        assert not harness.commands_during(0.5), "a command while holding"
    rejected = [e for e in harness.events("rejected", since) if e.input == "camera.front"]
    assert rejected and "more than the 10000 accepted" in rejected[0].reason
    harness.feed.silent = set()
    harness.wait_commands(5, timeout=30)


def latest_image_report(harness: Harness, camera: str, stamp_ns: int, since_ns: int) -> Any:
    """The first status report (received after ``since_ns``) in which the image stamped
    ``stamp_ns`` is ``camera``'s latest message (None while there is none)."""
    for report in harness.events("periodic", since_ns):
        age = (report.inputs.get(f"camera.{camera}") or {}).get("age_s")
        if age is not None and abs(report.t_ns - age * 1e9 - stamp_ns) < 1e3:
            return report
    return None


def test_an_image_of_another_size_holds_at_the_next_tick_and_recovers(good):
    """``cameras.resize: false``: an image of another size was only refused when the next
    observation was converted, so the plan in force kept commanding until then. It is a
    fault of its camera on arrival: no command is ticked after the node received it.

    Exact: the node's input callbacks and control ticks run on one executor thread, so every
    tick stamped after the image's receive time (a status report gives it: the report's time
    less the camera's receive age, while that image is the camera's latest) runs after it."""
    harness, proc = good
    refusal = "image is 40x30, the policy expects 64x48 (set cameras.resize: true to resize)"
    (threshold,) = harness.get_params("replan_threshold")
    since = time.time_ns()
    sent: list[int] = []

    def received() -> Any:
        for stamp_ns in sent:
            if report := latest_image_report(harness, "front", stamp_ns, since):
                return report
        if not sent or time.time_ns() - sent[-1] > 2e9:  # sensor data QoS: lost, another
            stamp = now_stamp()
            harness.cam_pubs["front"].publish(stamped(wrong_size_image(), *stamp))
            sent.append(stamp[0] * 1_000_000_000 + stamp[1])
        return None

    try:
        (result,) = harness.set_params(replan_threshold=0.0)  # a plan runs to its end
        assert result.successful
        # a fresh plan in force (about 0.5 s of commands) when the image arrives
        wait_for(lambda: any(e.accepted for e in harness.events("chunk", since)), 30, "a chunk")
        harness.feed.silent = {"front"}
        published = harness.feed.published
        wait_for(lambda: harness.feed.published > published + 1, 10, "the feed without front")
        report = wait_for(received, 20, "a status report with the image of another size")
        received_ns = report.t_ns - round(report.inputs["camera.front"]["receive_age_s"] * 1e9)
        problems = {p["input"]: p for p in report.problems}
        assert "camera.front" in problems and not report.healthy, report.problems
        assert problems["camera.front"]["severity"] == "fault"
        assert problems["camera.front"]["message"] == (
            f"camera front (camera/front/image_raw): {refusal}"
        )
        wait_for(lambda: time.time_ns() - received_ns > 1e9, 10, "1 s after the image")
        late = [
            c for c in harness.snapshot(harness.commands, since) if header_ns(c.msg) > received_ns
        ]
        assert not late, f"{len(late)} commands ticked after the image of another size arrived"
        rejected = [e for e in harness.events("rejected", since) if e.input == "camera.front"]
        assert rejected and refusal in rejected[0].reason
    finally:
        harness.feed.silent = set()
        harness.set_params(replan_threshold=threshold)
    harness.wait_commands(5, timeout=30)
    wait_for(lambda: harness.latest_report().healthy, 20, "a healthy report again")


# --------------------------------------------------------------------- parameters
def test_a_parameter_that_applies_at_the_next_configure_says_so(good):
    harness, proc = good
    (result,) = harness.set_params(control_rate=5.0)
    assert result.successful
    assert "control_rate: accepted, applies at the next configure" in result.reason
    assert "control_rate 20.0" in result.reason  # what the node runs with until then
    assert harness.latest_report().control_rate == RATE
    (result,) = harness.set_params(realtime_priority=0)
    assert result.successful and "read only when the node starts" in result.reason
    (result,) = harness.set_params(hold_mode="none")  # applies now: nothing to say
    assert result.successful and result.reason == ""
    (result,) = harness.set_params(control_rate=RATE)
    assert result.successful


def test_every_refused_parameter_is_named_with_its_own_reason(good):
    """Two bad values in one request: blend.mode only appeared as '(+1 similar)' folded into
    the num_steps line."""
    harness, proc = good
    offset = len(proc.log())
    results = harness.set_params(num_steps=-1, blend__mode="bogus")
    assert [r.successful for r in results] == [False, False]
    assert results[0].reason.startswith("num_steps: must be >= 0")
    assert results[1].reason.startswith("blend.mode: must be one of none, linear, exponential")
    wanted = ("parameter refused: num_steps: must be >= 0", "parameter refused: blend.mode")

    def logged() -> list[str] | None:
        lines = log_since(proc, offset)
        return lines if all(any(w in line for line in lines) for w in wanted) else None

    lines = wait_for(logged, 10, "a log line for each refused parameter")
    assert not any("similar)" in line for line in lines if "parameter refused" in line)
    num_steps, mode = harness.get_params("num_steps", "blend.mode")
    assert num_steps >= 0 and mode == "linear"  # the old values stay
