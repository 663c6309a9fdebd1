"""The torch modules that are exported: the runtime's own adapter calls, with tensors in and out.

Each module runs exactly the functions the ``fast`` engine runs
(:class:`snapflow_ros.runtime.fast_path.FastSampler` over the adapter), so the exported graph
computes what that engine computes:

* :class:`PrefixGraph`: ``model_inputs`` (image resize/pad and scaling, state padding) and
  ``encode_prefix``; returns the prefix padding mask and every layer's keys and values;
* :class:`ExpertStepGraph`: rebuilds the cache from those tensors, then ``suffix_context``,
  ``time_conditioning(t, s)`` and ``expert_velocity``: one velocity ``v(x_t, t, s)``;
* :class:`OneStepGraph`: both, with the one-step jump's conditioning (t=1, s=0) computed once
  as the fast engine's step table does, and the Euler update ``noise - v``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from snapflow_ros.runtime.adapters import PrefixCache
from snapflow_ros.runtime.policy_runtime import STATE_KEY


def _batch(
    image_keys: list[str], with_state: bool, tensors: tuple[torch.Tensor, ...]
) -> dict[str, Any]:
    """The preprocessed LeRobot batch from the graph's positional inputs."""
    from lerobot.utils.constants import OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS

    batch: dict[str, Any] = dict(zip(image_keys, tensors, strict=False))
    rest = list(tensors[len(image_keys) :])
    if with_state:
        batch[STATE_KEY] = rest.pop(0)
    batch[OBS_LANGUAGE_TOKENS], batch[OBS_LANGUAGE_ATTENTION_MASK] = rest
    return batch


def flatten_cache(cache: PrefixCache) -> list[torch.Tensor]:
    """Keys and values of every cache layer, in :func:`onnx_format.kv_names` order."""
    flat = []
    for layer in cache.past_key_values.layers:
        flat += [layer.keys, layer.values]
    return flat


def rebuild_cache(pad_masks: torch.Tensor, flat: tuple[torch.Tensor, ...]) -> PrefixCache:
    """A prefix cache from the flat keys/values a prefix graph returned."""
    from transformers.cache_utils import DynamicCache

    cache = DynamicCache()
    for i in range(len(flat) // 2):
        cache.update(flat[2 * i], flat[2 * i + 1], i)
    return PrefixCache(pad_masks=pad_masks, past_key_values=cache)


class _Graph(nn.Module):
    def __init__(self, adapter: Any, image_keys: list[str], with_state: bool) -> None:
        super().__init__()
        self.policy = adapter.policy  # registered: its weights become the graph's initializers
        self.target_time = adapter.target_time
        self.adapter = adapter
        self.image_keys = list(image_keys)
        self.with_state = with_state
        self.action_dim = adapter.action_dim()

    def _prefix(self, inputs: tuple[torch.Tensor, ...]) -> PrefixCache:
        batch = _batch(self.image_keys, self.with_state, inputs)
        return self.adapter.encode_prefix(self.adapter.model_inputs(batch))


class PrefixGraph(_Graph):
    """Preprocessed batch -> (prefix padding mask, keys_0, values_0, keys_1, ...)."""

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cache = self._prefix(inputs)
        return (cache.pad_masks, *flatten_cache(cache))


class ExpertStepGraph(_Graph):
    """(prefix padding mask, x_t, t, s, keys_0, values_0, ...) -> velocity (B, chunk, max_dim)."""

    def forward(
        self,
        pad_masks: torch.Tensor,
        x_t: torch.Tensor,
        t: torch.Tensor,
        s: torch.Tensor,
        *kv: torch.Tensor,
    ) -> torch.Tensor:
        cache = rebuild_cache(pad_masks, kv)
        ctx = self.adapter.suffix_context(cache)
        cond = self.adapter.time_conditioning(t, s, x_t.dtype)
        return self.adapter.expert_velocity(cache, ctx, x_t, cond)


class OneStepGraph(_Graph):
    """(preprocessed batch..., noise) -> normalised actions (B, chunk, action_dim), one jump."""

    def __init__(self, adapter: Any, image_keys: list[str], with_state: bool, cond: torch.Tensor):
        super().__init__(adapter, image_keys, with_state)
        self.register_buffer("cond", cond.detach().clone())

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        *batch, noise = inputs
        cache = self._prefix(tuple(batch))
        ctx = self.adapter.suffix_context(cache)
        v = self.adapter.expert_velocity(cache, ctx, noise, self.cond)
        actions = noise + -1.0 * v  # the fast engine's x + dt * v with dt = -1
        return actions[:, :, : self.action_dim]
