"""Per-architecture access to a LeRobot flow-matching policy, split into timed stages.

Each adapter turns a preprocessed LeRobot batch into model inputs, encodes the observation
prefix (vision + language [+ state]) once into a KV cache, and evaluates the action expert's
velocity ``v(x_t, t, s)`` against that cache. The Euler loop itself is generic
(:mod:`snapflow_ros.runtime.sampling`). With ``s = t`` and the same noise, the N-step result is
identical to LeRobot's own ``predict_action_chunk``; this is tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from snapflow_ros.runtime.target_time import TargetTimeEmbedding

SUPPORTED_POLICY_TYPES = ("smolvla", "pi05")


@dataclass
class PrefixCache:
    """The encoded observation prefix: its padding mask and the transformer KV cache."""

    pad_masks: torch.Tensor
    past_key_values: Any


class FlowPolicyAdapter(Protocol):
    """What the runtime and the distillation need from a flow-matching VLA."""

    policy: nn.Module
    target_time: TargetTimeEmbedding | None

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]: ...

    def encode_prefix(self, inputs: dict[str, Any]) -> PrefixCache: ...

    def velocity(
        self, cache: PrefixCache, x_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor
    ) -> torch.Tensor: ...

    def noise_shape(self, batch_size: int) -> tuple[int, int, int]: ...

    def finalize(self, actions: torch.Tensor) -> torch.Tensor: ...


class _AdapterBase:
    """Shared velocity / noise / finalize logic."""

    def __init__(self, policy: nn.Module, target_time: TargetTimeEmbedding | None = None) -> None:
        self.policy = policy
        self.model = policy.model
        self.config = policy.config
        self.target_time = target_time

    def _denoise(self, cache: PrefixCache, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.model.denoise_step(
            prefix_pad_masks=cache.pad_masks,
            past_key_values=cache.past_key_values,
            x_t=x_t,
            timestep=t,
        )

    def velocity(
        self, cache: PrefixCache, x_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor
    ) -> torch.Tensor:
        """Velocity from ``t`` towards ``s`` (instantaneous without a target-time embedding)."""
        if self.target_time is None:
            return self._denoise(cache, x_t, t)
        with self.target_time.jump(t, s):
            return self._denoise(cache, x_t, t)

    def noise_shape(self, batch_size: int) -> tuple[int, int, int]:
        """Shape of the noise the sampler starts from (padded action width)."""
        return (batch_size, self.config.chunk_size, self.config.max_action_dim)

    def action_dim(self) -> int:
        """Unpadded action width."""
        return int(self.config.output_features["action"].shape[0])


class SmolVLAAdapter(_AdapterBase):
    """LeRobot ``SmolVLAPolicy``."""

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Images, masks, language tokens and padded state from a preprocessed batch."""
        from lerobot.utils.constants import OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS

        batch = self.policy._prepare_batch(dict(batch))
        images, img_masks = self.policy.prepare_images(batch)
        return {
            "images": images,
            "img_masks": img_masks,
            "lang_tokens": batch[OBS_LANGUAGE_TOKENS],
            "lang_masks": batch[OBS_LANGUAGE_ATTENTION_MASK],
            "state": self.policy.prepare_state(batch),
        }

    def encode_prefix(self, inputs: dict[str, Any]) -> PrefixCache:
        """Run the VLM over the prefix once and keep its KV cache."""
        from lerobot.policies.common.vla_utils import make_att_2d_masks

        embs, pad_masks, att_masks = self.model.embed_prefix(
            inputs["images"],
            inputs["img_masks"],
            inputs["lang_tokens"],
            inputs["lang_masks"],
            state=inputs["state"],
        )
        att_2d = make_att_2d_masks(pad_masks, att_masks)
        position_ids = torch.cumsum(pad_masks, dim=1) - 1
        _, past_key_values = self.model.vlm_with_expert.forward(
            attention_mask=att_2d,
            position_ids=position_ids,
            past_key_values=None,
            inputs_embeds=[embs, None],
            use_cache=True,
        )
        return PrefixCache(pad_masks=pad_masks, past_key_values=past_key_values)

    def finalize(self, actions: torch.Tensor) -> torch.Tensor:
        """Drop action padding (and apply the Aloha encoding when the config asks for it)."""
        actions = actions[:, :, : self.action_dim()]
        if self.config.adapt_to_pi_aloha:
            actions = self.policy._pi_aloha_encode_actions(actions)
        return actions


class PI05Adapter(_AdapterBase):
    """LeRobot ``PI05Policy``."""

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Images, masks and language tokens (the state is in the prompt) from a batch."""
        from lerobot.utils.constants import OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS

        images, img_masks = self.policy._preprocess_images(batch)
        return {
            "images": images,
            "img_masks": img_masks,
            "lang_tokens": batch[OBS_LANGUAGE_TOKENS],
            "lang_masks": batch[OBS_LANGUAGE_ATTENTION_MASK],
        }

    def encode_prefix(self, inputs: dict[str, Any]) -> PrefixCache:
        """Run PaliGemma over the prefix once and keep its KV cache."""
        from lerobot.policies.common.vla_utils import make_att_2d_masks, prepare_attention_masks_4d

        embs, pad_masks, att_masks = self.model.embed_prefix(
            inputs["images"], inputs["img_masks"], inputs["lang_tokens"], inputs["lang_masks"]
        )
        att_4d = prepare_attention_masks_4d(make_att_2d_masks(pad_masks, att_masks))
        position_ids = torch.cumsum(pad_masks, dim=1) - 1
        language_model = self.model.paligemma_with_expert.paligemma.model.language_model
        language_model.config._attn_implementation = "eager"
        _, past_key_values = self.model.paligemma_with_expert.forward(
            attention_mask=att_4d,
            position_ids=position_ids,
            past_key_values=None,
            inputs_embeds=[embs, None],
            use_cache=True,
        )
        return PrefixCache(pad_masks=pad_masks, past_key_values=past_key_values)

    def finalize(self, actions: torch.Tensor) -> torch.Tensor:
        """Drop action padding."""
        return actions[:, :, : self.action_dim()]


def make_adapter(
    policy: nn.Module, policy_type: str, target_time: TargetTimeEmbedding | None = None
) -> SmolVLAAdapter | PI05Adapter:
    """The adapter for ``policy_type`` (``smolvla`` or ``pi05``)."""
    if policy_type == "smolvla":
        return SmolVLAAdapter(policy, target_time)
    if policy_type == "pi05":
        return PI05Adapter(policy, target_time)
    raise ValueError(
        f"unsupported policy type {policy_type!r}; supported: {', '.join(SUPPORTED_POLICY_TYPES)}"
    )
