"""A configure without ROS: from a checked configuration to a running :class:`Session`.

:func:`open_session` loads the policy runtime, warms it up (the first chunk's latency is the
replan threshold's estimate until real samples exist), builds the command loop with its
blending and limits, and one input slot per camera and state source; the result is what
:meth:`~snapflow_ros.control.controller.PolicyController.attach` takes. The configuration is
the policy node's typed one (:func:`snapflow_ros.params.policy_node.build_config`).

The runtime (torch) and the message conversions (OpenCV) are layers this one does not
import: they come in a :class:`Backend`. The node passes the real ones
(:func:`snapflow_ros.params.policy_node.load_runtime`, ``snapflow_ros.runtime.Observation``
and the converters of :mod:`snapflow_ros.ros_conversions.input_converters`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from snapflow_ros.control.controller import Session
from snapflow_ros.control.input_slots import InputSet, InputSlot
from snapflow_ros.control.limits import ActionLimits
from snapflow_ros.control.loop import CommandLoop
from snapflow_ros.control.scheduler import BlendConfig
from snapflow_ros.control.settings import MAX_TASK_CHARS, runtime_seed

Log = Callable[[str, str], None]  # (level, message)
ThrottledLog = Callable[[str, str, str], None]  # (key, level, message): one line per key per 2 s


@dataclass(frozen=True)
class Backend:
    """What a session is made of that this layer does not import.

    ``load_runtime(cfg, log)``: the policy runtime ``cfg`` names, loaded and checked against
    ``cfg`` (raises ConfigError or CheckpointError). ``make_observation(images=, state=,
    task=, stamp=)``: the runtime's observation. ``image_converter(compressed, height, width,
    resize, max_pixels, on_warning)`` / ``image_checker(compressed, height, width, resize,
    max_pixels)`` / ``state_converter(type, names, field, indices, size, format)``: the
    message conversions of one input.
    """

    load_runtime: Callable[[Any, Log], Any]
    make_observation: Callable[..., Any]
    image_converter: Callable[..., Callable[[Any], Any]]
    image_checker: Callable[..., Callable[[Any], Any]]
    state_converter: Callable[..., Callable[[Any], Any]]


@dataclass
class OpenSession:
    """A configured session, the names of its action dimensions and the line saying so."""

    session: Session
    action_names: list[str]
    summary: str


def open_session(
    cfg: Any, backend: Backend, steps: int | None, log: Log, log_throttled: ThrottledLog
) -> OpenSession:
    """Load, warm up and wire everything ``cfg`` describes (``steps``: the denoising steps of
    the warm-up chunk, None for the checkpoint's default)."""
    runtime = backend.load_runtime(cfg, log)
    seed = runtime_seed(cfg.seed)
    start = time.perf_counter()
    runtime.predict_chunk(runtime.dummy_observation(), num_steps=steps)
    latency_hint = time.perf_counter() - start
    runtime.reset_noise(seed)
    dim = runtime.action_dim
    loop = CommandLoop(
        dt=1.0 / cfg.control_rate,
        action_dim=dim,
        blend=BlendConfig(cfg.blend.mode, cfg.blend.alpha, cfg.blend.max_steps),
        limits=ActionLimits.build(dim, cfg.limits.lower, cfg.limits.upper, cfg.limits.max_delta),
        hold_mode=cfg.hold_mode,
        max_lead=cfg.max_future_stamp,
    )
    session = Session(
        runtime=runtime,
        inputs=make_inputs(cfg, runtime, backend, log_throttled),
        loop=loop,
        make_observation=backend.make_observation,
        control_rate=cfg.control_rate,
        stats_window=cfg.stats_window,
        latency_hint=latency_hint,
    )
    desc = runtime.describe()
    summary = (
        f"configured: {desc['policy_type']} (snapflow={desc['snapflow']}) on {desc['device']} "
        f"({desc['dtype']}, engine {desc['engine']}), "
        f"cameras {[c.key for c in cfg.cameras]}, state {desc['state_dim']}, "
        f"actions {dim} x {desc['chunk_size']} at {cfg.control_rate} Hz, "
        f"steps {steps or desc['default_num_steps']}, "
        f"first chunk {latency_hint * 1000:.0f} ms"
    )
    names = list(cfg.action_names or [f"action_{i}" for i in range(dim)])
    return OpenSession(session, names, summary)


def make_inputs(cfg: Any, runtime: Any, backend: Backend, log_throttled: ThrottledLog) -> InputSet:
    """One slot per camera (converted to the policy's image size; larger than
    ``cameras.max_pixels``: refused on arrival) and per state source. A decoder message that
    does not make an image malformed is logged, throttled per camera."""
    cameras = []
    resize, max_pixels = cfg.cameras.resize, cfg.cameras.max_pixels
    for cam in cfg.cameras:
        _, height, width = runtime.config.input_features[cam.key].shape
        label = f"camera {cam.name} ({cam.topic})"

        def warn(text: str, key: str = f"decoder.{cam.name}", label: str = label) -> None:
            log_throttled(key, "warning", f"{label}: {text}")

        size = (int(height), int(width))
        convert = backend.image_converter(cam.compressed, *size, resize, max_pixels, warn)
        check = backend.image_checker(cam.compressed, *size, resize, max_pixels)
        cameras.append((cam.key, InputSlot(f"camera.{cam.name}", label, convert, check)))
    states = [
        InputSlot(
            f"state.{src.name}",
            f"state {src.name} ({src.topic})",
            backend.state_converter(
                src.type, src.names, src.field, src.indices, src.size, src.format
            ),
            eager=True,
        )
        for src in cfg.state
    ]
    return InputSet(cameras, states, cfg.observation_stamp, cfg.task.topic, MAX_TASK_CHARS)
