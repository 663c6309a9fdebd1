"""A small synthetic LeRobotDataset with a structured, learnable (and partly bimodal) action.

The features match :class:`snapflow_ros.policies.tiny.TinySpec`: two 48x64 RGB
cameras (``observation.images.front`` / ``.wrist``), an 8-D state and a 7-D action, plus a task
string. Each episode is a point reaching a goal:

* ``action[0:3]``: proportional step towards the goal, ``clip(2 * (goal - pos), -1, 1)``;
  the goal is only visible in the front camera (a bright square), so the images matter;
* ``action[3:6]``: a smooth rotation rate ``mode * 0.5 * (cos w k, sin w k, 0.5)`` whose sign
  ``mode`` (+1 / -1) is drawn per episode: at the first frame both signs are equally likely
  given the observation (a BIMODAL target), later the integrated angle reveals it;
* ``action[6]``: gripper command, -1 (open) far from the goal, +1 (close) near it.

The state is eef position (3) + integrated angles (3) + two gripper fingers (2), the layout of
LeRobot's LIBERO state. Generation is deterministic given the seed.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TASKS = ("reach the red target", "reach the blue target")
COLORS = {TASKS[0]: (230, 40, 40), TASKS[1]: (40, 60, 230)}


@dataclass(frozen=True)
class SyntheticSpec:
    """Size of the synthetic dataset (defaults match the tiny checkpoints' features)."""

    num_episodes: int = 8
    episode_length: int = 30
    fps: int = 10
    image_height: int = 48
    image_width: int = 64
    camera_names: tuple[str, ...] = ("front", "wrist")
    state_dim: int = 8
    action_dim: int = 7
    use_videos: bool = False
    seed: int = 0


def dataset_features(spec: SyntheticSpec) -> dict[str, dict]:
    """LeRobot feature schema for ``spec``."""
    shape = (spec.image_height, spec.image_width, 3)
    kind = "video" if spec.use_videos else "image"
    features: dict[str, dict] = {
        f"observation.images.{cam}": {
            "dtype": kind,
            "shape": shape,
            "names": ["height", "width", "channels"],
        }
        for cam in spec.camera_names
    }
    features["observation.state"] = {
        "dtype": "float32",
        "shape": (spec.state_dim,),
        "names": [f"s{i}" for i in range(spec.state_dim)],
    }
    features["action"] = {
        "dtype": "float32",
        "shape": (spec.action_dim,),
        "names": [f"a{i}" for i in range(spec.action_dim)],
    }
    return features


def _render_front(spec: SyntheticSpec, goal: np.ndarray, pos: np.ndarray, task: str) -> np.ndarray:
    h, w = spec.image_height, spec.image_width
    img = np.empty((h, w, 3), np.uint8)
    img[:] = np.linspace(60, 120, w, dtype=np.uint8)[None, :, None]

    def pixel(p: np.ndarray) -> tuple[int, int]:
        row = int(np.clip((0.5 - 0.4 * p[1]) * (h - 1), 2, h - 3))
        col = int(np.clip((0.5 + 0.4 * p[0]) * (w - 1), 2, w - 3))
        return row, col

    r, c = pixel(goal)
    img[r - 2 : r + 3, c - 2 : c + 3] = COLORS[task]
    r, c = pixel(pos)
    img[r - 1 : r + 2, c - 1 : c + 2] = (250, 250, 250)
    return img


def _render_wrist(
    spec: SyntheticSpec, goal: np.ndarray, pos: np.ndarray, gripper: float
) -> np.ndarray:
    h, w = spec.image_height, spec.image_width
    dist = float(np.linalg.norm(goal - pos))
    shade = int(np.clip(255 * (1.0 - dist), 0, 255))
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (shade, shade // 2, 255 - shade)
    bar = int(np.clip((gripper + 1) / 2 * (w - 1), 0, w - 1))
    img[h - 4 :, : bar + 1] = (255, 255, 255)
    return img


def _fit(values: np.ndarray, dim: int) -> np.ndarray:
    """``values`` cut or zero-padded to ``dim`` entries (float32)."""
    out = np.zeros(dim, np.float32)
    out[: min(dim, len(values))] = values[:dim]
    return out


def rollout_episode(spec: SyntheticSpec, rng: np.random.Generator) -> list[dict]:
    """One episode as a list of frames (feature dict + ``task``), actions included."""
    task = TASKS[int(rng.integers(len(TASKS)))]
    goal = rng.uniform(-1.0, 1.0, 3).astype(np.float32)
    pos = rng.uniform(-1.0, 1.0, 3).astype(np.float32)
    angle = np.zeros(3, np.float32)
    fingers = np.zeros(2, np.float32)
    mode = 1.0 if rng.random() < 0.5 else -1.0
    omega = 2 * np.pi / spec.episode_length
    frames = []
    for k in range(spec.episode_length):
        full = np.zeros(7, np.float32)
        full[0:3] = np.clip(2.0 * (goal - pos), -1.0, 1.0)
        full[3:6] = mode * 0.5 * np.array([np.cos(omega * k), np.sin(omega * k), 0.5])
        full[6] = 1.0 if float(np.linalg.norm(goal - pos)) < 0.25 else -1.0
        frame = {
            "observation.state": _fit(np.concatenate([pos, angle, fingers]), spec.state_dim),
            "action": _fit(full, spec.action_dim),
            "task": task,
        }
        images = {
            "front": _render_front(spec, goal, pos, task),
            "wrist": _render_wrist(spec, goal, pos, float(full[6])),
        }
        for i, cam in enumerate(spec.camera_names):
            fallback = "front" if i == 0 else "wrist"
            frame[f"observation.images.{cam}"] = images.get(cam, images[fallback])
        frames.append(frame)
        pos = (pos + 0.15 * full[0:3]).astype(np.float32)
        angle = (angle + 0.1 * full[3:6]).astype(np.float32)
        fingers = (fingers + 0.5 * (0.04 * full[6] - fingers)).astype(np.float32)
    return frames


def write_episodes(
    root: str | Path,
    *,
    repo_id: str,
    fps: int,
    features: dict[str, dict],
    robot_type: str,
    episodes: Iterable[list[dict]],
    use_videos: bool = False,
) -> Path:
    """Write ``episodes`` (lists of frames) as a LeRobotDataset at ``root`` (must not exist)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = Path(root)
    if root.exists():
        raise FileExistsError(f"{root} already exists")
    dataset = LeRobotDataset.create(
        repo_id=repo_id,
        fps=fps,
        features=features,
        root=root,
        robot_type=robot_type,
        use_videos=use_videos,
    )
    try:
        for frames in episodes:
            for frame in frames:
                dataset.add_frame(frame)
            dataset.save_episode()
    finally:
        dataset.finalize()
    return root


def build_synthetic_dataset(
    root: str | Path, spec: SyntheticSpec | None = None, repo_id: str = "local/snapflow_synthetic"
) -> Path:
    """Write the dataset to ``root`` (must not exist) and return it; no network is used."""
    spec = spec or SyntheticSpec()
    rng = np.random.default_rng(spec.seed)
    return write_episodes(
        root,
        repo_id=repo_id,
        fps=spec.fps,
        features=dataset_features(spec),
        robot_type="synthetic_reacher",
        episodes=(rollout_episode(spec, rng) for _ in range(spec.num_episodes)),
        use_videos=spec.use_videos,
    )


def build_once(root: str | Path, build: Callable[[Path], object]) -> Path:
    """Run ``build(staging)`` and rename the result to ``root``, unless a complete dataset is
    already there (a half-built one is never left at ``root``)."""
    root = Path(root)
    if (root / "meta" / "info.json").is_file():
        return root
    staging = root.with_name(f".{root.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    build(staging)
    staging.rename(root)
    return root


def ensure_synthetic_dataset(root: str | Path, spec: SyntheticSpec | None = None) -> Path:
    """Build the dataset at ``root`` unless a complete one is already there (atomic)."""
    return build_once(root, lambda staging: build_synthetic_dataset(staging, spec))


def main(argv: list[str] | None = None) -> int:
    """``python -m snapflow_training.synthetic_dataset OUT``: write the synthetic dataset."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="output folder (must not exist)")
    parser.add_argument("--episodes", type=int, default=SyntheticSpec.num_episodes)
    parser.add_argument("--length", type=int, default=SyntheticSpec.episode_length)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--videos", action="store_true", help="store cameras as MP4 videos")
    args = parser.parse_args(argv)
    if args.root.exists():
        parser.error(f"{args.root} already exists")
    spec = SyntheticSpec(
        num_episodes=args.episodes,
        episode_length=args.length,
        seed=args.seed,
        use_videos=args.videos,
    )
    build_synthetic_dataset(args.root, spec)
    print(f"wrote {args.episodes} episodes x {args.length} frames to {args.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
