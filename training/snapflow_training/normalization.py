"""Normalisation statistics of the checkpoint vs. the dataset: compare, warn, replace, save.

``distill`` normalises with the checkpoint's statistics by default (the teacher was trained
with them). When the dataset's differ widely the user is told, with numbers; with
``--normalization-stats dataset`` the dataset's replace them in the pre- and post-processor
(as ``lerobot-train`` does when it fine-tunes a pretrained policy on a new dataset), and the
exported student carries them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

STATS_SOURCES = ("checkpoint", "dataset")
COMPARED_KEYS = ("observation.state", "action")
# A dimension "differs widely" when its mean moves by more than half a (checkpoint) standard
# deviation or its standard deviation changes by more than a factor of 2.
MEAN_SHIFT_LIMIT = 0.5
STD_RATIO_LIMIT = 2.0
PROCESSOR_FILES = ("policy_preprocessor.json", "policy_postprocessor.json")


def normalizer_steps(pipeline: Any) -> list[tuple[int, Any]]:
    """(index, step) of every step of a LeRobot processor pipeline that holds statistics."""
    return [
        (i, step)
        for i, step in enumerate(getattr(pipeline, "steps", []))
        if hasattr(step, "stats") and hasattr(step, "load_state_dict")
    ]


def checkpoint_stats(preprocessor: Any) -> dict[str, dict[str, np.ndarray]]:
    """The statistics the checkpoint's preprocessor normalises with."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for _, step in normalizer_steps(preprocessor):
        for key, stats in (step.stats or {}).items():
            out[key] = {name: np.asarray(value, np.float64) for name, value in stats.items()}
    return out


def compare_stats(
    ours: dict[str, dict[str, np.ndarray]],
    theirs: dict[str, dict[str, Any]],
    keys: tuple[str, ...] = COMPARED_KEYS,
) -> list[str]:
    """One line per feature whose dataset statistics differ widely from the checkpoint's."""
    lines = []
    for key in keys:
        if key not in ours or key not in theirs:
            continue
        a, b = ours[key], theirs[key]
        if not all(name in a and name in b for name in ("mean", "std")):
            continue
        mean_a, std_a = a["mean"].ravel(), np.maximum(a["std"].ravel(), 1e-8)
        mean_b = np.asarray(b["mean"], np.float64).ravel()
        std_b = np.maximum(np.asarray(b["std"], np.float64).ravel(), 1e-8)
        if mean_a.shape != mean_b.shape:
            lines.append(f"{key}: {mean_a.size} dims in the checkpoint, {mean_b.size} in the data")
            continue
        shift = np.abs(mean_b - mean_a) / std_a
        ratio = np.maximum(std_b / std_a, std_a / std_b)
        bad = np.flatnonzero((shift > MEAN_SHIFT_LIMIT) | (ratio > STD_RATIO_LIMIT))
        if bad.size:
            dims = ", ".join(
                f"dim {d}: mean {mean_a[d]:.3g} -> {mean_b[d]:.3g}, std {std_a[d]:.3g} -> "
                f"{std_b[d]:.3g}"
                for d in bad[:4]
            )
            more = f" (+{bad.size - 4} more)" if bad.size > 4 else ""
            lines.append(f"{key} ({bad.size} of {mean_a.size} dims) {dims}{more}")
    return lines


def use_dataset_stats(
    pipelines: list[Any], dataset_stats: dict[str, dict[str, Any]], rename: dict[str, str]
) -> list[str]:
    """Replace the statistics of every normaliser in ``pipelines`` by the dataset's.

    Dataset keys are renamed with ``rename`` (dataset key -> policy key). Returns the
    features whose statistics were replaced.
    """
    renamed = {rename.get(key, key): value for key, value in dataset_stats.items()}
    replaced: set[str] = set()
    for pipeline in pipelines:
        for _, step in normalizer_steps(pipeline):
            flat = {}
            for key in step.features:
                source = renamed.get(key) or (step.stats or {}).get(key)
                if key in renamed:
                    replaced.add(key)
                for name, value in (source or {}).items():
                    flat[f"{key}.{name}"] = _tensor(value)
            step.load_state_dict(flat)
    return sorted(replaced)


def _tensor(value: Any):
    import torch

    return torch.as_tensor(np.asarray(value, np.float32))


def write_processor_states(out_dir: Path, preprocessor: Any, postprocessor: Any) -> None:
    """Overwrite the normaliser state files of an exported checkpoint with the pipelines'."""
    from safetensors.torch import save_file

    for filename, pipeline in zip(PROCESSOR_FILES, (preprocessor, postprocessor), strict=True):
        path = Path(out_dir) / filename
        if not path.is_file():
            continue
        steps = json.loads(path.read_text()).get("steps", [])
        for index, step in normalizer_steps(pipeline):
            state_file = steps[index].get("state_file") if index < len(steps) else None
            if state_file:
                save_file(step.state_dict(), str(Path(out_dir) / state_file))
