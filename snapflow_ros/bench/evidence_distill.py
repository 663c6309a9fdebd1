"""Distillation throughput on an in-memory batch (no dataset stack on the GPU machine).

``snapflow_training.bench_throughput`` measures real ``distill`` runs on a LeRobotDataset; the
GPU machine lacks the dataset libraries (datasets, pyarrow, pandas, PyAV: far more than the
64 MiB a measurement may carry). This measures the same optimizer step, the distillation
``Trainer``'s own :meth:`train_step` (preprocessor, SnapFlow loss, backward, clipping,
AdamW), built by the ``Trainer`` itself with its data source swapped for one synthetic raw
batch of the policy's features. Data loading is therefore excluded from the samples/s.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

TASK = "pick up the black bowl and place it on the plate"


def synthetic_raw_batch(config: Any, batch_size: int, seed: int = 0) -> dict[str, Any]:
    """A raw batch as the dataset loader yields it: images in [0, 1], state, action chunk."""
    gen = torch.Generator().manual_seed(seed)
    batch: dict[str, Any] = {}
    for key, feature in config.image_features.items():
        batch[key] = torch.rand((batch_size, *feature.shape), generator=gen)
    state_dim = config.input_features["observation.state"].shape[0]
    action_dim = config.output_features["action"].shape[0]
    batch["observation.state"] = torch.randn((batch_size, state_dim), generator=gen)
    batch["action"] = torch.randn((batch_size, config.chunk_size, action_dim), generator=gen)
    batch["action_is_pad"] = torch.zeros((batch_size, config.chunk_size), dtype=torch.bool)
    batch["task"] = [TASK] * batch_size
    return batch


@contextlib.contextmanager
def _without_dataset() -> Iterator[None]:
    """While open, the Trainer's data source is an in-memory split with no episodes to load.

    Its metadata has no statistics (nothing to compare the checkpoint's with) and no held-out
    episodes (no evaluator).
    """
    from snapflow_training import data

    def make_split(*_args: Any, **_kwargs: Any) -> data.DataSplit:
        meta = SimpleNamespace(stats={}, total_episodes=1)
        return data.DataSplit(data.DatasetSource("in-memory", None), meta, [0], [], None)

    originals = (data.make_split, data.load_episodes)
    data.make_split = make_split
    data.load_episodes = lambda *_args, **_kwargs: None
    try:
        yield
    finally:
        data.make_split, data.load_episodes = originals


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def distill_throughput(
    checkpoint: Path,
    device: str,
    dtype: str,
    batch_size: int,
    warmup: int,
    steps: int,
    work_dir: Path,
) -> dict[str, Any]:
    """Samples/s over ``steps`` optimizer steps timed after ``warmup`` untimed ones."""
    from snapflow_training.distill import Trainer
    from snapflow_training.run_support import make_accelerator, seed_everything
    from snapflow_training.settings import DistillSettings

    settings = DistillSettings(
        policy=str(checkpoint),
        dataset="in-memory",
        output=str(work_dir),
        steps=warmup + steps,
        batch_size=batch_size,
        warmup_steps=1,
        device=device,
        dtype=dtype,
        eval_episodes="0",
        num_workers=0,
    )
    accelerator = make_accelerator(device, find_unused=False)
    with _without_dataset():
        trainer = Trainer(settings, work_dir, accelerator)
    seed_everything(settings.seed)
    model = accelerator.prepare_model(trainer.module)
    model.train()
    raw = synthetic_raw_batch(trainer.teacher.config, batch_size)
    losses = []
    for _ in range(warmup):
        losses.append(float(trainer.train_step(raw, model)["loss"]))
    _sync(trainer.device)
    start = time.perf_counter()
    for _ in range(steps):
        terms = trainer.train_step(raw, model)
    _sync(trainer.device)
    elapsed = time.perf_counter() - start
    losses.append(float(terms["loss"]))
    return {
        "policy": trainer.teacher.policy_type,
        "dtype": dtype,
        "batch_size": batch_size,
        "warmup_steps": warmup,
        "timed_steps": steps,
        "step_s": elapsed / steps,
        "samples_per_s": steps * batch_size / elapsed,
        "trainable_params_m": round(sum(p.numel() for p in trainer.params) / 1e6, 1),
        "losses": losses,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """Rows as a markdown table."""
    lines = [
        "| policy | dtype | batch | timed steps | s / step | samples/s | trainable params (M) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['policy']} | {r['dtype']} | {r['batch_size']} | {r['timed_steps']} "
            f"| {r['step_s']:.3f} | {r['samples_per_s']:.1f} | {r['trainable_params_m']} |"
        )
    return "\n".join(lines)
