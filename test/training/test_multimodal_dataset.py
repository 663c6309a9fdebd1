"""The multimodal benchmark dataset: hidden / visible per-episode modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from snapflow_training.multimodal_dataset import (
    MODE_DIM,
    MODE_KEY,
    VISIBLE_KEY,
    MultimodalSpec,
    ensure_multimodal_dataset,
    episode_labels,
)

SPEC = MultimodalSpec(num_episodes=6, episode_length=5, seed=2)
GREEN = np.array([40, 220, 60])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = ensure_multimodal_dataset(tmp_path_factory.getbasetemp() / "modes_6x5", SPEC)
    return LeRobotDataset("local/modes", root=Path(root))


def test_labels_alternate_visibility_and_draw_both_signs() -> None:
    labels = episode_labels(MultimodalSpec(num_episodes=40))
    assert [v for _, v in labels] == [e % 2 == 0 for e in range(40)]
    signs = [m for m, _ in labels]
    assert set(signs) == {-1.0, 1.0} and 10 < signs.count(1.0) < 30


def test_mode_is_in_the_action_and_only_visible_episodes_show_it(dataset) -> None:
    labels = episode_labels(SPEC)
    assert len(dataset) == SPEC.num_episodes * SPEC.episode_length
    width = SPEC.image_width
    for index in range(len(dataset)):
        frame = dataset[index]
        episode = int(frame["episode_index"])
        mode, visible = labels[episode]
        assert float(frame[MODE_KEY].reshape(-1)[0]) == mode
        assert bool(frame[VISIBLE_KEY].reshape(-1)[0]) == visible
        action = frame["action"].numpy()
        assert np.sign(action[MODE_DIM]) == mode and abs(action[MODE_DIM]) > 0.5
        img = (frame["observation.images.front"].permute(1, 2, 0).numpy() * 255).round()
        green = np.all(np.abs(img - GREEN) < 2, axis=-1)
        if not visible:
            assert not green.any()
        else:
            cols = np.flatnonzero(green.any(axis=0))
            right_side = (cols > width / 2).all() if mode > 0 else (cols < width / 2).all()
            assert cols.size and right_side


def test_state_does_not_reveal_the_mode(dataset) -> None:
    """Two episodes of opposite sign that start at the same place have the same states."""
    from snapflow_training.multimodal_dataset import rollout_episode

    a = rollout_episode(SPEC, 1.0, False, np.random.default_rng(7))
    b = rollout_episode(SPEC, -1.0, False, np.random.default_rng(7))
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_array_equal(fa["observation.state"], fb["observation.state"])
        np.testing.assert_array_equal(
            fa["observation.images.front"], fb["observation.images.front"]
        )
        assert np.sign(fa["action"][MODE_DIM]) == -np.sign(fb["action"][MODE_DIM])
