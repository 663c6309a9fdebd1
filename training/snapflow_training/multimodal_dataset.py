"""A synthetic LeRobotDataset whose action has a hidden per-episode mode (two signs).

Made with LeRobot's dataset API; the features match the tiny checkpoints (two 48x64 cameras,
8-D state, 7-D action, a task string). Each episode draws a sign ``mode`` (+1 / -1) and
whether it is ``visible``:

* ``action[0:3]``: a proportional step of the point towards the origin (state only);
* ``action[3:6]``: ``mode * amplitude * (1, 0.6, 0.3)`` plus small noise: the MODE part;
* ``action[6]``: gripper, -1 in the first half of the episode, +1 in the second.

The state (position, episode phase, fingers) never reveals the mode. In visible episodes the
front camera shows a green bar on the side of the sign (left: -1, right: +1); in hidden ones
there is no bar, so given the observation both signs are equally likely at EVERY frame: the
action distribution is bimodal, and a sampler that averages the modes puts ``action[3]`` near
0. The per-frame ``mode`` and ``mode_visible`` are stored as extra features (ignored by the
policies, whose features start with ``observation.`` or are ``action``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snapflow_training.synthetic_dataset import (
    SyntheticSpec,
    build_once,
    dataset_features,
    write_episodes,
)

TASK = "move to the side the green bar shows"
MODE_KEY, VISIBLE_KEY = "mode", "mode_visible"
MODE_DIM = 3  # the action dimension whose sign is the mode
MODE_DIRECTION = (1.0, 0.6, 0.3)


@dataclass(frozen=True)
class MultimodalSpec:
    """Size of the dataset and of its modes (defaults: the benchmark's)."""

    num_episodes: int = 40
    episode_length: int = 24
    fps: int = 10
    image_height: int = 48
    image_width: int = 64
    amplitude: float = 0.8
    mode_noise: float = 0.05
    seed: int = 0

    def features(self) -> dict[str, dict]:
        """LeRobot feature schema: the synthetic dataset's plus the two mode labels."""
        base = SyntheticSpec(image_height=self.image_height, image_width=self.image_width)
        features = dataset_features(base)
        for key in (MODE_KEY, VISIBLE_KEY):
            features[key] = {"dtype": "float32", "shape": (1,), "names": [key]}
        return features


def episode_labels(spec: MultimodalSpec) -> list[tuple[float, bool]]:
    """(mode, visible) of every episode: visibility alternates, the sign is random."""
    rng = np.random.default_rng(spec.seed + 101)
    signs = np.where(rng.random(spec.num_episodes) < 0.5, -1.0, 1.0)
    return [(float(signs[e]), e % 2 == 0) for e in range(spec.num_episodes)]


def _front(spec: MultimodalSpec, pos: np.ndarray, mode: float, visible: bool) -> np.ndarray:
    h, w = spec.image_height, spec.image_width
    img = np.empty((h, w, 3), np.uint8)
    img[:] = np.linspace(60, 120, h, dtype=np.uint8)[:, None, None]
    if visible:
        width = max(4, w // 6)
        cols = slice(w - width, w) if mode > 0 else slice(0, width)
        img[:, cols] = (40, 220, 60)
    row = int(np.clip((0.5 - 0.4 * pos[1]) * (h - 1), 2, h - 3))
    col = int(np.clip((0.5 + 0.4 * pos[0]) * (w - 1), 2, w - 3))
    img[row - 1 : row + 2, col - 1 : col + 2] = (250, 250, 250)
    return img


def _wrist(spec: MultimodalSpec, phase: float, gripper: float) -> np.ndarray:
    h, w = spec.image_height, spec.image_width
    shade = int(255 * phase)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (shade, 80, 255 - shade)
    bar = int(np.clip((gripper + 1) / 2 * (w - 1), 0, w - 1))
    img[h - 4 :, : bar + 1] = (255, 255, 255)
    return img


def rollout_episode(
    spec: MultimodalSpec, mode: float, visible: bool, rng: np.random.Generator
) -> list[dict]:
    """One episode as a list of LeRobot frames."""
    pos = rng.uniform(-1.0, 1.0, 3).astype(np.float32)
    fingers = np.zeros(2, np.float32)
    direction = np.asarray(MODE_DIRECTION, np.float32)
    frames = []
    for k in range(spec.episode_length):
        phase = k / max(1, spec.episode_length - 1)
        action = np.zeros(7, np.float32)
        action[0:3] = np.clip(-1.5 * pos, -1.0, 1.0)
        action[3:6] = mode * spec.amplitude * direction + spec.mode_noise * rng.standard_normal(3)
        action[6] = 1.0 if phase >= 0.5 else -1.0
        state = np.concatenate([pos, [phase, np.cos(np.pi * phase), 0.0], fingers])
        frames.append(
            {
                "observation.images.front": _front(spec, pos, mode, visible),
                "observation.images.wrist": _wrist(spec, phase, float(action[6])),
                "observation.state": state.astype(np.float32),
                "action": action,
                MODE_KEY: np.array([mode], np.float32),
                VISIBLE_KEY: np.array([float(visible)], np.float32),
                "task": TASK,
            }
        )
        pos = (pos + 0.2 * action[0:3]).astype(np.float32)
        fingers = (fingers + 0.5 * (0.04 * action[6] - fingers)).astype(np.float32)
    return frames


def build_multimodal_dataset(
    root: str | Path, spec: MultimodalSpec | None = None, repo_id: str = "local/snapflow_modes"
) -> Path:
    """Write the dataset to ``root`` (must not exist); no network is used."""
    spec = spec or MultimodalSpec()
    rng = np.random.default_rng(spec.seed)
    return write_episodes(
        root,
        repo_id=repo_id,
        fps=spec.fps,
        features=spec.features(),
        robot_type="synthetic_modes",
        episodes=(
            rollout_episode(spec, mode, visible, rng) for mode, visible in episode_labels(spec)
        ),
    )


def ensure_multimodal_dataset(root: str | Path, spec: MultimodalSpec | None = None) -> Path:
    """Build the dataset at ``root`` unless a complete one is already there (atomic)."""
    return build_once(root, lambda staging: build_multimodal_dataset(staging, spec))


def main(argv: list[str] | None = None) -> int:
    """``python -m snapflow_training.multimodal_dataset OUT``: write the dataset."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("root", type=Path, help="output folder (must not exist)")
    parser.add_argument("--episodes", type=int, default=MultimodalSpec.num_episodes)
    parser.add_argument("--length", type=int, default=MultimodalSpec.episode_length)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.root.exists():
        parser.error(f"{args.root} already exists")
    spec = MultimodalSpec(num_episodes=args.episodes, episode_length=args.length, seed=args.seed)
    build_multimodal_dataset(args.root, spec)
    print(f"wrote {args.episodes} episodes x {args.length} frames to {args.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
