"""ROS 2 nodes: the policy node and a synthetic camera/joint source (demo, tests, benchmark)."""
