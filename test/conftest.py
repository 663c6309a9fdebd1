"""Shared fixtures: tiny offline SmolVLA / pi0.5 checkpoints, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapflow_ros.fixtures.tiny_checkpoints import TinySpec, ensure_tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A per-session folder holding the tiny checkpoints."""
    return tmp_path_factory.mktemp("tiny_checkpoints")


@pytest.fixture(scope="session")
def tiny_smolvla_dir(tiny_cache: Path) -> Path:
    """A tiny SmolVLA checkpoint folder (2 cameras, state 8, action 7, chunk 10, 10 steps)."""
    return ensure_tiny_checkpoint(TinySpec(policy_type="smolvla"), tiny_cache)


@pytest.fixture(scope="session")
def tiny_pi05_dir(tiny_cache: Path) -> Path:
    """A tiny pi0.5 checkpoint folder (same features as the SmolVLA one)."""
    return ensure_tiny_checkpoint(TinySpec(policy_type="pi05"), tiny_cache)


@pytest.fixture(scope="session", params=["smolvla", "pi05"])
def tiny_checkpoint(request: pytest.FixtureRequest, tiny_cache: Path) -> Path:
    """Each tiny checkpoint in turn."""
    return ensure_tiny_checkpoint(TinySpec(policy_type=request.param), tiny_cache)
