"""``sensor_msgs/Image`` and ``CompressedImage`` <-> numpy, without cv_bridge.

ROS 2's ``cv_bridge`` is not installable from PyPI (the PyPI ``cv-bridge`` is a ROS 1 port
that breaks with numpy 2), so the conversions are written here with numpy (raw images) and
OpenCV (``cv2.imdecode`` / ``imencode`` for JPEG/PNG). Everything returns HxWx3 uint8 RGB,
the layout the policy runtime expects.

Raw encodings: ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8`` (8 bits per channel; the
row ``step`` may include padding). Anything else raises :class:`ImageConversionError`.
"""

from __future__ import annotations

import array
from typing import Any

import cv2
import numpy as np

CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
SUPPORTED_ENCODINGS = tuple(CHANNELS)
COMPRESSED_FORMATS = ("jpeg", "jpg", "png")


class ImageConversionError(ValueError):
    """An image message that cannot be turned into an RGB array (says why)."""


def _bytes(data: Any) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)


def image_to_rgb(msg: Any) -> np.ndarray:
    """A ``sensor_msgs/Image`` as a new HxWx3 uint8 RGB array."""
    encoding = str(msg.encoding).lower()
    if encoding not in CHANNELS:
        raise ImageConversionError(
            f"unsupported encoding {msg.encoding!r} (supported: {', '.join(SUPPORTED_ENCODINGS)})"
        )
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    channels = CHANNELS[encoding]
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"empty image ({width}x{height})")
    if step < width * channels:
        raise ImageConversionError(
            f"step {step} is smaller than width*channels = {width * channels} for {encoding}"
        )
    buf = _bytes(msg.data)
    if buf.size != step * height:
        raise ImageConversionError(
            f"data has {buf.size} bytes, expected step*height = {step}*{height} = {step * height}"
        )
    rows = buf.reshape(height, step)[:, : width * channels]
    img = rows.reshape(height, width, channels)
    if encoding == "rgb8":
        return img.copy()
    if encoding == "bgr8":
        return img[:, :, ::-1].copy()
    if encoding == "rgba8":
        return img[:, :, :3].copy()
    if encoding == "bgra8":
        return img[:, :, 2::-1].copy()
    return np.repeat(img, 3, axis=2)  # mono8


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` (JPEG or PNG) as an HxWx3 uint8 RGB array."""
    fmt = str(msg.format).lower()
    if fmt and not any(f in fmt for f in COMPRESSED_FORMATS):
        raise ImageConversionError(f"unsupported compressed format {msg.format!r} (jpeg or png)")
    buf = _bytes(msg.data)
    if buf.size == 0:
        raise ImageConversionError("compressed image has no data")
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageConversionError(f"could not decode {buf.size} bytes as {fmt or 'an image'}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def resize_rgb(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to ``height`` x ``width`` (area interpolation when shrinking), no-op if equal."""
    if img.shape[0] == height and img.shape[1] == width:
        return img
    interp = cv2.INTER_AREA if img.shape[0] * img.shape[1] > height * width else cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=interp)


def rgb_to_image_fields(img: np.ndarray, encoding: str = "rgb8") -> dict[str, Any]:
    """Fields (height, width, encoding, step, data) of an Image message holding ``img`` (RGB)."""
    arr = np.asarray(img)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageConversionError(f"expected HxWx3 uint8 RGB, got {arr.dtype} {arr.shape}")
    encoding = encoding.lower()
    if encoding == "rgb8":
        out = arr
    elif encoding == "bgr8":
        out = arr[:, :, ::-1]
    elif encoding == "rgba8":
        out = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 255, np.uint8)], axis=2)
    elif encoding == "bgra8":
        out = np.concatenate(
            [arr[:, :, ::-1], np.full(arr.shape[:2] + (1,), 255, np.uint8)], axis=2
        )
    elif encoding == "mono8":
        out = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2GRAY)[:, :, None]
    else:
        raise ImageConversionError(f"unsupported encoding {encoding!r}")
    out = np.ascontiguousarray(out)
    return {
        "height": int(out.shape[0]),
        "width": int(out.shape[1]),
        "encoding": encoding,
        "is_bigendian": 0,
        "step": int(out.shape[1] * out.shape[2]),
        "data": array.array("B", out.tobytes()),
    }


def rgb_to_image(img: np.ndarray, encoding: str = "rgb8", header: Any = None):
    """A ``sensor_msgs/Image`` holding ``img`` (HxWx3 RGB) in ``encoding``."""
    from sensor_msgs.msg import Image

    msg = Image(**rgb_to_image_fields(img, encoding))
    if header is not None:
        msg.header = header
    return msg


def rgb_to_compressed(img: np.ndarray, fmt: str = "jpeg", header: Any = None, quality: int = 90):
    """A ``sensor_msgs/CompressedImage`` (``jpeg`` or ``png``) holding ``img`` (RGB)."""
    from sensor_msgs.msg import CompressedImage

    fmt = fmt.lower()
    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(fmt)
    if ext is None:
        raise ImageConversionError(f"unsupported compressed format {fmt!r} (jpeg or png)")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" else []
    ok, enc = cv2.imencode(ext, cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageConversionError(f"could not encode the image as {fmt}")
    msg = CompressedImage(
        format="jpeg" if ext == ".jpg" else "png", data=array.array("B", enc.tobytes())
    )
    if header is not None:
        msg.header = header
    return msg
