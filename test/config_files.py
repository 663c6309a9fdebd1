"""The shipped ROS params files as the tests read them: nested parameters as dotted names."""

from __future__ import annotations

from typing import Any


def flat_parameters(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"cameras": {"names": [...]}}`` -> ``{"cameras.names": [...]}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat_parameters(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
