"""The policy registry: what a ``policy_path`` may name and the one resolver for all of it.

:func:`resolve_policy` turns a ``tiny:`` name (an embedded random test policy, built offline
on first use), a ``libero:`` name (a small trained policy shipped in ``snapflow_ros/models``),
a local checkpoint folder or a Hugging Face Hub id into a local checkpoint folder
(:mod:`.registry`). The tiny policies' builders live in :mod:`.tiny` (``snapflow_make_tiny``:
:mod:`.cli`). Importing this package imports neither torch nor ROS.
"""

from snapflow_ros.policies.registry import (
    EMBEDDED_POLICIES,
    LIBERO_FEATURES,
    LIBERO_POLICIES,
    LIBERO_TINY,
    MODELS_DIR,
    TINY_POLICIES,
    check_policy_path,
    embedded_dir,
    is_embedded,
    is_hub_id,
    is_tiny,
    libero_tiny_spec,
    resolve_policy,
    tiny_names,
    tiny_spec,
)

__all__ = [
    "EMBEDDED_POLICIES",
    "LIBERO_FEATURES",
    "LIBERO_POLICIES",
    "LIBERO_TINY",
    "MODELS_DIR",
    "TINY_POLICIES",
    "check_policy_path",
    "embedded_dir",
    "is_embedded",
    "is_hub_id",
    "is_tiny",
    "libero_tiny_spec",
    "resolve_policy",
    "tiny_names",
    "tiny_spec",
]
