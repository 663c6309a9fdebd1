"""The student: the teacher checkpoint plus a fresh zero-initialised target-time embedding.

The teacher is loaded exactly as the runtime loads a checkpoint (the runtime's own functions:
verified weights, the pi0.5 tiny-architecture override, local VLM / tokenizer folders). The
student starts as the same network; :class:`DistillModule` computes the SnapFlow loss of one
preprocessed batch with the prefix (vision + language [+ state]) encoded ONCE and reused by
every velocity call of the objective.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from snapflow_ros.policies import resolve_policy
from snapflow_ros.runtime import checkpoint as ckpt
from snapflow_ros.runtime.adapters import make_adapter
from snapflow_ros.runtime.checkpoint import LoadedPolicy
from snapflow_ros.runtime.target_time import TargetTimeEmbedding, attach_target_time
from snapflow_training.errors import DistillError
from snapflow_training.objective import BatchShard, SnapFlowConfig, snapflow_loss

TrainMode = Literal["expert", "all"]
TRAIN_MODES: tuple[str, ...] = ("expert", "all")

# Modules that act only on the action tokens (the "suffix"): with a frozen prefix these are
# what the distillation trains (plus the target-time embedding). SmolVLA's state_proj feeds
# the prefix, so it stays frozen with the VLM.
EXPERT_PREFIXES: dict[str, tuple[str, ...]] = {
    "smolvla": (
        "model.vlm_with_expert.lm_expert.",
        "model.action_in_proj.",
        "model.action_out_proj.",
        "model.action_time_mlp_in.",
        "model.action_time_mlp_out.",
    ),
    "pi05": (
        "model.paligemma_with_expert.gemma_expert.",
        "model.action_in_proj.",
        "model.action_out_proj.",
        "model.time_mlp_in.",
        "model.time_mlp_out.",
    ),
}
# Language-model heads are never used by the action model (and the expert's token embedding
# neither): they would never receive a gradient.
UNUSED_MARKERS = (".lm_head.", "gemma_expert.model.embed_tokens.", "lm_expert.embed_tokens.")


def load_policy(
    name_or_path: str | Path,
    device: str,
    vlm_path: str | Path | None = None,
    tokenizer_path: str | Path | None = None,
    snapflow: bool | None = False,
) -> LoadedPolicy:
    """Load a plain (``snapflow=False``), SnapFlow (``True``) or either (``None``) checkpoint."""
    checkpoint_dir = resolve_policy(name_or_path)
    ckpt.read_policy_type(checkpoint_dir)  # fail fast on unsupported types
    meta = ckpt.SnapFlowMeta.read(checkpoint_dir)
    if snapflow is False and meta is not None:
        raise DistillError(
            f"{checkpoint_dir} is already a SnapFlow checkpoint; distil from its base policy "
            f"({meta.base_policy}) or pass --resume to continue a run"
        )
    if snapflow is True and meta is None:
        raise DistillError(f"{checkpoint_dir} is not a SnapFlow checkpoint (no snapflow.json)")
    return ckpt.load_checkpoint(checkpoint_dir, device, vlm_path, tokenizer_path)


def attach_fresh_target_time(loaded: LoadedPolicy) -> TargetTimeEmbedding:
    """Hook a new zero-initialised target-time embedding into the loaded policy."""
    if loaded.target_time is not None:
        raise DistillError("the policy already has a target-time embedding")
    loaded.target_time = attach_target_time(loaded.policy, loaded.policy_type)
    return loaded.target_time


def is_trainable(name: str, policy_type: str, mode: TrainMode) -> bool:
    """Whether parameter ``name`` of the LeRobot policy trains in ``mode``."""
    if any(marker in name for marker in UNUSED_MARKERS):
        return False
    if mode == "all":
        return True
    return name.startswith(EXPERT_PREFIXES[policy_type])


def set_trainable(policy: nn.Module, policy_type: str, mode: TrainMode) -> list[str]:
    """Freeze everything but the parameters ``mode`` trains; returns their names."""
    if mode not in TRAIN_MODES:
        raise DistillError(f"--train must be one of {TRAIN_MODES}, got {mode!r}")
    names = []
    for name, param in policy.named_parameters():
        param.requires_grad_(is_trainable(name, policy_type, mode))
        if param.requires_grad:
            names.append(name)
    return names


def disable_gradient_checkpointing(policy: nn.Module) -> bool:
    """Turn LeRobot's gradient checkpointing (pi0.5's ``gradient_checkpointing``) off.

    The distillation encodes the prefix once and reuses its KV cache for every velocity call;
    Hugging Face's checkpointed layers drop a KV cache in training mode (the prefix cache
    comes back empty and the expert would not see the prefix), so checkpointing cannot be
    combined with it. Returns whether it was on.
    """
    model = getattr(policy, "model", None)
    if model is None or not getattr(model, "gradient_checkpointing_enabled", False):
        return False
    model.gradient_checkpointing_disable()
    return True


class ShadowWeights:
    """A second set of values for the trainable parameters: the frozen teacher's or an EMA.

    :meth:`active` swaps them into the parameters for no-grad target calls; the objective
    computes its targets before the prediction, so no autograd graph holds the parameters
    while they are swapped.
    """

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.params = params
        self.values = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """``value <- decay * value + (1 - decay) * param`` after an optimizer step."""
        for value, param in zip(self.values, self.params, strict=True):
            value.lerp_(param.detach(), 1.0 - decay)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Within the context the parameters hold the shadow values."""
        saved = [p.data for p in self.params]
        try:
            for param, value in zip(self.params, self.values, strict=True):
                param.data = value
            yield
        finally:
            for param, data in zip(self.params, saved, strict=True):
                param.data = data

    def state_dict(self) -> list[torch.Tensor]:
        """The shadow values (CPU copies) for a training checkpoint."""
        return [v.detach().to("cpu").clone() for v in self.values]

    def load_state_dict(self, values: list[torch.Tensor]) -> None:
        """Restore values saved by :meth:`state_dict`."""
        if len(values) != len(self.values):
            raise DistillError("the saved shadow weights do not match the trainable parameters")
        for mine, saved in zip(self.values, values, strict=True):
            mine.copy_(saved)


class DistillModule(nn.Module):
    """Policy + target-time embedding; ``forward`` returns the SnapFlow loss of one batch.

    The batch must be preprocessed (normalised, tokenised). Padded action dimensions (LeRobot
    pads actions to ``max_action_dim``) are kept out of the loss, as in LeRobot's own training:
    the objective works on the real ``D`` dimensions and the velocity closure fills the padded
    part of ``x_t`` with ``t * eps_pad`` (the noise path of a zero padded action).

    With ``shard`` set (several processes), the batch is this process's slice of a global
    batch: the noise and times of the whole global batch are drawn from ``generator`` (the same
    state on every process) and sliced, so the result does not depend on how the global batch
    is split (see :func:`~snapflow_training.objective.snapflow_loss`).
    """

    def __init__(
        self,
        policy: nn.Module,
        policy_type: str,
        target_time: TargetTimeEmbedding,
        objective: SnapFlowConfig,
        train_prefix: bool,
    ) -> None:
        super().__init__()
        self.policy = policy
        self.target_time = target_time
        self.policy_type = policy_type
        self.objective = objective
        self.train_prefix = train_prefix
        self.adapter = make_adapter(policy, policy_type, target_time)
        # Data parallel: this process's slice of the global batch (set by the trainer).
        self.shard: BatchShard | None = None
        self.shadow: ShadowWeights | None = None
        if objective.target_source != "student" or objective.needs_teacher:
            trainable = [p for p in self.parameters() if p.requires_grad]
            if not trainable:
                raise DistillError(
                    "target_source / flow_target need trainable parameters (set them first)"
                )
            self.shadow = ShadowWeights(trainable)

    def after_optimizer_step(self) -> None:
        """Move the EMA towards the new weights (``target_source="ema"``)."""
        if self.shadow is not None and self.objective.target_source == "ema":
            self.shadow.update_ema(self.objective.ema_decay)

    def actions(self, batch: dict[str, Any]) -> torch.Tensor:
        """Normalised target action chunk (B, H, D) in the model's action space."""
        actions = batch["action"]
        if self.policy_type == "smolvla" and self.policy.config.adapt_to_pi_aloha:
            actions = self.policy._pi_aloha_encode_actions_inv(actions)
        return actions

    def forward(
        self, batch: dict[str, Any], step: int, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """SnapFlow loss terms of ``batch``.

        ``loss`` carries the gradient; ``loss_value`` and the terms are the global batch's.
        """
        adapter = self.adapter
        inputs = adapter.model_inputs(batch)
        with torch.set_grad_enabled(self.train_prefix and torch.is_grad_enabled()):
            cache = adapter.encode_prefix(inputs)
        actions = self.actions(batch).float()
        batch_size, _, dim = actions.shape
        shard = self.shard if self.shard is not None and self.shard.count > 1 else None
        drawn = batch_size * shard.count if shard is not None else batch_size
        full = torch.randn(
            adapter.noise_shape(drawn),
            generator=generator,
            device=generator.device,
            dtype=torch.float32,
        )
        if shard is not None:  # the whole global batch's noise is drawn; this slice is ours
            start, stop = shard.rows(batch_size)
            full = full[start:stop]
        full = full.to(actions.device)
        noise, noise_pad = full[..., :dim], full[..., dim:]

        def velocity(x_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            padded = torch.cat([x_t, t.view(-1, 1, 1).to(x_t.dtype) * noise_pad], dim=-1)
            return adapter.velocity(cache, padded, t, s)[..., :dim].float()

        shadow = self.shadow

        def shadow_velocity(x_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            assert shadow is not None
            with shadow.active():
                return velocity(x_t, t, s)

        source = self.objective.target_source
        out = snapflow_loss(
            velocity,
            actions,
            noise,
            self.objective,
            step=step,
            generator=generator,
            action_is_pad=batch.get("action_is_pad"),
            target_velocity=shadow_velocity if source == "ema" else None,
            instant_velocity=shadow_velocity if source == "teacher" else None,
            shard=shard,
            flow_velocity=shadow_velocity if self.objective.flow_target == "teacher" else None,
        )
        return {
            "loss": out.total,
            "loss_value": out.value,
            "flow_matching": out.flow_matching,
            "consistency": out.consistency,
            "consistency_weight": torch.tensor(out.consistency_weight),
        }
