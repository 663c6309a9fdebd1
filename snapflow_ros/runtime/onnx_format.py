"""The layout of an ONNX export folder (written by :mod:`snapflow_ros.export`, read by the
``onnxruntime`` engine), described without torch or onnxruntime.

An export folder holds:

* ``export.json``: the manifest (:data:`MANIFEST`): format version, what was exported, every
  graph's input and output names, shapes and dtypes, and the parity check's results;
* ``checkpoint/``: the source checkpoint without its weights (config, pre/post-processor files
  with the normalisation statistics, ``snapflow.json``, the ``vlm/`` or ``tokenizer/`` folder):
  what tokenisation and (un)normalisation, which stay in Python, need;
* ``prefix.onnx``: the vision + language (+ state) prefix, returning the padding mask of the
  prefix and every layer's keys and values (the KV cache);
* ``expert_step.onnx``: one action-expert pass against that cache, ``v(x_t, t, s)``;
* ``one_step.onnx`` (SnapFlow checkpoints): the whole one-step chunk in one graph, the prefix
  and one expert pass jumping from t=1 to t=0: ``actions = noise - v(noise, 1, 0)``.

Graph inputs are the preprocessed LeRobot batch (camera images as B x 3 x H x W float in
[0, 1], the normalised state for SmolVLA, token ids and attention mask of the padded prompt)
and the noise; outputs are normalised actions (the postprocessor runs in Python). Shapes are
fixed at export time (batch 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from snapflow_ros.runtime.errors import CheckpointError

MANIFEST = "export.json"
FORMAT = "snapflow-onnx"
FORMAT_VERSION = 1
CHECKPOINT_SUBDIR = "checkpoint"
PREFIX_GRAPH = "prefix"
EXPERT_GRAPH = "expert_step"
ONE_STEP_GRAPH = "one_step"
GRAPH_FILES = {
    PREFIX_GRAPH: "prefix.onnx",
    EXPERT_GRAPH: "expert_step.onnx",
    ONE_STEP_GRAPH: "one_step.onnx",
}
# Fixed graph input / output names (camera inputs are named by their feature keys).
STATE_INPUT = "observation.state"
TOKENS_INPUT = "lang_tokens"
TOKEN_MASK_INPUT = "lang_masks"
NOISE_INPUT = "noise"
PAD_MASKS = "prefix_pad_masks"
X_T_INPUT = "x_t"
T_INPUT = "t"
S_INPUT = "s"
ACTIONS_OUTPUT = "actions"
VELOCITY_OUTPUT = "velocity"


def kv_names(num_layers: int) -> list[str]:
    """Names of the KV-cache tensors the prefix graph returns: keys and values per layer."""
    return [f"{kind}_{i}" for i in range(num_layers) for kind in ("keys", "values")]


def is_export_dir(path: str | Path) -> bool:
    """True when ``path`` is a folder holding an export manifest."""
    return (Path(path) / MANIFEST).is_file()


def read_manifest(export_dir: str | Path) -> dict[str, Any]:
    """The manifest of an export folder; :class:`CheckpointError` when missing or not ours."""
    folder = Path(export_dir)
    path = folder / MANIFEST
    if not path.is_file():
        raise CheckpointError(
            f"{folder} is not an ONNX export (no {MANIFEST}); create one with "
            "`snapflow_export CHECKPOINT OUT`"
        )
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a snapflow ONNX export manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: export format version {manifest.get('format_version')} is not supported "
            f"(expected {FORMAT_VERSION}); export the checkpoint again"
        )
    if not manifest.get("parity", {}).get("passed"):
        raise CheckpointError(f"{path}: the export did not pass its parity check")
    for name in manifest.get("graphs", {}):
        if not (folder / GRAPH_FILES[name]).is_file():
            raise CheckpointError(f"{folder} lacks {GRAPH_FILES[name]} named in {MANIFEST}")
    return manifest
