"""Closed-loop evaluation of policies on simulated LIBERO through the ROS 2 policy node."""
