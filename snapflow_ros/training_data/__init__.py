"""Training data from the simulator, without ROS: scripted LIBERO demonstrations recorded as a
LeRobotDataset (:mod:`.demonstrations`, run as ``python -m
snapflow_ros.training_data.demonstrations``) and the roll-back of a recording killed hard
(:mod:`.dataset_rollback`). Nothing is imported with the package.
"""
