"""The client for the package's nodes (ROS layer): :mod:`.node_client` (``NodeClient``, rclpy),
the one wait helper, :mod:`.waiting`, and ROS names, :mod:`.names` (these two: no ROS import).

``from snapflow_ros.client import NodeClient`` imports rclpy; importing
``snapflow_ros.client.waiting`` alone does not (the names of :mod:`.node_client` are loaded on
first use).
"""

from __future__ import annotations

import importlib
from typing import Any

from snapflow_ros.client.names import absolute, split_name, unique_name
from snapflow_ros.client.waiting import ClientError, WaitAborted, WaitTimeout, wait_until

_NODE_CLIENT = ("NodeClient", "Received")

__all__ = [
    "ClientError",
    "WaitAborted",
    "WaitTimeout",
    "wait_until",
    "absolute",
    "split_name",
    "unique_name",
    *_NODE_CLIENT,
]


def __getattr__(name: str) -> Any:
    if name in _NODE_CLIENT:
        return getattr(importlib.import_module("snapflow_ros.client.node_client"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
