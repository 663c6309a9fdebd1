"""The client for the package's nodes (ROS layer): see :mod:`.node_client`."""

from snapflow_ros.client.node_client import (
    ClientError,
    NodeClient,
    Received,
    absolute,
    split_name,
    unique_name,
    wait_until,
)

__all__ = [
    "ClientError",
    "NodeClient",
    "Received",
    "absolute",
    "split_name",
    "unique_name",
    "wait_until",
]
