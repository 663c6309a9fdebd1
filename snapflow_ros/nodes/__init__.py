"""The ROS layer's executables (policy node, synthetic source, LIBERO bridge, bag tools) and
what they share (start-up, spin, exit, logging; the policy node's parameter table)."""
