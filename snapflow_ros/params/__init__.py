"""Node parameters without ROS: one schema, the nodes' tables, typed configurations.

* :mod:`.choices`: the words and limits parameters choose from, shared with the message
  conversions that implement them and the launch-argument parser (device pattern, command
  types, joint fields, pose formats, largest image);
* :mod:`.schema`: validators, type coercion, :class:`~.schema.ParamSpec` (one parameter) and
  :class:`~.schema.ParamTable` (a node's table: lookup, checks, typed nested configuration);
* :mod:`.policy_node` and :mod:`.libero_bridge`: the tables of the two nodes, declared with it.

This file imports nothing: :mod:`.choices` and :mod:`.schema` import nothing of the package
(the logic layer declares its run-time parameters with them), the tables are imported by
name.
"""
