"""Validate and load LeRobot checkpoint folders (plain or SnapFlow) with verified weights.

Weights are read from safetensors only and loaded by this module (never through PI05's
``from_pretrained``, which silently returns a random model when loading fails): every
parameter of the policy must be present in the file and every tensor in the file must be used,
otherwise loading is refused.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from snapflow_ros.runtime.adapters import SUPPORTED_POLICY_TYPES
from snapflow_ros.runtime.errors import CheckpointError
from snapflow_ros.runtime.target_time import (
    TARGET_TIME_WEIGHTS,
    TargetTimeEmbedding,
    TargetTimeSpec,
    attach_target_time,
)

LOG = logging.getLogger(__name__)

MODEL_WEIGHTS = "model.safetensors"
SNAPFLOW_META = "snapflow.json"
SNAPFLOW_FORMAT = 1
# Jump lengths trusted in a snapflow.json written before they were recorded: every objective
# trains the one-step jump 1 -> 0; longer schedules then use s = t (instantaneous velocity).
DEFAULT_TRAINED_JUMPS = (1.0,)


@dataclass
class SnapFlowMeta:
    """Contents of ``snapflow.json``: what a SnapFlow checkpoint was distilled from and how.

    ``trained_jumps``: the jump lengths ``t - s`` the student was trained on (None: any length
    in (0, 1]); a sampler asks for a jump only when its step is one of them. Files without
    the field (written before it existed) get ``[1.0]``.
    """

    base_policy: str
    policy_type: str
    target_time: TargetTimeSpec
    default_num_steps: int = 1
    steps_trained: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    trained_jumps: list[float] | None = field(default_factory=lambda: list(DEFAULT_TRAINED_JUMPS))
    format_version: int = SNAPFLOW_FORMAT

    def to_json(self) -> str:
        """Serialise to JSON."""
        body = {**self.__dict__, "target_time": self.target_time.as_dict()}
        return json.dumps(body, indent=2, sort_keys=True)

    @classmethod
    def read(cls, checkpoint_dir: Path) -> SnapFlowMeta | None:
        """Read ``snapflow.json`` from a folder; None for a plain checkpoint."""
        path = checkpoint_dir / SNAPFLOW_META
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text())
            version = raw.get("format_version")
            if version != SNAPFLOW_FORMAT:
                raise CheckpointError(
                    f"{path}: SnapFlow format {version} is not supported "
                    f"(expected {SNAPFLOW_FORMAT})"
                )
            raw["target_time"] = TargetTimeSpec(**raw["target_time"])
            return cls(**raw)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path} is not a valid SnapFlow metadata file: {exc}") from exc


def read_policy_type(checkpoint_dir: Path) -> str:
    """The LeRobot policy type named in ``config.json`` (validated against what we support)."""
    config_path = checkpoint_dir / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{checkpoint_dir} has no config.json: not a LeRobot checkpoint")
    try:
        policy_type = json.loads(config_path.read_text()).get("type")
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{config_path} is not valid JSON: {exc}") from exc
    if policy_type not in SUPPORTED_POLICY_TYPES:
        raise CheckpointError(
            f"{checkpoint_dir}: policy type {policy_type!r} is not supported "
            f"(supported: {', '.join(SUPPORTED_POLICY_TYPES)})"
        )
    return policy_type


def _register_config_class(policy_type: str) -> None:
    """Import the LeRobot config class of ``policy_type`` so that draccus can parse it."""
    if policy_type == "smolvla":
        import lerobot.policies.smolvla.configuration_smolvla
    else:
        import lerobot.policies.pi05.configuration_pi05  # noqa: F401


def load_policy_config(checkpoint_dir: Path, policy_type: str, device: str, vlm_path: Path | None):
    """LeRobot config of the checkpoint, prepared for loading weights from the folder."""
    from lerobot.configs.policies import PreTrainedConfig

    _register_config_class(policy_type)
    try:
        config = PreTrainedConfig.from_pretrained(checkpoint_dir, local_files_only=True)
    except Exception as exc:
        raise CheckpointError(f"{checkpoint_dir}/config.json could not be parsed: {exc}") from exc
    config.device = device
    if policy_type == "smolvla":
        # All weights, the VLM's included, come from model.safetensors (verified below).
        config.load_vlm_weights = False
        config.use_cache = True
        if vlm_path is not None:
            config.vlm_model_name = str(vlm_path)
    if policy_type == "pi05":
        config.dtype = "float32"
    return config


def build_policy(policy_type: str, config, checkpoint_dir: Path) -> nn.Module:
    """Instantiate the (randomly initialised) policy for ``config``."""
    chatter = io.StringIO()  # LeRobot prints progress lines while building; keep them at debug
    try:
        with contextlib.redirect_stdout(chatter):
            return _build_policy(policy_type, config, checkpoint_dir)
    finally:
        if chatter.getvalue():
            LOG.debug("%s", chatter.getvalue().strip())


def _build_policy(policy_type: str, config, checkpoint_dir: Path) -> nn.Module:
    try:
        if policy_type == "smolvla":
            from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

            return SmolVLAPolicy(config)
        from lerobot.policies.pi05.modeling_pi05 import PI05Policy

        from snapflow_ros.runtime.tiny_pi05_arch import TinyPI05Arch, tiny_pi05_architecture

        arch = TinyPI05Arch.load(checkpoint_dir)
        if arch is None:
            return PI05Policy(config)
        with tiny_pi05_architecture(arch):
            return PI05Policy(config)
    except CheckpointError:
        raise
    except OSError as exc:
        raise CheckpointError(
            f"could not build the {policy_type} model for {checkpoint_dir}: {exc}. For SmolVLA "
            "offline, pass vlm_path (a folder with the VLM's config.json and processor files)."
        ) from exc


def _remap_pi05_keys(policy: nn.Module, state_dict: dict) -> dict:
    logging.disable(logging.WARNING)  # LeRobot warns about every vision key it passes through
    try:
        fixed = policy._fix_pytorch_state_dict_keys(state_dict, policy.config)
    finally:
        logging.disable(logging.NOTSET)
    return {k if k.startswith("model.") else f"model.{k}": v for k, v in fixed.items()}


def load_verified_weights(policy: nn.Module, policy_type: str, checkpoint_dir: Path) -> None:
    """Load ``model.safetensors`` into ``policy``; refuse unless every weight matched exactly."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = checkpoint_dir / MODEL_WEIGHTS
    if not weights.is_file():
        raise CheckpointError(
            f"{checkpoint_dir} has no {MODEL_WEIGHTS} (only safetensors are loaded)"
        )
    try:
        state_dict = load_file(weights, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is corrupt or unreadable: {exc}") from exc
    if policy_type == "pi05":
        state_dict = _remap_pi05_keys(policy, state_dict)
    try:
        missing, unexpected = policy.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise CheckpointError(f"{weights} does not match the model in config.json: {exc}") from exc
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not match the model in config.json: "
            f"{len(missing)} missing weights {missing[:5]}, "
            f"{len(unexpected)} unexpected weights {unexpected[:5]}"
        )


def load_target_time(checkpoint_dir: Path, meta: SnapFlowMeta) -> TargetTimeEmbedding:
    """Load the SnapFlow target-time embedding saved next to the LeRobot weights."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = checkpoint_dir / TARGET_TIME_WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{checkpoint_dir} has {SNAPFLOW_META} but no {TARGET_TIME_WEIGHTS}")
    embedding = TargetTimeEmbedding(meta.target_time)
    try:
        state = load_file(path, device="cpu")
        embedding.load_state_dict(state, strict=True)
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is corrupt or does not match {SNAPFLOW_META}: {exc}"
        ) from exc
    return embedding


def local_tokenizer_dir(
    checkpoint_dir: Path, policy_type: str, override: Path | None
) -> Path | None:
    """A local tokenizer folder for the checkpoint's language step, if one is available."""
    if override is not None:
        return override
    candidate = checkpoint_dir / ("vlm" if policy_type == "smolvla" else "tokenizer")
    return candidate if (candidate / "tokenizer_config.json").is_file() else None


def load_processors(config, checkpoint_dir: Path, device: str, tokenizer_dir: Path | None):
    """LeRobot pre/post-processor pipelines of the checkpoint (normalisation stats included)."""
    from lerobot.policies.factory import make_pre_post_processors

    overrides: dict[str, Any] = {"device_processor": {"device": device}}
    try:
        if tokenizer_dir is not None:
            from transformers import AutoTokenizer

            overrides["tokenizer_processor"] = {
                "tokenizer": AutoTokenizer.from_pretrained(tokenizer_dir)
            }
        return make_pre_post_processors(
            config, pretrained_path=str(checkpoint_dir), preprocessor_overrides=overrides
        )
    except Exception as exc:
        raise CheckpointError(
            f"could not load the pre/post-processors of {checkpoint_dir}: {exc}. "
            "A pi0.5 checkpoint offline needs tokenizer_path (a local PaliGemma tokenizer folder)."
        ) from exc


def local_folder(path: str | Path, option: str, marker: str, what: str) -> Path:
    """``path`` (given as ``option``) as a folder holding ``marker``; a clear
    :class:`CheckpointError` otherwise (``what``: what the folder should be)."""
    folder = Path(path)
    if not folder.is_dir():
        state = "is not a folder" if folder.exists() else "does not exist"
        raise CheckpointError(f"{option} {folder} {state}: expected {what}")
    if not (folder / marker).is_file():
        raise CheckpointError(f"{option} {folder} has no {marker}: expected {what}")
    return folder


def write_snapflow_files(out_dir: Path, meta: SnapFlowMeta, embedding: TargetTimeEmbedding) -> None:
    """Write ``snapflow.json`` and the target-time weights into a LeRobot checkpoint folder."""
    from safetensors.torch import save_file

    if meta.target_time != embedding.spec:
        raise ValueError(f"metadata spec {meta.target_time} != embedding spec {embedding.spec}")
    state = {k: v.detach().to("cpu").contiguous() for k, v in embedding.state_dict().items()}
    save_file(state, str(Path(out_dir) / TARGET_TIME_WEIGHTS))
    (Path(out_dir) / SNAPFLOW_META).write_text(meta.to_json())


@dataclass
class LoadedPolicy:
    """A LeRobot checkpoint loaded with verified weights, processors and optional SnapFlow parts."""

    checkpoint_dir: Path
    policy_type: str
    config: Any
    policy: nn.Module
    preprocessor: Any
    postprocessor: Any
    vlm_dir: Path | None
    tokenizer_dir: Path | None
    target_time: TargetTimeEmbedding | None = None
    meta: SnapFlowMeta | None = None

    @property
    def action_dim(self) -> int:
        """Unpadded action width."""
        return int(self.config.output_features["action"].shape[0])

    @property
    def teacher_steps(self) -> int:
        """The denoising steps the base policy was configured with."""
        if self.policy_type == "smolvla":
            return int(self.config.num_steps)
        return int(self.config.num_inference_steps)


def load_checkpoint(
    checkpoint_dir: str | Path,
    device: str,
    vlm_path: str | Path | None = None,
    tokenizer_path: str | Path | None = None,
) -> LoadedPolicy:
    """Load a plain or SnapFlow checkpoint folder: config, verified weights, embedding,
    processors.

    ``checkpoint_dir`` is a local folder (a policy name or Hub id is first resolved by
    :func:`snapflow_ros.policies.resolve_policy`). ``device`` must already be resolved
    (``cpu``, ``cuda``, ``cuda:N``). Note that the returned ``config`` is adjusted for loading
    (device, SmolVLA ``load_vlm_weights=False``, local VLM folder), so a derived checkpoint
    should copy the original ``config.json``.
    """
    checkpoint_dir = Path(checkpoint_dir)
    policy_type = read_policy_type(checkpoint_dir)
    meta = SnapFlowMeta.read(checkpoint_dir)
    if meta is not None and meta.policy_type != policy_type:
        raise CheckpointError(
            f"{checkpoint_dir}: snapflow.json is for {meta.policy_type!r} but config.json is "
            f"{policy_type!r}"
        )
    vlm_dir = None
    if vlm_path:
        what = "a local VLM folder (its config.json, tokenizer and processor files)"
        vlm_dir = local_folder(vlm_path, "vlm_path", "config.json", what)
    tokenizer_override = None
    if tokenizer_path:
        what = "a local tokenizer folder"
        tokenizer_override = local_folder(
            tokenizer_path, "tokenizer_path", "tokenizer_config.json", what
        )
    elif policy_type == "smolvla" and vlm_dir and (vlm_dir / "tokenizer_config.json").is_file():
        tokenizer_override = vlm_dir  # SmolVLA's tokenizer is its VLM's
    if vlm_dir is None and (checkpoint_dir / "vlm" / "config.json").is_file():
        vlm_dir = checkpoint_dir / "vlm"
    config = load_policy_config(checkpoint_dir, policy_type, device, vlm_dir)
    policy = build_policy(policy_type, config, checkpoint_dir)
    load_verified_weights(policy, policy_type, checkpoint_dir)
    policy.to(device)
    target_time = None
    if meta is not None:
        target_time = load_target_time(checkpoint_dir, meta)
        attach_target_time(policy, policy_type, target_time)
    tokenizer_dir = local_tokenizer_dir(checkpoint_dir, policy_type, tokenizer_override)
    pre, post = load_processors(config, checkpoint_dir, device, tokenizer_dir)
    return LoadedPolicy(
        checkpoint_dir=checkpoint_dir,
        policy_type=policy_type,
        config=config,
        policy=policy,
        preprocessor=pre,
        postprocessor=post,
        vlm_dir=vlm_dir,
        tokenizer_dir=tokenizer_dir,
        target_time=target_time,
        meta=meta,
    )
