"""The fast sampling path: per-step work hoisted out of the denoising loop, optionally compiled.

The eager path (:func:`snapflow_ros.runtime.sampling.euler_sample` over the adapter's
``velocity``) runs LeRobot's own ``denoise_step`` and stays the numerical reference. The fast
path computes the same numbers with less work per step:

* the time conditioning of every step (sine-cosine features, the SnapFlow target-time term
  and, for pi0.5, the whole time MLP) is computed once per (step count, batch, dtype) and
  kept on the device;
* the suffix attention mask and position ids are computed once per observation, with the
  prefix (:meth:`FastSampler.prepare`), so the denoising loop repeats identical work;
* after each pass the prefix cache's layers are pointed back at the prefix keys/values
  instead of copying the whole cache every step (pi0.5): every step sees the very same
  prefix tensors (no recompilation, no reads of a compiled graph's recycled outputs);
* the expert pass can be wrapped in ``torch.compile`` (``reduce-overhead`` adds CUDA graphs on
  a GPU); prompts are padded to the tokenizer's max length so its shapes never change.

Agreement with the eager path is tested (bit-identical when not compiled).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from snapflow_ros.runtime.adapters import (
    FlowPolicyAdapter,
    PrefixCache,
    SuffixContext,
    prefix_restorer,
)
from snapflow_ros.runtime.options import COMPILE_MODES
from snapflow_ros.runtime.options import ENGINES as ENGINES  # re-exported (the old place)
from snapflow_ros.runtime.sampling import step_times


@dataclass
class StepTable:
    """The precomputed conditioning of every Euler step of one schedule."""

    conds: list[torch.Tensor]
    dt: float


class FastSampler:
    """Euler sampling against a prefix cache with precomputed per-step conditioning."""

    def __init__(
        self,
        adapter: FlowPolicyAdapter,
        target_time: bool,
        compile_mode: str | None = None,
        trained_jumps: Sequence[float] | None = None,
    ) -> None:
        self.adapter = adapter
        self.target_time = target_time
        self.trained_jumps = trained_jumps
        self._tables: dict[tuple, StepTable] = {}
        expert: Callable = adapter.expert_velocity
        if compile_mode is not None:
            expert = compile_pass(expert, compile_mode)
        self._expert = expert

    def table(self, num_steps: int, noise: torch.Tensor) -> StepTable:
        """The step table for ``num_steps`` at ``noise``'s batch size, device and autocast."""
        device_type = noise.device.type
        autocast = torch.is_autocast_enabled(device_type)
        key = (
            num_steps,
            noise.shape[0],
            str(noise.device),
            autocast,
            torch.get_autocast_dtype(device_type) if autocast else None,
        )
        table = self._tables.get(key)
        if table is None:
            table = self._build(num_steps, noise)
            self._tables[key] = table
        return table

    def _build(self, num_steps: int, noise: torch.Tensor) -> StepTable:
        action_dtype = self.adapter.model.action_in_proj(noise).dtype
        conds = []
        for t, s in step_times(num_steps, self.target_time, self.trained_jumps):
            t_vec = torch.full((noise.shape[0],), t, dtype=torch.float32, device=noise.device)
            s_vec = torch.full((noise.shape[0],), s, dtype=torch.float32, device=noise.device)
            conds.append(self.adapter.time_conditioning(t_vec, s_vec, action_dtype).detach())
        return StepTable(conds=conds, dt=-1.0 / num_steps)

    def prepare(self, cache: PrefixCache) -> SuffixContext:
        """The per-observation part: suffix masks and positions against ``cache``."""
        return self.adapter.suffix_context(cache)

    def sample(
        self, cache: PrefixCache, ctx: SuffixContext, noise: torch.Tensor, num_steps: int
    ) -> torch.Tensor:
        """Integrate from ``noise`` (t=1) to actions (t=0) in ``num_steps`` steps."""
        table = self.table(num_steps, noise)
        restore = prefix_restorer(cache.past_key_values, ctx.prefix_len)
        x = noise
        if torch.is_inference_mode_enabled() and not noise.is_inference():
            x = noise.clone()  # one tensor kind for every step: no recompilation at step 2
        for cond in table.conds:
            v = self._expert(cache, ctx, x, cond)
            restore()  # drop the action tokens' keys/values the expert appended
            x = x + table.dt * v
        return x


def cast_matrix_weights(module: torch.nn.Module, dtype: torch.dtype) -> int:
    """Store the weights of every ``Linear`` / ``Conv2d`` of ``module`` in ``dtype``.

    Under autocast these are exactly the weights cast for every matrix product, on every
    prediction (for pi0.5 about 16 GB read and 8 GB written per chunk); stored in bfloat16 they
    are cast once, and take half the memory. Norms and embeddings keep their precision.
    Returns the number of modules cast.
    """
    count = 0
    for sub in module.modules():
        if isinstance(sub, torch.nn.Linear | torch.nn.Conv2d):
            sub.to(dtype)
            count += 1
    return count


def compile_pass(fn: Callable, mode: str) -> Callable:
    """``torch.compile`` for one model pass, with static shapes.

    Boolean-mask indexing (SmolVLM's patch position ids) is traced as a data-dependent op
    instead of splitting the graph.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; one of {COMPILE_MODES}")
    compiled = torch.compile(fn, mode=mode, dynamic=False)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=True):
            return compiled(*args, **kwargs)

    return run
