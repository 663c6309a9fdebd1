"""``sensor_msgs/Image`` and ``CompressedImage`` <-> numpy, without cv_bridge.

ROS 2's ``cv_bridge`` is not installable from PyPI (the PyPI ``cv-bridge`` is a ROS 1 port
that breaks with numpy 2), so the conversions are written here with numpy (raw images) and
OpenCV (``cv2.imdecode`` / ``imencode`` for JPEG/PNG). Everything returns HxWx3 uint8 RGB,
the layout the policy runtime expects.

Raw encodings: ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8`` (8 bits per channel; the
row ``step`` may include padding). Anything else raises :class:`ImageConversionError`.

:func:`check_image` / :func:`check_compressed` are the cheap structural checks (no decoding)
the conversions start with; the policy node runs them on every message as it arrives.
Both refuse an image of more than ``max_pixels`` pixels (default and largest
:data:`MAX_PIXELS`; the policy node's ``cameras.max_pixels``) before anything is copied or
decoded. Compressed data must be a complete JPEG (SOI ... EOI) or PNG (signature ... IEND)
whose header declares a size within that limit: a truncated JPEG would otherwise decode into
a partly grey image without an error, and a forged header could make the decoder allocate
gigabytes.

Decoder messages. libjpeg (inside OpenCV) prints its warnings, e.g. ``Corrupt JPEG data:
premature end of data segment`` for a complete JPEG whose compressed data is damaged, to the
process's stderr, once per decode, and still returns an image (partly garbage). No OpenCV
call reports them, so :func:`compressed_to_rgb` captures them (:func:`capture_stderr`): a
corrupt-data warning makes the image malformed (:class:`ImageConversionError` naming it),
any other decoder message goes to ``on_warning`` (the policy node logs it, throttled), and
nothing of the decoder's reaches stderr.
"""

from __future__ import annotations

import array
import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import cv2
import numpy as np

from snapflow_ros.params.choices import MAX_PIXELS  # largest image accepted, raw or compressed

CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
SUPPORTED_ENCODINGS = tuple(CHANNELS)
COMPRESSED_FORMATS = ("jpeg", "jpg", "png")
JPEG_SOI, JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (they carry the image size): C0..CF except DHT, JPG, DAC
JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Lines the image decoders write to stderr: libjpeg's warnings (jerror.h, JWRN_*), libpng's,
# OpenCV's own log lines. The first group means the image data is damaged.
CORRUPT_DATA = re.compile(
    r"(Corrupt JPEG data|Premature end of JPEG file|Invalid SOS parameters|"
    r"Inconsistent progression sequence)"
)
DECODER_MESSAGE = re.compile(
    r"(Corrupt JPEG data|Premature end of JPEG file|Invalid SOS parameters|"
    r"Inconsistent progression sequence|Warning: |Unknown Adobe color transform|"
    r"Application transferred too|libpng (warning|error)|\[ ?(WARN|ERROR|INFO|DEBUG):\d+@)"
)
T = TypeVar("T")


class ImageConversionError(ValueError):
    """An image message that cannot be turned into an RGB array (says why)."""


def _bytes(data: Any) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)


def _too_large(width: int, height: int, max_pixels: int) -> ImageConversionError:
    return ImageConversionError(
        f"image {width}x{height} has {width * height} pixels, more than the "
        f"{max_pixels} accepted (cameras.max_pixels)"
    )


def check_image(msg: Any, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Check a ``sensor_msgs/Image``'s encoding, sizes (at most ``max_pixels`` pixels), step
    and data length; returns its bytes (not copied)."""
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
    if width * height > max_pixels:
        raise _too_large(width, height, max_pixels)
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


def image_to_rgb(msg: Any, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A ``sensor_msgs/Image`` as a new HxWx3 uint8 RGB array (at most ``max_pixels``)."""
    buf = check_image(msg, max_pixels)
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


def check_compressed(msg: Any, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Check a ``sensor_msgs/CompressedImage`` without decoding it; returns its bytes.

    The format field must name JPEG or PNG (or be empty); the data must be a complete JPEG or
    PNG stream whose declared size is at most ``max_pixels`` (never more than
    :data:`MAX_PIXELS`) pixels.
    """
    return _check_compressed(msg, max_pixels)[0]


def compressed_size(msg: Any, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """The ``(width, height)`` a ``sensor_msgs/CompressedImage`` declares in its header,
    after the checks of :func:`check_compressed` (nothing is decoded)."""
    return _check_compressed(msg, max_pixels)[1]


def _check_compressed(msg: Any, max_pixels: int) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`check_compressed`'s work: the bytes and the declared ``(width, height)``."""
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
    limit = min(max_pixels, MAX_PIXELS)
    if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
        raise ImageConversionError(
            f"declared size {width}x{height} is empty or above {MAX_PIXELS} pixels"
        )
    if width * height > limit:
        raise _too_large(width, height, limit)
    return buf, (width, height)


_capture_lock = threading.Lock()
_capture_fd: int | None = None  # an unlinked temporary file, kept for the process's life
_capturing = threading.local()  # .active: this thread is inside capture_stderr


def capture_stderr(call: Callable[[], T]) -> tuple[T, str]:
    """``call()`` with what the process writes to stderr meanwhile captured: ``(result,
    decoder_text)``, the decoder's lines (:data:`DECODER_MESSAGE`) as text; every other
    line is written to stderr right after the call.

    For decoders (libjpeg inside OpenCV) that print to the C stderr and have no call that
    reports instead. The capture has to move the process's file descriptor 2 for the time of
    the call (a few ms for a camera image), and that is shared by every thread, so:

    * calls are serialised by a lock, and the descriptor always comes back (``finally``);
    * what another thread writes to stderr meanwhile (an rclpy log line, a Python warning)
      is not lost nor taken for the decoder's: only lines that match the decoder's message
      formats are kept, the rest goes to the real stderr once the call returns (delayed by
      the call's duration at most);
    * the capture is a regular file, not a pipe: a writer never blocks on a full buffer;
    * where the descriptor cannot be moved (fd 2 closed) the call runs without capture, and
      a capture inside a capture (same thread) leaves the text to the outer one.

    Left: a process that dies inside the call loses what was written during it.
    """
    if getattr(_capturing, "active", False):
        return call(), ""  # nested: the outer capture gets the text
    with _capture_lock:
        _capturing.active = True
        try:
            return _captured(call)
        finally:
            _capturing.active = False


def _captured(call: Callable[[], T]) -> tuple[T, str]:
    """:func:`capture_stderr`'s work, under its lock."""
    global _capture_fd
    try:
        if _capture_fd is None:
            fd, path = tempfile.mkstemp(prefix="snapflow_decoder_")
            os.unlink(path)
            _capture_fd = fd
        fd = _capture_fd
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        saved = os.dup(2)
    except OSError:
        return call(), ""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        sys.stderr.flush()  # Python's buffered text goes out before the switch
    try:
        os.dup2(fd, 2)
        try:
            result = call()
        finally:
            os.dup2(saved, 2)
    finally:
        os.close(saved)
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while block := os.read(fd, 65536):
        chunks.append(block)
    text = b"".join(chunks).decode("utf-8", "replace")
    ours, others = [], []
    for line in text.splitlines(keepends=True):
        (ours if DECODER_MESSAGE.match(line) else others).append(line)
    _write_stderr("".join(others))
    return result, "".join(ours).strip()


def _write_stderr(text: str) -> None:
    data = text.encode()
    while data:
        try:
            data = data[os.write(2, data) :]
        except OSError:
            return


def compressed_to_rgb(
    msg: Any,
    max_pixels: int = MAX_PIXELS,
    on_warning: Callable[[str], None] | None = None,
) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` (JPEG or PNG) as an HxWx3 uint8 RGB array.

    The decoder's messages never reach stderr: a corrupt-data warning (:data:`CORRUPT_DATA`)
    raises :class:`ImageConversionError` with the decoder's words, any other message is
    handed to ``on_warning`` (None: written to stderr as the decoder would have).
    """
    buf = check_compressed(msg, max_pixels)
    bgr, messages = capture_stderr(lambda: cv2.imdecode(buf, cv2.IMREAD_COLOR))
    lines = messages.splitlines()
    corrupt = [line for line in lines if CORRUPT_DATA.match(line)]
    if corrupt:
        raise ImageConversionError(f"decoder: {corrupt[0][:150]}")
    if lines:
        if on_warning is not None:
            on_warning(f"decoder: {'; '.join(lines)[:200]}")
        else:
            _write_stderr(messages + "\n")
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
