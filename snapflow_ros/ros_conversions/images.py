"""``sensor_msgs/Image`` and ``CompressedImage`` <-> numpy, without cv_bridge.

ROS 2's ``cv_bridge`` is not installable from PyPI (the PyPI ``cv-bridge`` is a ROS 1 port
that breaks with numpy 2), so the conversions are written here with numpy (raw images) and
OpenCV (``cv2.imdecode`` / ``imencode`` for JPEG/PNG). Everything returns HxWx3 uint8 RGB,
the layout the policy runtime expects.

Raw encodings: ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8`` (8 bits per channel; the
row ``step`` may include padding). Anything else raises :class:`ImageConversionError`.

:func:`check_image` / :func:`check_compressed` are the cheap structural checks (no decoding)
the conversions start with; the policy node runs them on every message as it arrives.
Compressed data must be a complete JPEG (SOI ... EOI) or PNG (signature ... IEND) whose
header declares at most :data:`MAX_PIXELS` pixels: a truncated JPEG would otherwise decode
into a partly grey image without an error, and a forged header could make the decoder
allocate gigabytes.
"""

from __future__ import annotations

import array
from typing import Any

import cv2
import numpy as np

CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
SUPPORTED_ENCODINGS = tuple(CHANNELS)
COMPRESSED_FORMATS = ("jpeg", "jpg", "png")
MAX_PIXELS = 50_000_000  # decoded size limit of compressed images (8K UHD is 33 M)
JPEG_SOI, JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (they carry the image size): C0..CF except DHT, JPG, DAC
JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class ImageConversionError(ValueError):
    """An image message that cannot be turned into an RGB array (says why)."""


def _bytes(data: Any) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)


def check_image(msg: Any) -> np.ndarray:
    """Check a ``sensor_msgs/Image``'s encoding, sizes and data length; returns its bytes."""
    encoding = str(msg.encoding).lower()
    if encoding not in CHANNELS:
        shown = str(msg.encoding)[:40]
        raise ImageConversionError(
            f"unsupported encoding {shown!r} (supported: {', '.join(SUPPORTED_ENCODINGS)})"
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
    return buf


def image_to_rgb(msg: Any) -> np.ndarray:
    """A ``sensor_msgs/Image`` as a new HxWx3 uint8 RGB array."""
    buf = check_image(msg)
    encoding = str(msg.encoding).lower()
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    channels = CHANNELS[encoding]
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


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageConversionError(f"JPEG: no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in JPEG_SOF:
            if length < 7 or pos + 9 > len(data):
                break
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return width, height
        if marker == 0xDA or length < 2:  # image data before any frame header
            break
        pos += 2 + length
    raise ImageConversionError("JPEG: no frame header (SOF) found")


def check_compressed(msg: Any) -> np.ndarray:
    """Check a ``sensor_msgs/CompressedImage`` without decoding it; returns its bytes.

    The format field must name JPEG or PNG (or be empty); the data must be a complete JPEG or
    PNG stream whose declared size is at most :data:`MAX_PIXELS` pixels.
    """
    fmt = str(msg.format).lower()
    if fmt and not any(f in fmt for f in COMPRESSED_FORMATS):
        shown = str(msg.format)[:40]
        raise ImageConversionError(f"unsupported compressed format {shown!r} (jpeg or png)")
    buf = _bytes(msg.data)
    if buf.size == 0:
        raise ImageConversionError("compressed image has no data")
    data = buf.tobytes()
    if data.startswith(JPEG_SOI):
        if not data.rstrip(b"\x00").endswith(JPEG_EOI):
            raise ImageConversionError(f"JPEG of {buf.size} bytes is truncated (no end marker)")
        width, height = _jpeg_size(data)
    elif data.startswith(PNG_SIGNATURE):
        if len(data) < 33 or data[12:16] != b"IHDR":
            raise ImageConversionError("PNG: no header chunk (IHDR)")
        if data[-12:-4] != b"\x00\x00\x00\x00IEND":
            raise ImageConversionError(f"PNG of {buf.size} bytes is truncated (no IEND chunk)")
        width = int.from_bytes(data[16:20], "big")
        height = int.from_bytes(data[20:24], "big")
    else:
        raise ImageConversionError(
            f"cannot decode {buf.size} bytes: neither JPEG nor PNG (starts {data[:4].hex()})"
        )
    if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
        raise ImageConversionError(
            f"declared size {width}x{height} is empty or above {MAX_PIXELS} pixels"
        )
    return buf


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` (JPEG or PNG) as an HxWx3 uint8 RGB array."""
    buf = check_compressed(msg)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        fmt = str(msg.format).lower()[:40]
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
