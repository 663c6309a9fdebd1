"""Per-architecture access to a LeRobot flow-matching policy, split into timed stages.

Each adapter turns a preprocessed LeRobot batch into model inputs, encodes the observation
prefix (vision + language [+ state]) once into a KV cache, and evaluates the action expert's
velocity ``v(x_t, t, s)`` against that cache. The Euler loop itself is generic
(:mod:`snapflow_ros.runtime.sampling`). With ``s = t`` and the same noise, the N-step result is
identical to LeRobot's own ``predict_action_chunk``; this is tested.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from snapflow_ros.runtime.target_time import TargetTimeEmbedding

SUPPORTED_POLICY_TYPES = ("smolvla", "pi05")


@dataclass
class PrefixCache:
    """The encoded observation prefix: its padding mask and the transformer KV cache."""

    pad_masks: torch.Tensor
    past_key_values: Any


@dataclass
class SuffixContext:
    """What every expert pass against one prefix shares: attention mask and position ids.

    Computed once per observation by the fast path instead of once per denoising step.
    """

    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    prefix_len: int


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

    def suffix_context(self, cache: PrefixCache) -> SuffixContext: ...

    def time_conditioning(
        self, t: torch.Tensor, s: torch.Tensor, action_dtype: torch.dtype
    ) -> torch.Tensor: ...

    def expert_velocity(
        self, cache: PrefixCache, ctx: SuffixContext, x_t: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor: ...

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

    def _sinusoid(self, t: torch.Tensor, width: int) -> torch.Tensor:
        from lerobot.policies.common.vla_utils import create_sinusoidal_pos_embedding

        return create_sinusoidal_pos_embedding(
            t, width, self.config.min_period, self.config.max_period, device=t.device
        )

    def _target_time_extra(self, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor | None:
        if self.target_time is None:
            return None
        with self.target_time.jump(t, s):
            return self.target_time.current(t.shape[0], t.device)

    def _suffix_masks(
        self, cache: PrefixCache, suffix_att: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Prefix+suffix 2-D attention mask and suffix position ids, as LeRobot builds them."""
        from lerobot.policies.common.vla_utils import make_att_2d_masks

        prefix_pad = cache.pad_masks
        batch, prefix_len = prefix_pad.shape
        suffix_len = len(suffix_att)
        suffix_pad = torch.ones(batch, suffix_len, dtype=torch.bool, device=prefix_pad.device)
        att = torch.tensor(suffix_att, dtype=torch.float32, device=prefix_pad.device)
        suffix_2d = make_att_2d_masks(suffix_pad, att[None, :].expand(batch, suffix_len))
        prefix_2d = prefix_pad[:, None, :].expand(batch, suffix_len, prefix_len)
        full = torch.cat([prefix_2d, suffix_2d], dim=2)
        offsets = torch.sum(prefix_pad, dim=-1)[:, None]
        position_ids = offsets + torch.cumsum(suffix_pad, dim=1) - 1
        return full, position_ids, prefix_len


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

    def suffix_context(self, cache: PrefixCache) -> SuffixContext:
        """Masks and positions of the action tokens against ``cache`` (once per observation)."""
        full, position_ids, prefix_len = self._suffix_masks(cache, [1] * self.config.chunk_size)
        return SuffixContext(full, position_ids, prefix_len)

    def time_conditioning(
        self, t: torch.Tensor, s: torch.Tensor, action_dtype: torch.dtype
    ) -> torch.Tensor:
        """The time half of ``action_time_mlp_in``'s input for a (t, s) step: (B, W).

        Includes the target-time term exactly as the embedding's pre-hook adds it, so the
        fast pass (which bypasses the hook) sees the same numbers as the eager pass.
        """
        width = self.model.vlm_with_expert.expert_hidden_size
        time_emb = self._sinusoid(t, width).type(dtype=action_dtype)
        extra = self._target_time_extra(t, s)
        if extra is not None:
            time_emb = time_emb + extra.to(action_dtype)
        return time_emb

    def expert_velocity(
        self, cache: PrefixCache, ctx: SuffixContext, x_t: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        """One action-expert pass with precomputed time features and masks."""
        model = self.model
        action_emb = model.action_in_proj(x_t)
        time_emb = cond[:, None, :].expand_as(action_emb)
        mlp_in = model.action_time_mlp_in  # called functionally: its pre-hook is folded in cond
        hidden = F.linear(torch.cat([action_emb, time_emb], dim=2), mlp_in.weight, mlp_in.bias)
        hidden = model.action_time_mlp_out(F.silu(hidden))
        outputs, _ = model.vlm_with_expert.forward(
            attention_mask=ctx.attention_mask,
            position_ids=ctx.position_ids,
            past_key_values=cache.past_key_values,
            inputs_embeds=[None, hidden],
            use_cache=self.config.use_cache,
        )
        suffix_out = outputs[1][:, -self.config.chunk_size :].to(dtype=torch.float32)
        return model.action_out_proj(suffix_out)

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

    def suffix_context(self, cache: PrefixCache) -> SuffixContext:
        """4-D mask and positions of the action tokens against ``cache`` (once per observation)."""
        from lerobot.policies.common.vla_utils import prepare_attention_masks_4d

        suffix_att = [1] + [0] * (self.config.chunk_size - 1)
        full, position_ids, prefix_len = self._suffix_masks(cache, suffix_att)
        self.model.paligemma_with_expert.gemma_expert.model.config._attn_implementation = "eager"
        return SuffixContext(prepare_attention_masks_4d(full), position_ids, prefix_len)

    def velocity(
        self, cache: PrefixCache, x_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor
    ) -> torch.Tensor:
        """Velocity from ``t`` towards ``s``.

        A plain policy runs LeRobot's own ``denoise_step``. With a target-time embedding the
        jump enters EXPLICITLY: the adaRMS conditioning is computed here (outside LeRobot's
        time MLP, which it wraps in gradient checkpointing when configured; a recomputation
        there would not see a jump held in a context) and passed to the expert. The numbers
        are the same as LeRobot's step with the embedding's pre-hook (tested).
        """
        if self.target_time is None:
            return self._denoise(cache, x_t, t)
        cond = self.time_conditioning(t, s, x_t.dtype)
        ctx = self.suffix_context(cache)
        restore = prefix_restorer(cache.past_key_values, ctx.prefix_len)
        try:
            return self.expert_velocity(cache, ctx, x_t, cond)
        finally:
            restore()

    def time_conditioning(
        self, t: torch.Tensor, s: torch.Tensor, action_dtype: torch.dtype
    ) -> torch.Tensor:
        """The expert's adaRMS conditioning for a (t, s) step: the whole time MLP, (B, W).

        The target-time term is added to the MLP's input here, and ``time_mlp_in`` is applied
        functionally, so its pre-hook (which serves LeRobot's own code path) is not involved.
        """
        model = self.model
        time_emb = self._sinusoid(t, model.action_in_proj.out_features).type(dtype=t.dtype)
        extra = self._target_time_extra(t, s)
        if extra is not None:
            time_emb = time_emb + extra.to(time_emb.dtype)
        mlp_in = model.time_mlp_in
        hidden = F.linear(time_emb, mlp_in.weight, mlp_in.bias)
        return F.silu(model.time_mlp_out(F.silu(hidden)))

    def expert_velocity(
        self, cache: PrefixCache, ctx: SuffixContext, x_t: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        """One action-expert pass with precomputed adaRMS conditioning and masks.

        The expert appends its keys/values to the prefix cache; the caller crops them off
        (cheaper than LeRobot's per-step copy of the whole cache).
        """
        model = self.model
        outputs, _ = model.paligemma_with_expert.forward(
            attention_mask=ctx.attention_mask,
            position_ids=ctx.position_ids,
            past_key_values=cache.past_key_values,
            inputs_embeds=[None, model.action_in_proj(x_t)],
            use_cache=False,
            adarms_cond=[None, cond],
        )
        suffix_out = outputs[1][:, -self.config.chunk_size :].to(dtype=torch.float32)
        return model.action_out_proj(suffix_out)

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


def prefix_restorer(past_key_values: Any, prefix_len: int) -> Callable[[], None]:
    """A function that returns ``past_key_values`` to its prefix-only state.

    Plain ``DynamicLayer`` layers get their original key/value tensors back; any other cache
    is cropped to ``prefix_len``.
    """
    if past_key_values is None:
        return lambda: None
    from transformers.cache_utils import DynamicLayer

    layers = getattr(past_key_values, "layers", None)
    if layers is None or any(type(layer) is not DynamicLayer for layer in layers):
        return lambda: past_key_values.crop(prefix_len)
    saved = [(layer.keys, layer.values) for layer in layers]

    def restore() -> None:
        for layer, (keys, values) in zip(layers, saved, strict=True):
            layer.keys, layer.values = keys, values

    return restore
