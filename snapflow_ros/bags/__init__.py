"""rosbag2 replay testing without ROS: bag I/O (rosbags), chunk matching, metrics, reports.

Nothing here imports rclpy: the thin ROS tools are ``snapflow_ros.nodes.bag_record`` and
``snapflow_ros.nodes.bag_replay``; ``compare`` (:mod:`snapflow_ros.bags.compare`) is pure Python.
Guide: ``docs/bag_testing.md``.
"""

from snapflow_ros.bags.errors import BagError

__all__ = ["BagError"]
