"""libero_eval's ROS client reads the bridge's episode events with the one decoder: a message
it cannot decode is dropped without stopping its executor, and named when the end of an
episode then never comes. A real rclpy publisher on the client's topic, no bridge."""

from __future__ import annotations

import os

import pytest
import rclpy
from rclpy.context import Context
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from snapflow_ros.eval.client import EvalClient, EvalError, Names, wait_until
from snapflow_ros.sim.episode_events import CommandCounts, EpisodeEnd, to_json
from test.nodes.harness import domain_id

DOMAIN = domain_id(37)

END = EpisodeEnd(
    episode_id=1,
    suite="libero_object",
    task_index=0,
    task="pick up the alphabet soup and place it in the basket",
    init_state_index=0,
    success=False,
    steps=3,
    reason="max_steps",
    max_steps=3,
    mode="lockstep",
    sim_time_s=0.15,
    wall_s=1.2,
    steps_per_s=2.5,
    step_mean_s=0.1,
    publish_mean_s=0.01,
    wait_mean_s=0.2,
    commands=CommandCounts(received=3, applied=3, rejected=0, clipped=0, stale=0),
    held_steps=0,
    noop_steps=0,
    kicks=1,
    overruns=0,
    rendered_steps=4,
    end_ns=11_150_000_000,
    final_state=[0.0] * 8,
    objects={},
)


@pytest.fixture
def publish():
    """Publish ``std_msgs/String`` texts on a client's episode topic (the bridge's QoS)."""
    context = Context()
    rclpy.init(context=context, domain_id=DOMAIN)
    node = rclpy.create_node("fake_bridge", context=context)
    qos = QoSProfile(
        depth=100,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
    pubs = {}

    def send(topic: str, *texts: str) -> None:
        pub = pubs.setdefault(topic, node.create_publisher(String, topic, qos))
        for text in texts:
            pub.publish(String(data=text))

    yield send
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def test_episode_events_are_decoded_and_a_malformed_one_is_named(publish):
    names = Names(ns=f"/ec{os.getpid()}")
    client = EvalClient(DOMAIN, names)
    try:
        # latched: sent before the client's subscription matches, still received in order
        publish(names.topic("episode"), '{"event": "end", "episode_id": ', to_json(END))
        end = wait_until(lambda: client.end_event(1), 60, "the end event after a bad message")
        assert end == END and isinstance(end, EpisodeEnd)  # the executor survived the bad one
        with pytest.raises(EvalError) as raised:
            client.wait_end(2, timeout=0.5)
        text = str(raised.value)
        assert text.startswith("timed out after 0.5 s waiting for the end of episode 2"), text
        assert "1 episode message(s) could not be decoded, the last: episode event is not JSON" in (
            text
        )
    finally:
        client.close()
