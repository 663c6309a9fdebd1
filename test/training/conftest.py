"""Fixtures shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from snapflow_training.synthetic_dataset import SyntheticSpec, ensure_synthetic_dataset


@pytest.fixture(scope="module")
def teacher_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small LeRobotDataset for the teacher recipes (3 episodes x 12 frames, two 48x64
    cameras), written once per test session and shared by the SmolVLA and pi0.5 tests."""
    spec = SyntheticSpec(num_episodes=3, episode_length=12, seed=4)
    return ensure_synthetic_dataset(tmp_path_factory.getbasetemp() / "teacher_3x12", spec)
