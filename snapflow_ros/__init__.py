"""snapflow_ros: one-step flow-matching VLA policies (SmolVLA, pi0.5) on ROS 2."""

__version__ = "0.1.0"
