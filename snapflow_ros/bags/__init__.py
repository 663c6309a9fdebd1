"""rosbag2 replay testing: bag I/O (rosbags), the ``record`` / ``replay`` / ``compare`` tools,
chunk matching, metrics, reports.

Only the two ROS tools import rclpy: :mod:`.record` (raw subscriptions into a bag) and
:mod:`.replay` (the thin driver that publishes, waits and records). Everything else is pure
Python: what ``replay`` does and when (:mod:`.replay_plan`, :mod:`.lockstep`), ``compare``
(:mod:`.compare`), the I/O (:mod:`.io`). Guide: ``docs/bag_testing.md``.
"""

from snapflow_ros.bags.errors import BagError

__all__ = ["BagError"]
