"""Rendering on demand, and a video camera rendered for people, change nothing but the time:
``libero_eval --render on-demand`` ends the same episodes in the same final states as
``--render every`` with a 96 px video camera, rendering about one step in ten.

The shipped 10-step teacher (whole chunks of 10 actions, lock-step) runs two benchmark initial
states for 40 steps each way, in one session: the two runs' final states must be equal to the
bridge's recorded precision (6 decimals), which needs every image the node reads to be the
rendered one. Also: which runs ``--render auto`` chooses, and the refusals of ``on-demand``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from snapflow_ros.eval.libero_eval import UsageError, chunk_topic, render_mode
from test.nodes.harness import domain_id

STEPS = 40
WHOLE_CHUNKS = {"replan_threshold": 0.0, "chunk": {"publish": True, "topic": "~/action_chunk"}}


def test_auto_renders_on_demand_only_where_the_node_reads_images_only_at_chunk_ends():
    assert render_mode("auto", "lockstep", False, WHOLE_CHUNKS) == "on-demand"
    assert render_mode("every", "lockstep", False, WHOLE_CHUNKS) == "every"
    assert render_mode("auto", "lockstep", True, WHOLE_CHUNKS) == "every"  # video
    assert render_mode("auto", "realtime", False, WHOLE_CHUNKS) == "every"
    early = {**WHOLE_CHUNKS, "replan_threshold": 1.2}
    assert render_mode("auto", "lockstep", False, early) == "every"
    assert render_mode("auto", "lockstep", False, {"chunk": {}}) == "every"  # automatic: -1
    hidden = {"replan_threshold": 0.0, "chunk": {"publish": False}}
    assert render_mode("auto", "lockstep", False, hidden) == "every"
    for node, video, why in (
        (early, False, "re-plans before its chunk runs out"),
        (WHOLE_CHUNKS, True, "a video needs every frame"),
        (hidden, False, "publishes no chunks"),
    ):
        with pytest.raises(UsageError, match=why):
            render_mode("on-demand", "lockstep", video, node)


def test_the_bridge_is_told_the_nodes_chunk_topic():
    assert chunk_topic(WHOLE_CHUNKS) == "policy_node/action_chunk"
    assert chunk_topic({"chunk": {"topic": "/robot/chunks"}}) == "/robot/chunks"
    assert chunk_topic({}) == "policy_node/action_chunk"


def _run(out: Path, render: str, domain: int, *extra: str) -> dict:
    cmd = [
        str(Path(sys.executable).parent / "libero_eval"),
        "--suites", "libero_object", "--tasks", "0", "--episodes", "2", "--init-offset", "4",
        "--image-size", "64", "--max-steps", str(STEPS), "--config", "t=libero:teacher,10",
        "--policy-arg", "torch_threads:=1", "--render", render, "--out", str(out),
        "--domain-id", str(domain), "--namespace", f"/rd{os.getpid()}",
        "--startup-timeout", "300", *extra,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_on_demand_rendering_gives_the_same_episodes(tmp_path):
    # every step, with a 96 px video camera rendered besides the policy's 64 px images
    every = _run(tmp_path / "every", "every", domain_id(41), "--video", "--video-size", "96")
    on_demand = _run(tmp_path / "on_demand", "on-demand", domain_id(42))
    assert every["plan"]["render"] == "every" and on_demand["plan"]["render"] == "on-demand"
    pairs = list(zip(every["episodes"], on_demand["episodes"], strict=True))
    assert len(pairs) == 2
    for a, b in pairs:
        assert a["init_state_index"] == b["init_state_index"]
        assert (a["success"], a["steps"], a["reason"]) == (b["success"], b["steps"], b["reason"])
        assert a["final_state"] == b["final_state"], (a["final_state"], b["final_state"])
        assert a["objects"] == b["objects"]
        assert a["rendered_steps"] == a["steps"] + 1  # the start observation + every step
        # whole chunks of 10: the start + where each chunk runs out (plus an unknown chunk's
        # step now and then: a chunk message that arrives after its first command)
        assert b["steps"] // 10 + 1 <= b["rendered_steps"] <= b["steps"] // 4, b
        video = cv2.VideoCapture(str(tmp_path / "every" / a["video"]))
        ok, frame = video.read()
        assert ok and frame.shape[:2] == (96, 96)  # the video camera, not the 64 px input
        assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == a["steps"] + 1
        video.release()
