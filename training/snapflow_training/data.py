"""LeRobotDataset access for the distillation: open, check against the policy, split, iterate.

Batches are raw dataset batches (images float in [0, 1], state, an action chunk of the policy's
``chunk_size`` built with ``delta_timestamps``, ``action_is_pad``, the task string); the caller
runs the checkpoint's own preprocessor on them (normalisation, tokenisation), as LeRobot's
training script does. Training order comes from LeRobot's ``EpisodeAwareSampler``, a pure
function of (seed, epoch), so a run can be resumed sample-exactly from its step count.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from snapflow_ros.policies import is_hub_id
from snapflow_training.errors import DistillError

LOG = logging.getLogger(__name__)

STATE_KEY = "observation.state"
ACTION_KEY = "action"


@dataclass
class DatasetSource:
    """Where a dataset lives: a local root (``repo_id`` is then a placeholder) or a Hub id."""

    repo_id: str
    root: Path | None


def resolve_dataset(name_or_path: str) -> DatasetSource:
    """A local LeRobot dataset folder, or a Hugging Face Hub repo id (``owner/name``)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "meta" / "info.json").is_file():
            raise DistillError(f"dataset {path} is not a LeRobot dataset (no meta/info.json)")
        return DatasetSource(repo_id=f"local/{path.resolve().name}", root=path.resolve())
    text = str(name_or_path)
    if not is_hub_id(text):  # the policy registry's rule, for datasets too
        raise DistillError(f"dataset folder {path} does not exist")
    return DatasetSource(repo_id=text, root=None)


def load_metadata(source: DatasetSource):
    """The dataset's ``LeRobotDatasetMetadata`` (downloads only the metadata of a Hub dataset)."""
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    try:
        return LeRobotDatasetMetadata(source.repo_id, root=source.root)
    except Exception as exc:  # missing files, old format, no network: all end here
        where = source.root if source.root is not None else f"Hub dataset {source.repo_id!r}"
        hint = "" if source.root is not None else " (pass a local folder when offline)"
        raise DistillError(
            f"could not read the LeRobot dataset {where}: {type(exc).__name__}: {exc}{hint}"
        ) from exc


def parse_rename_map(text: str | dict[str, str] | None) -> dict[str, str]:
    """``--rename-map`` (JSON object: dataset key -> policy key, as LeRobot's ``rename_map``)."""
    if text is None or text == "":
        return {}
    try:
        mapping = json.loads(text) if isinstance(text, str) else dict(text)
    except json.JSONDecodeError as exc:
        raise DistillError(f"--rename-map must be a JSON object, got {text!r}: {exc}") from exc
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise DistillError(f"--rename-map must map strings to strings, got {text!r}")
    return mapping


def set_rename_map(preprocessor, rename: dict[str, str]) -> None:
    """Give the checkpoint's own rename step (LeRobot's) the dataset -> policy key map."""
    if not rename:
        return
    steps = [s for s in getattr(preprocessor, "steps", []) if hasattr(s, "rename_map")]
    if not steps:
        raise DistillError("the checkpoint's preprocessor has no rename step for --rename-map")
    steps[0].rename_map = dict(rename)


def check_features(meta, policy_config, rename: dict[str, str] | None = None) -> None:
    """Refuse a dataset whose cameras / state / action do not fit the policy.

    ``rename`` maps dataset keys to the policy's (``--rename-map``).
    """
    rename = rename or {}
    features = {rename.get(key, key): value for key, value in meta.features.items()}
    cameras = [rename.get(key, key) for key in meta.camera_keys]
    wanted = list(policy_config.image_features)
    missing = [key for key in wanted if key not in cameras]
    if missing:
        hint = "" if rename else "; --rename-map maps dataset keys to the policy's"
        raise DistillError(
            f"dataset cameras {cameras} do not include the policy's {missing} "
            f"(the policy expects {wanted}{hint})"
        )
    specs = (
        (STATE_KEY, policy_config.input_features.get(STATE_KEY)),
        (ACTION_KEY, policy_config.output_features.get(ACTION_KEY)),
    )
    for key, spec in specs:
        if spec is None:
            continue
        if key not in features:
            raise DistillError(f"dataset has no {key!r} feature; the policy needs {spec.shape}")
        have = tuple(features[key]["shape"])
        if have != tuple(spec.shape):
            raise DistillError(
                f"dataset {key!r} has shape {have} but the policy expects {tuple(spec.shape)}"
            )


def parse_eval_episodes(spec: str, num_episodes: int) -> list[int]:
    """Held-out episodes from ``spec``: a count (``"2"``), a fraction (``"0.1"``) or a list.

    A count or fraction picks evenly spaced episodes (deterministic); ``"0"`` holds out none.
    At least one training episode must remain.
    """
    text = str(spec).strip()
    try:
        if "," in text or text.startswith("["):
            chosen = sorted({int(x) for x in text.strip("[]").split(",") if x.strip()})
            bad = [e for e in chosen if not 0 <= e < num_episodes]
            if bad:
                raise DistillError(
                    f"--eval-episodes {bad} out of range (the dataset has {num_episodes} episodes)"
                )
        else:
            if "." in text:
                fraction = float(text)
                if not 0.0 <= fraction < 1.0:
                    raise DistillError(f"--eval-episodes fraction must be in [0, 1), got {text}")
                count = max(1, round(fraction * num_episodes)) if fraction > 0 else 0
            else:
                count = int(text)
            if count < 0:
                raise DistillError(f"--eval-episodes must be >= 0, got {text}")
            chosen = sorted({int((i + 0.5) * num_episodes / count) for i in range(count)})
    except ValueError as exc:
        if isinstance(exc, DistillError):
            raise
        raise DistillError(
            f"--eval-episodes must be a count, a fraction or a comma-separated list, got {text!r}"
        ) from exc
    if len(chosen) >= num_episodes:
        raise DistillError(
            f"--eval-episodes {text} leaves no training episode (the dataset has {num_episodes})"
        )
    return chosen


@dataclass
class DataSplit:
    """The dataset, its metadata and the episode split."""

    source: DatasetSource
    meta: Any
    train_episodes: list[int]
    eval_episodes: list[int]
    delta_timestamps: dict[str, list[float]] | None


def make_split(
    dataset: str, policy_config, eval_episodes: str, rename: dict[str, str] | None = None
) -> DataSplit:
    """Open the dataset's metadata, check it against the policy and split its episodes."""
    from lerobot.datasets.factory import resolve_delta_timestamps

    source = resolve_dataset(dataset)
    meta = load_metadata(source)
    check_features(meta, policy_config, rename)
    total = int(meta.total_episodes)
    if total < 1:
        raise DistillError(f"dataset {dataset} has no episodes")
    held_out = parse_eval_episodes(eval_episodes, total)
    train = [e for e in range(total) if e not in set(held_out)]
    return DataSplit(
        source=source,
        meta=meta,
        train_episodes=train,
        eval_episodes=held_out,
        delta_timestamps=resolve_delta_timestamps(policy_config, meta),
    )


def load_episodes(split: DataSplit, episodes: list[int]):
    """A ``LeRobotDataset`` of ``episodes`` yielding action chunks of the policy's size."""
    import datasets
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    logging.getLogger("lerobot.utils.import_utils").setLevel(logging.ERROR)  # torchcodec chatter
    datasets.disable_progress_bars()
    try:
        return LeRobotDataset(
            split.source.repo_id,
            root=split.source.root,
            episodes=episodes,
            delta_timestamps=split.delta_timestamps,
        )
    except Exception as exc:
        raise DistillError(
            f"could not load episodes of {split.source.root or split.source.repo_id}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _collate(dataset):
    if getattr(dataset.meta, "has_language_columns", False):
        from lerobot.utils.collate import lerobot_collate_fn

        return lerobot_collate_fn
    return None


def make_train_loader(
    dataset, batch_size: int, seed: int, num_workers: int
) -> tuple[torch.utils.data.DataLoader, Any]:
    """A shuffled DataLoader whose order is a pure function of (seed, epoch); also its sampler."""
    from lerobot.datasets.sampler import EpisodeAwareSampler

    sampler = EpisodeAwareSampler(
        dataset.meta.episodes["dataset_from_index"],
        dataset.meta.episodes["dataset_to_index"],
        episode_indices_to_use=dataset.episodes,
        shuffle=True,
        seed=seed,
        absolute_to_relative_idx=dataset.absolute_to_relative_idx,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=False,
        collate_fn=_collate(dataset),
        # Own generator: creating iterators must not consume the global torch RNG.
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=num_workers > 0,
    )
    return loader, sampler


def position_sampler(sampler, step: int, batch_size: int, num_processes: int) -> dict[str, int]:
    """Move ``sampler`` to where a run stands after ``step`` optimizer steps (exact resume)."""
    from lerobot.datasets.sampler import compute_sampler_state

    state = compute_sampler_state(step, len(sampler), batch_size, num_processes)
    sampler.load_state_dict(state)
    return state


def cycle(loader) -> Iterator[dict[str, Any]]:
    """Endless iteration over ``loader`` (a new epoch each pass)."""
    while True:
        yield from loader


def eval_frame_indices(dataset, max_samples: int) -> list[int]:
    """Up to ``max_samples`` evenly spaced frame positions of ``dataset`` (deterministic)."""
    total = len(dataset)
    if total <= max_samples:
        return list(range(total))
    return sorted({int(i * total / max_samples) for i in range(max_samples)})


def make_eval_loader(
    dataset, indices: list[int], batch_size: int, num_workers: int
) -> torch.utils.data.DataLoader:
    """An ordered DataLoader over the chosen evaluation frames."""
    return torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, indices),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        drop_last=False,
        collate_fn=_collate(dataset),
        generator=torch.Generator().manual_seed(0),
    )
