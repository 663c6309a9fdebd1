"""Write episode videos as mp4: H.264 through PyAV when available, else OpenCV's mp4v."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _even(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Frames padded to even height/width (yuv420p needs them)."""
    h, w = frames[0].shape[:2]
    ph, pw = h % 2, w % 2
    if not (ph or pw):
        return list(frames)
    return [np.pad(f, ((0, ph), (0, pw), (0, 0)), mode="edge") for f in frames]


def _write_av(path: Path, frames: list[np.ndarray], fps: int) -> None:
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_cv2(path: Path, frames: list[np.ndarray], fps: int) -> None:
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    finally:
        writer.release()


def write_mp4(path: str | Path, frames: Sequence[np.ndarray], fps: int = 20) -> Path:
    """Write HxWx3 uint8 RGB ``frames`` (all the same size) to ``path``; returns the path."""
    if not frames:
        raise ValueError("no frames to write")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames) or len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"frames must all be HxWx3 of one size, first is {shape}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    even = _even([np.asarray(f, np.uint8) for f in frames])
    try:
        _write_av(out, even, fps)
    except Exception:  # no PyAV / no libx264: OpenCV's MPEG-4 part 2 encoder
        _write_cv2(out, even, fps)
    return out


def upscale_for_viewing(image: np.ndarray, min_height: int = 256) -> np.ndarray:
    """``image`` enlarged by a whole factor (nearest pixel) to at least ``min_height`` rows:
    64 px renders are thumbnails in a video player. Larger images are returned unchanged."""
    factor = -(-min_height // image.shape[0])
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def side_by_side(images: Sequence[np.ndarray]) -> np.ndarray:
    """Images of one height next to each other (e.g. agentview | wrist)."""
    height = images[0].shape[0]
    if any(img.shape[0] != height for img in images):
        raise ValueError("side_by_side needs images of one height")
    return np.concatenate(list(images), axis=1)
