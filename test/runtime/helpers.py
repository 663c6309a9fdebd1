"""Helpers shared by the runtime tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from snapflow_ros.runtime.checkpoint import SnapFlowMeta, write_snapflow_files
from snapflow_ros.runtime.target_time import TargetTimeEmbedding, target_time_spec_for
from snapflow_ros.runtime.types import Observation


def make_observation(runtime, seed: int = 0, task: str = "pick up the red block") -> Observation:
    """A random but valid observation for ``runtime``'s policy."""
    rng = np.random.default_rng(seed)
    images = {}
    for key in runtime.image_keys:
        _, height, width = runtime.config.input_features[key].shape
        images[key] = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    state = rng.normal(size=runtime.state_dim).astype(np.float32)
    return Observation(images=images, state=state, task=task, stamp=123.5)


def make_snapflow_copy(
    runtime, plain_dir: Path, out_dir: Path, scale: float = 0.0, trained_jumps=(1.0,)
) -> Path:
    """Copy a plain checkpoint and add a target-time embedding (zero, or random * ``scale``)
    trained, according to its ``snapflow.json``, on ``trained_jumps`` (None: any jump)."""
    shutil.copytree(plain_dir, out_dir)
    spec = target_time_spec_for(runtime.policy, runtime.policy_type)
    embedding = TargetTimeEmbedding(spec)
    if scale:
        gen = np.random.default_rng(1)
        for param in embedding.parameters():
            param.data = param.data.new_tensor(gen.normal(size=tuple(param.shape)) * scale)
    meta = SnapFlowMeta(
        base_policy=str(plain_dir),
        policy_type=runtime.policy_type,
        target_time=spec,
        trained_jumps=None if trained_jumps is None else list(trained_jumps),
    )
    write_snapflow_files(out_dir, meta, embedding)
    return out_dir
