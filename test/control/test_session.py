"""Building a session without ROS (snapflow_ros/control/session.py): the real tiny SmolVLA
runtime and the real message conversions, no rclpy and no node.

The configuration is the shipped config/policy.yaml; the session it makes is checked field by
field, then run: real sensor messages into its input slots, one inference on a fake clock,
one command out, within the configured limits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sensor_msgs.msg import Image, JointState

from snapflow_ros.control import PolicyController
from snapflow_ros.control.session import Backend, OpenSession, open_session
from snapflow_ros.control.settings import settings_from
from snapflow_ros.params.policy_node import ConfigError, build_config, load_runtime
from snapflow_ros.params.schema import lookup
from snapflow_ros.ros_conversions.input_converters import (
    image_checker,
    image_converter,
    state_converter,
)
from snapflow_ros.runtime import Observation
from test.config_files import flat_parameters

from .fakes import FakeClock, Recorder

REPO = Path(__file__).resolve().parents[2]
BACKEND = Backend(load_runtime, Observation, image_converter, image_checker, state_converter)


def shipped_config(**overrides: Any) -> Any:
    """config/policy.yaml (flattened) with ``overrides``, checked: the typed configuration."""
    data = yaml.safe_load((REPO / "config" / "policy.yaml").read_text())
    values = {**flat_parameters(data["/**/policy_node"]["ros__parameters"]), **overrides}
    return build_config(values.get)


class Logs:
    """What the session logged: plain lines and throttled ones (with their keys)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.throttled: list[tuple[str, str, str]] = []

    def log(self, level: str, message: str) -> None:
        self.lines.append((level, message))

    def log_throttled(self, key: str, level: str, message: str) -> None:
        self.throttled.append((key, level, message))


@pytest.fixture(scope="module")
def opened(tiny_smolvla_dir: Path) -> tuple[Any, OpenSession, Logs]:
    cfg = shipped_config(policy_path=str(tiny_smolvla_dir), device="cpu", control_rate=20.0)
    logs = Logs()
    return cfg, open_session(cfg, BACKEND, 2, logs.log, logs.log_throttled), logs


def test_the_session_is_what_the_configuration_says(opened, tiny_smolvla_dir):
    cfg, result, logs = opened
    session = result.session
    assert logs.lines == [("info", f"loading policy {tiny_smolvla_dir} on cpu")]
    assert session.runtime.action_dim == 7 and session.control_rate == 20.0
    assert session.loop.dt == pytest.approx(0.05)
    assert cfg.seed == 0 and session.stats_window == cfg.stats_window
    assert session.latency_hint > 0  # the warm-up chunk's latency
    limits = session.loop.limits
    assert np.all(limits.lower == -3.0) and np.all(limits.upper == 3.0)
    assert np.all(limits.max_delta == 0.5) and limits.lower.shape == (7,)
    assert session.loop.scheduler.blend.mode == cfg.blend.mode == "linear"
    assert session.loop.hold_mode == cfg.hold_mode
    assert list(session.inputs.slots) == ["camera.front", "camera.wrist", "state.joints"]
    assert result.action_names == cfg.action_names and len(result.action_names) == 7
    assert result.summary.startswith("configured: smolvla (snapflow=False) on cpu")
    assert "actions 7 x 10 at 20.0 Hz, steps 2, first chunk" in result.summary
    assert [c.key for c in cfg.cameras] == ["observation.images.front", "observation.images.wrist"]


def _image(width: int, height: int, stamp_ns: int) -> Image:
    msg = Image(height=height, width=width, encoding="rgb8", step=width * 3)
    msg.data = bytes(np.random.default_rng(0).integers(0, 255, height * width * 3, np.uint8))
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return msg


def test_the_session_runs_real_messages_to_a_limited_command(opened):
    cfg, result, _ = opened
    clock = FakeClock()
    out = Recorder()
    settings = settings_from(lambda name: lookup(cfg, name))
    ctl = PolicyController(clock, out, settings, monotonic=lambda: clock.s)
    ctl.attach(result.session)
    ctl.activate()
    names = cfg.state[0].names
    joints = JointState(name=list(names), position=[0.1 * i for i in range(len(names))])
    joints.header.stamp.sec, joints.header.stamp.nanosec = divmod(clock.ns, 1_000_000_000)
    slots = result.session.inputs.slots
    for slot in ("camera.front", "camera.wrist"):
        slots[slot].update(_image(64, 48, clock.ns), clock.ns, clock.ns)
    slots["state.joints"].update(joints, clock.ns, clock.ns)
    assert ctl.task() == cfg.task.text != ""
    ctl.infer_once()
    assert len(out.chunks) == 1, out.logs
    chunk = out.chunks[0][0]
    assert chunk.shape == (10, 7) and np.all(np.abs(chunk) <= 3.0)
    ctl.tick()
    assert len(out.commands) == 1, out.logs
    command, t_ns = out.commands[0]
    assert t_ns == clock.ns and np.array_equal(command, chunk[0])  # action 0 is due now
    clock.advance(0.05)
    ctl.tick()
    step = out.commands[1][0] - command  # action 1, rate-limited to max_delta per tick
    assert len(out.commands) == 2 and np.all(np.abs(step) <= 0.5 + 1e-12)
    assert np.allclose(out.commands[1][0], command + np.clip(chunk[1] - command, -0.5, 0.5))
    ctl.detach()


def test_a_configuration_the_policy_cannot_take_is_refused(tiny_smolvla_dir):
    logs = Logs()
    unset = shipped_config(policy_path="")  # accepted by the table (config/libero_policy.yaml)
    with pytest.raises(ConfigError, match="^policy_path: policy path is empty"):
        open_session(unset, BACKEND, None, logs.log, logs.log_throttled)
    assert logs.lines == []  # refused before anything is loaded
    three = shipped_config(
        policy_path=str(tiny_smolvla_dir), device="cpu", **{"state.joints.names": ["a", "b", "c"]}
    )
    with pytest.raises(ConfigError, match=r"state: the sources give 3 values \(joints=3\), .* 8"):
        open_session(three, BACKEND, None, logs.log, logs.log_throttled)
