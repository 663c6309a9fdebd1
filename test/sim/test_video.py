"""Video helpers: side-by-side frames and enlarging small renders for viewing."""

from __future__ import annotations

import numpy as np
import pytest

from snapflow_ros.sim.video import side_by_side, upscale_for_viewing


def test_small_renders_are_enlarged_by_a_whole_factor_and_large_ones_kept():
    image = np.arange(64 * 32 * 3, dtype=np.uint8).reshape(64, 32, 3)
    big = upscale_for_viewing(image)
    assert big.shape == (256, 128, 3)
    assert np.array_equal(big[::4, ::4], image) and np.array_equal(big[3::4, 3::4], image)
    assert upscale_for_viewing(np.zeros((100, 10, 3), np.uint8)).shape == (300, 30, 3)
    large = np.zeros((256, 256, 3), np.uint8)
    assert upscale_for_viewing(large) is large


def test_side_by_side_needs_one_height():
    a, b = np.zeros((4, 2, 3), np.uint8), np.ones((4, 3, 3), np.uint8)
    assert side_by_side([a, b]).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="one height"):
        side_by_side([a, np.zeros((5, 2, 3), np.uint8)])
