"""``command.publish: false`` and ``chunk.publish: false`` on a real policy node.

The node (tiny SmolVLA) runs in this process in its own rclpy Context and is fed over real
DDS by a :class:`Harness`. With one output switched off, the node has no publisher on that
topic and nothing arrives there, while the other output flows.
"""

from __future__ import annotations

import time

from .harness import Harness, active_in_process_node, domain_id, wait_for

DOMAIN = domain_id(25)
NS = "/policy_node"
COMMAND_TOPIC = f"{NS}/command"
CHUNK_TOPIC = f"{NS}/action_chunk"


def overrides(tiny_smolvla_dir, **switches: bool) -> dict:
    """The node's parameters: the tiny policy at 20 Hz, one step, and the switches."""
    return {
        "policy_path": str(tiny_smolvla_dir),
        "control_rate": 20.0,
        "num_steps": 1,
        "torch_threads": 1,
        "task.text": "pick up the red cube",
        "limits.max_delta": [],
        **{name.replace("__", "."): value for name, value in switches.items()},
    }


def publishers(harness: Harness, topic: str) -> int:
    """Publishers of ``topic`` the harness sees in the graph."""
    return harness.node.count_publishers(topic)


def test_command_publish_false_publishes_chunks_only(tiny_smolvla_dir):
    with active_in_process_node(DOMAIN, overrides(tiny_smolvla_dir, command__publish=False)) as (
        harness,
        node,
    ):
        harness.start_feed()
        harness.wait_matched(120)
        wait_for(lambda: len(harness.snapshot(harness.chunks)) >= 5, 120, "5 chunk messages")
        # the graph is discovered (the chunk publisher is seen) and has no command publisher
        wait_for(lambda: publishers(harness, CHUNK_TOPIC) == 1, 30, "the chunk publisher")
        assert publishers(harness, COMMAND_TOPIC) == 0
        # the node does tick its plan: commands computed, none sent
        wait_for(lambda: node.report().counters["commands"] >= 20, 60, "20 ticks with a plan")
        assert not harness.snapshot(harness.commands), "a command on a disabled topic"
        events = harness.events("chunk")
        assert events and all(e.published for e in events if e.accepted)


def test_chunk_publish_false_publishes_commands_only(tiny_smolvla_dir):
    with active_in_process_node(DOMAIN, overrides(tiny_smolvla_dir, chunk__publish=False)) as (
        harness,
        node,
    ):
        harness.start_feed()
        harness.wait_matched(120)
        since = time.time_ns()
        harness.wait_commands(20, timeout=120, since_ns=since)
        wait_for(lambda: publishers(harness, COMMAND_TOPIC) == 1, 30, "the command publisher")
        assert publishers(harness, CHUNK_TOPIC) == 0
        wait_for(
            lambda: sum(e.accepted for e in harness.events("chunk")) >= 3, 60, "3 accepted chunks"
        )
        assert not any(e.published for e in harness.events("chunk")), "a chunk reported sent"
        assert not harness.snapshot(harness.chunks), "a chunk on a disabled topic"
