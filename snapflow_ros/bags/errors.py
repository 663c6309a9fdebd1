"""Errors of the bag tools."""

from __future__ import annotations


class BagError(Exception):
    """A bag, topic or type problem the user has to fix (the tools exit with code 2)."""
