"""Header stamps as they are (negative ones too), the image size limit checked before any
conversion, and the decoder's warnings captured instead of printed (real messages, real
OpenCV decoder; stderr read at the file-descriptor level with pytest's ``capfd``)."""

from __future__ import annotations

import os
import threading

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image, JointState

from snapflow_ros.ros_conversions import (
    MAX_PIXELS,
    ImageConversionError,
    check_compressed,
    check_image,
    compressed_to_rgb,
    rgb_to_compressed,
    rgb_to_image,
)
from snapflow_ros.ros_conversions.images import capture_stderr
from snapflow_ros.ros_conversions.input_converters import header_stamp, image_converter


def frame(height: int = 48, width: int = 64) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def corrupt_jpeg() -> CompressedImage:
    """A complete JPEG (start, frame header, end marker) whose compressed data is cut short:
    it passes the structural check; libjpeg warns ``Corrupt JPEG data: premature end of data
    segment`` and returns a partly grey image."""
    data = bytes(rgb_to_compressed(frame(), "jpeg").data)
    sos = data.find(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    return CompressedImage(format="jpeg", data=data[: start + 50] + b"\xff\xd9")


def jfif_revision_2() -> CompressedImage:
    """A good JPEG whose JFIF header says revision 2.01: libjpeg warns, the image is fine."""
    data = bytearray(rgb_to_compressed(frame(), "jpeg").data)
    at = data.find(b"JFIF\x00")
    data[at + 5] = 2
    return CompressedImage(format="jpeg", data=bytes(data))


# --------------------------------------------------------------------------- stamps
@pytest.mark.parametrize(
    ("sec", "nanosec", "expected"),
    [
        (-1, 0, -1_000_000_000),  # 1969
        (-(2**31), 0, -(2**31) * 1_000_000_000),  # a sender's 2^31 s on the wire
        (-1, 999_999_999, -1),
        (0, 1, 1),
        (1_700_000_000, 5, 1_700_000_000_000_000_005),
        (0, 0, 0),  # zero: no stamp
    ],
)
def test_header_stamps_are_returned_as_they_are(sec, nanosec, expected):
    msg = JointState()
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    assert header_stamp(msg) == (expected, "")


def test_a_nanosec_of_1e9_or_more_is_a_malformed_stamp():
    msg = JointState()
    msg.header.stamp.sec, msg.header.stamp.nanosec = -5, 1_000_000_000
    stamp, fault = header_stamp(msg)
    assert "nanosec 1000000000 is >= 1e9" in fault


# --------------------------------------------------------------------------- size limit
def test_a_raw_image_above_the_limit_is_refused_before_its_data_is_looked_at():
    msg = Image(height=8000, width=8000, encoding="rgb8", step=24000)  # no data at all
    with pytest.raises(ImageConversionError, match="64000000 pixels, more than the 50000000"):
        check_image(msg)
    small = rgb_to_image(frame(), "rgb8")  # 3072 pixels
    check_image(small, max_pixels=3072)
    with pytest.raises(ImageConversionError, match="image 64x48 has 3072 pixels.*max_pixels"):
        check_image(small, max_pixels=3071)
    convert = image_converter(False, 24, 32, True, max_pixels=3071)
    with pytest.raises(ImageConversionError, match="cameras.max_pixels"):
        convert(small)
    assert image_converter(False, 24, 32, True, max_pixels=3072)(small).shape == (24, 32, 3)


def test_a_compressed_image_is_judged_by_its_declared_size():
    msg = rgb_to_compressed(frame(), "png")
    check_compressed(msg, max_pixels=3072)
    with pytest.raises(ImageConversionError, match="3072 pixels, more than the 3000"):
        check_compressed(msg, max_pixels=3000)
    with pytest.raises(ImageConversionError, match="3072 pixels, more than the 3000"):
        image_converter(True, 48, 64, True, max_pixels=3000)(msg)
    # never more than the decoder's own limit, whatever is asked
    with pytest.raises(ImageConversionError, match=f"above {MAX_PIXELS} pixels"):
        forged = bytearray(bytes(msg.data))
        forged[16:24] = (9000).to_bytes(4, "big") + (9000).to_bytes(4, "big")
        check_compressed(CompressedImage(format="png", data=bytes(forged)), 10**12)


# --------------------------------------------------------------------------- decoder warnings
def test_corrupt_jpeg_data_is_a_conversion_error_and_nothing_reaches_stderr(capfd):
    """libjpeg printed ``Corrupt JPEG data: ...`` to stderr once per decode (27 lines/s on the
    node, past its log throttle) and the garbage image was used."""
    msg = corrupt_jpeg()
    check_compressed(msg)  # structurally complete
    for _ in range(3):
        with pytest.raises(ImageConversionError, match="decoder: Corrupt JPEG data: premature"):
            compressed_to_rgb(msg)
    warnings = []
    convert = image_converter(True, 48, 64, True, on_warning=warnings.append)
    with pytest.raises(ImageConversionError, match="Corrupt JPEG data"):
        convert(msg)
    out, err = capfd.readouterr()
    assert err == "" and out == ""
    assert not warnings


def test_other_decoder_warnings_go_to_the_callback_not_to_stderr(capfd):
    warnings: list[str] = []
    img = compressed_to_rgb(jfif_revision_2(), on_warning=warnings.append)
    assert img.shape == (48, 64, 3)
    assert warnings == ["decoder: Warning: unknown JFIF revision number 2.01"]
    assert capfd.readouterr().err == ""
    compressed_to_rgb(jfif_revision_2())  # no callback: written to stderr, as before
    assert capfd.readouterr().err == "Warning: unknown JFIF revision number 2.01\n"


def test_what_others_write_to_stderr_during_a_decode_is_passed_on(capfd):
    data = np.frombuffer(bytes(jfif_revision_2().data), np.uint8)

    def decode_while_another_writes():
        os.write(2, b"[INFO] [policy_node]: a line of another thread\n")
        return cv2.imdecode(data, cv2.IMREAD_COLOR)

    result, decoder = capture_stderr(decode_while_another_writes)
    assert result.shape == (48, 64, 3)
    assert decoder == "Warning: unknown JFIF revision number 2.01"
    assert capfd.readouterr().err == "[INFO] [policy_node]: a line of another thread\n"


def test_concurrent_decodes_and_writers_lose_nothing(capfd):
    """Two threads decode corrupt JPEGs while a third writes to stderr: every line of the
    writer comes out, no decoder line does, every decode is refused."""
    msg = corrupt_jpeg()
    refused = []
    lines = 300

    def decode() -> None:
        for _ in range(40):
            try:
                compressed_to_rgb(msg)
            except ImageConversionError as exc:
                refused.append(str(exc))

    def write() -> None:
        for i in range(lines):
            os.write(2, f"writer line {i}\n".encode())

    threads = [threading.Thread(target=f) for f in (decode, decode, write)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    err = capfd.readouterr().err
    assert len(refused) == 80 and all("Corrupt JPEG data" in r for r in refused)
    assert sorted(err.splitlines()) == sorted(f"writer line {i}" for i in range(lines))


def test_a_capture_inside_a_capture_leaves_the_text_to_the_outer_one(capfd):
    result, outer = capture_stderr(lambda: compressed_to_rgb(jfif_revision_2()))
    assert result.shape == (48, 64, 3)
    assert outer == "Warning: unknown JFIF revision number 2.01"
    assert capfd.readouterr().err == ""
