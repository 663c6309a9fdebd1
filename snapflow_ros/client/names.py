"""ROS names as the client writes them (plain strings, no ROS import)."""

from __future__ import annotations

import os


def absolute(name: str) -> str:
    """``name`` with a leading ``/``."""
    return name if name.startswith("/") else "/" + name


def split_name(full: str) -> tuple[str, str]:
    """``/ns/name`` -> (``/ns``, ``name``)."""
    ns, _, name = absolute(full).rpartition("/")
    return ns or "/", name


def unique_name(prefix: str) -> str:
    """A node name unlikely to clash with another client's (``prefix`` + pid)."""
    return f"{prefix}_{os.getpid()}"
