"""The synthetic LeRobotDataset and the dataset side of the distillation (split, chunks, order)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from snapflow_training import data
from snapflow_training.errors import DistillError
from snapflow_training.synthetic_dataset import (
    TASKS,
    SyntheticSpec,
    build_synthetic_dataset,
    ensure_synthetic_dataset,
)

from snapflow_ros.policies.tiny import TinySpec
from snapflow_ros.runtime import checkpoint as ckpt

SPEC = SyntheticSpec(num_episodes=6, episode_length=16, seed=3)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset shared by this module."""
    return ensure_synthetic_dataset(tmp_path_factory.getbasetemp() / "synthetic_6x16", SPEC)


@pytest.fixture(scope="module")
def smolvla_config(tiny_smolvla_dir: Path):
    """The tiny SmolVLA checkpoint's LeRobot config (chunk 10)."""
    return ckpt.load_policy_config(tiny_smolvla_dir, "smolvla", "cpu", None)


def _load(root: Path, episodes: list[int] | None = None, delta=None):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("local/test", root=root, episodes=episodes, delta_timestamps=delta)


def test_features_match_the_tiny_checkpoints(dataset_root: Path) -> None:
    tiny = TinySpec()
    ds = _load(dataset_root)
    assert ds.meta.total_episodes == SPEC.num_episodes
    assert len(ds) == SPEC.num_episodes * SPEC.episode_length
    assert sorted(ds.meta.camera_keys) == sorted(tiny.image_keys)
    for key in tiny.image_keys:
        assert tuple(ds.meta.features[key]["shape"]) == (tiny.image_height, tiny.image_width, 3)
    assert tuple(ds.meta.features["observation.state"]["shape"]) == (tiny.state_dim,)
    assert tuple(ds.meta.features["action"]["shape"]) == (tiny.action_dim,)
    frame = ds[0]
    assert frame["observation.images.front"].shape == (3, tiny.image_height, tiny.image_width)
    assert frame["task"] in TASKS
    # pi0.5 normalises with quantiles: the saved stats must have them
    for key in ("observation.state", "action"):
        assert {"q01", "q99", "mean", "std"} <= set(ds.meta.stats[key])


def test_action_is_structured_and_partly_bimodal(dataset_root: Path) -> None:
    ds = _load(dataset_root)
    table = ds.hf_dataset.with_format("numpy")
    state = np.stack(table["observation.state"])
    action = np.stack(table["action"])
    episode = np.asarray(table["episode_index"])
    frame = np.asarray(table["frame_index"])
    same = episode[1:] == episode[:-1]
    # position integrates the first three action dims exactly
    np.testing.assert_allclose(
        state[1:, :3][same] - state[:-1, :3][same], 0.15 * action[:-1, :3][same], atol=1e-5
    )
    assert set(np.unique(action[:, 6])) == {-1.0, 1.0}
    # the rotation sign is drawn per episode: both modes occur at the first frame
    first_rotation = action[frame == 0, 3]
    np.testing.assert_allclose(np.abs(first_rotation), 0.5, atol=1e-6)
    assert (first_rotation > 0).any() and (first_rotation < 0).any()
    # images change along an episode (the eef marker moves)
    a = ds[0]["observation.images.front"]
    b = ds[SPEC.episode_length - 1]["observation.images.front"]
    assert not torch.equal(a, b)


def test_build_refuses_an_existing_root(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    with pytest.raises(FileExistsError):
        build_synthetic_dataset(tmp_path / "ds", SyntheticSpec(num_episodes=1, episode_length=2))


def test_generation_is_deterministic(tmp_path: Path) -> None:
    spec = SyntheticSpec(num_episodes=2, episode_length=5, seed=11)
    one = _load(build_synthetic_dataset(tmp_path / "a", spec)).hf_dataset.with_format("numpy")
    two = _load(build_synthetic_dataset(tmp_path / "b", spec)).hf_dataset.with_format("numpy")
    np.testing.assert_array_equal(np.stack(one["action"]), np.stack(two["action"]))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("0", []), ("2", [1, 4]), ("0.34", [1, 4]), ("1", [3]), ("5,0", [0, 5]), ("[2]", [2])],
)
def test_parse_eval_episodes(spec: str, expected: list[int]) -> None:
    assert data.parse_eval_episodes(spec, 6) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("6", "no training episode"),
        ("1.0", "fraction"),
        ("7,1", "out of range"),
        ("-1", ">= 0"),
        ("two", "count, a fraction"),
    ],
)
def test_parse_eval_episodes_rejects(spec: str, message: str) -> None:
    with pytest.raises(DistillError, match=message):
        data.parse_eval_episodes(spec, 6)


def test_split_gives_policy_sized_chunks_with_padding(dataset_root: Path, smolvla_config) -> None:
    split = data.make_split(str(dataset_root), smolvla_config, "2")
    assert split.eval_episodes == [1, 4]
    assert split.train_episodes == [0, 2, 3, 5]
    chunk = smolvla_config.chunk_size
    ds = data.load_episodes(split, split.eval_episodes)
    assert len(ds) == 2 * SPEC.episode_length
    first, last = ds[0], ds[SPEC.episode_length - 1]
    assert first["action"].shape == (chunk, 7)
    assert not first["action_is_pad"].any()
    # the last frame of an episode: one real action, the rest padded (not the next episode)
    assert last["action_is_pad"].tolist() == [False] + [True] * (chunk - 1)
    assert int(first["episode_index"]) == 1


def test_feature_mismatch_is_refused(dataset_root: Path, smolvla_config) -> None:
    from lerobot.configs.types import FeatureType, PolicyFeature

    smolvla_config.input_features["observation.state"] = PolicyFeature(FeatureType.STATE, (6,))
    try:
        with pytest.raises(DistillError, match=r"observation.state.*\(8,\).*\(6,\)"):
            data.make_split(str(dataset_root), smolvla_config, "1")
    finally:
        smolvla_config.input_features["observation.state"] = PolicyFeature(FeatureType.STATE, (8,))


def test_missing_dataset_and_non_dataset_folder(tmp_path: Path) -> None:
    with pytest.raises(DistillError, match="does not exist"):
        data.resolve_dataset(str(tmp_path / "missing"))
    with pytest.raises(DistillError, match="no meta/info.json"):
        data.resolve_dataset(str(tmp_path))
    assert data.resolve_dataset("lerobot/some_dataset").root is None  # a Hub id


def test_sampler_resume_continues_the_same_order(dataset_root: Path, smolvla_config) -> None:
    split = data.make_split(str(dataset_root), smolvla_config, "2")
    ds = data.load_episodes(split, split.train_episodes)
    batch = 7  # 64 frames -> 10 batches per epoch, the last one partial

    def indices(loader, count: int) -> list[list[int]]:
        stream = data.cycle(loader)
        return [next(stream)["index"].tolist() for _ in range(count)]

    loader, _ = data.make_train_loader(ds, batch, seed=5, num_workers=0)
    straight = indices(loader, 14)
    assert sorted(i for batch_ in straight[:10] for i in batch_) == sorted(
        int(i) for i in ds.hf_dataset.with_format("numpy")["index"]
    )
    assert straight[10] != straight[0]  # a new epoch is shuffled differently
    loader, sampler = data.make_train_loader(ds, batch, seed=5, num_workers=0)
    state = data.position_sampler(sampler, 8, batch, 1)
    assert state == {"epoch": 0, "start_index": 56}
    assert indices(loader, 6) == straight[8:14]
