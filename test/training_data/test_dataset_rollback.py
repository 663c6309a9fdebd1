"""Dataset checkpoints: what matches, what a roll-back deletes and restores, what it refuses."""

from __future__ import annotations

import json

import pytest

from snapflow_ros.training_data.dataset_rollback import (
    CHECKPOINT_FILE,
    CheckpointError,
    load_checkpoint,
    matches_checkpoint,
    roll_back,
    save_checkpoint,
)
from test.training_data.test_demonstrations import _synthetic


def test_roll_back_removes_what_came_after_and_restores_the_metadata(tmp_path):
    root = _synthetic(tmp_path / "ds", 2)
    save_checkpoint(root, 2)
    state = load_checkpoint(root)
    assert state["episodes"] == 2 and matches_checkpoint(root, state)
    info = (root / "meta" / "info.json").read_bytes()
    # what a recording cut short leaves: a new data file and a rewritten info.json
    extra = root / "data" / "chunk-000" / "file-009.parquet"
    extra.write_bytes(b"PAR1 no footer")
    (root / "meta" / "info.json").write_text(json.dumps({"total_episodes": 3}))
    (root / "images" / "observation.images.image" / "episode-000002").mkdir(parents=True)
    (root / "images" / "observation.images.image" / "episode-000002" / "frame-0.png").write_bytes(
        b"x"
    )
    assert not matches_checkpoint(root, state)
    deleted = roll_back(root, state)
    assert sorted(deleted) == [
        "data/chunk-000/file-009.parquet",
        "images/observation.images.image/episode-000002/frame-0.png",
    ]
    assert not extra.exists() and not (root / "images").exists()
    assert (root / "meta" / "info.json").read_bytes() == info
    assert matches_checkpoint(root, state)


def test_a_changed_checkpointed_file_is_refused_and_nothing_deleted(tmp_path):
    root = _synthetic(tmp_path / "ds", 2)
    save_checkpoint(root, 2)
    state = load_checkpoint(root)
    data = sorted((root / "data").rglob("*.parquet"))[0]
    data.write_bytes(data.read_bytes() + b"more")
    extra = root / "data" / "chunk-000" / "file-009.parquet"
    extra.write_bytes(b"new")
    with pytest.raises(CheckpointError, match="bytes at the last checkpoint"):
        roll_back(root, state)
    assert extra.exists()


def test_unreadable_checkpoints_are_reported(tmp_path):
    assert load_checkpoint(tmp_path) is None
    (tmp_path / "meta").mkdir()
    (tmp_path / CHECKPOINT_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tmp_path)
    (tmp_path / CHECKPOINT_FILE).write_text(json.dumps({"episodes": 1, "files": []}))
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tmp_path)
