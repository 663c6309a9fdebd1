"""``cameras.resize: false`` on a real policy node: only images of the policy's exact size.

The node (tiny SmolVLA, images 64 wide x 48 high) runs in this process in its own rclpy
Context, fed over real DDS by a :class:`Harness`: its frames are of the exact size and make
commands; frames of another size (published here instead) are refused with a fault naming
both sizes and the parameter, no chunk is made from them, the commands stop; exact frames
again bring the commands back.
"""

from __future__ import annotations

import threading
import time

from sensor_msgs.msg import JointState

from snapflow_ros.nodes.synthetic_source import synthetic_frame, synthetic_joints
from snapflow_ros.ros_conversions import ns_to_stamp_fields, rgb_to_image

from .harness import JOINTS, Harness, active_in_process_node, domain_id, wait_for

DOMAIN = domain_id(27)
WRONG_HEIGHT, WRONG_WIDTH = 40, 40
REFUSAL = (
    f"image is {WRONG_WIDTH}x{WRONG_HEIGHT}, the policy expects 64x48 "
    "(set cameras.resize: true to resize)"
)


class OtherSizeFeed:
    """Publishes the harness' cameras at another size (and the joints), 30 Hz, from a thread;
    the stamps it used are in :attr:`stamps`."""

    def __init__(self, harness: Harness, height: int, width: int) -> None:
        self.harness, self.height, self.width = harness, height, width
        self.stamps: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="other_size_feed", daemon=True)

    def _publish(self) -> None:
        stamp_ns = time.time_ns()
        sec, nsec = ns_to_stamp_fields(stamp_ns)
        for i, pub in enumerate(self.harness.cam_pubs.values()):
            msg = rgb_to_image(synthetic_frame(stamp_ns * 1e-9, self.height, self.width, i))
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nsec
            pub.publish(msg)
        joints = JointState(name=list(JOINTS), position=synthetic_joints(stamp_ns * 1e-9, 8))
        joints.header.stamp.sec, joints.header.stamp.nanosec = sec, nsec
        self.harness.joint_pub.publish(joints)
        self.stamps.append(stamp_ns)

    def _run(self) -> None:
        while not self._stop.wait(1 / 30):
            self._publish()

    def __enter__(self) -> OtherSizeFeed:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_resize_false_refuses_other_sizes_and_accepts_the_exact_one(tiny_smolvla_dir):
    params = {
        "policy_path": str(tiny_smolvla_dir),
        "control_rate": 20.0,
        "num_steps": 1,
        "torch_threads": 1,
        "task.text": "pick up the red cube",
        "limits.max_delta": [],
        "cameras.resize": False,
    }
    with active_in_process_node(DOMAIN, params) as (harness, node):
        # the harness' frames are the policy's size: accepted as they are
        harness.start_feed()
        harness.wait_matched(120)
        harness.wait_commands(10, timeout=120)
        assert not harness.events("rejected")
        harness.feed.paused = True
        since = time.time_ns()
        with OtherSizeFeed(harness, WRONG_HEIGHT, WRONG_WIDTH) as other:
            rejected = wait_for(
                lambda: [e for e in harness.events("rejected", since) if REFUSAL in e.reason],
                30,
                "a rejection of the other size",
            )
            assert rejected[0].input.startswith("camera."), rejected[0]
            level, message, _ = wait_for(
                lambda: (d := harness.latest_diagnostics()["inputs"]) and REFUSAL in d[1] and d,
                30,
                "an inputs diagnostic naming the size",
            )
            assert level == 2
            # the plan in force runs out and no chunk replaces it: the commands stop
            wait_for(
                lambda: time.time_ns() - harness.snapshot(harness.commands)[-1].recv_ns > 1e9,
                30,
                "the commands to stop for 1 s",
            )
            made = [e for e in harness.events("chunk", since) if e.stamp_ns in other.stamps]
            assert not made, "a chunk was made from images of another size"
            assert node.report().counters["input_faults"] >= 1
        # the exact size again: commands again
        harness.feed.paused = False
        harness.wait_commands(5, timeout=60)
