"""The check a camera's messages get on arrival (``image_checker``): structure, pixel limit
and, with ``cameras.resize: false``, the policy's exact size, read from the raw image's
fields or the JPEG / PNG header, nothing decoded."""

from __future__ import annotations

import numpy as np
import pytest

from snapflow_ros.ros_conversions import ImageConversionError, rgb_to_compressed, rgb_to_image
from snapflow_ros.ros_conversions.input_converters import image_checker, image_converter

REFUSAL = "image is 40x30, the policy expects 64x48 (set cameras.resize: true to resize)"


def frame(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)


def message(compressed: str, height: int, width: int):
    img = frame(height, width)
    return rgb_to_compressed(img, compressed) if compressed else rgb_to_image(img)


@pytest.mark.parametrize("compressed", ["", "jpeg", "png"])
def test_another_size_is_refused_on_arrival_with_the_conversions_message(compressed):
    check = image_checker(bool(compressed), 48, 64, resize=False)
    check(message(compressed, 48, 64))
    wrong = message(compressed, 30, 40)
    with pytest.raises(ValueError) as err:
        check(wrong)
    assert str(err.value) == REFUSAL
    convert = image_converter(bool(compressed), 48, 64, resize=False)  # the backstop
    with pytest.raises(ValueError, match="image is 40x30, the policy expects 64x48"):
        convert(wrong)


@pytest.mark.parametrize("compressed", ["", "jpeg"])
def test_with_resizing_any_size_passes_the_check(compressed):
    image_checker(bool(compressed), 48, 64, resize=True)(message(compressed, 30, 40))


def test_the_structure_and_the_pixel_limit_are_checked_first():
    bad = rgb_to_image(frame(30, 40))
    bad.encoding = "yuv422"
    with pytest.raises(ImageConversionError, match="unsupported encoding"):
        image_checker(False, 48, 64, resize=False)(bad)
    big = message("", 96, 128)
    with pytest.raises(ImageConversionError, match="cameras.max_pixels"):
        image_checker(False, 48, 64, resize=False, max_pixels=10_000)(big)
    with pytest.raises(ImageConversionError, match="cameras.max_pixels"):
        image_checker(True, 48, 64, resize=False, max_pixels=10_000)(message("jpeg", 96, 128))
