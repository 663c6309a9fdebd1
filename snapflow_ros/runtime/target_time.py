"""SnapFlow's zero-initialised target-time embedding for LeRobot's SmolVLA and PI05 experts.

The distilled network is ``v(x_t, t, s)``: ``s`` is the target time of the jump. The jump
length ``t - s`` is embedded (sine-cosine features, then a linear layer whose weight and bias
start at zero) and added to the model's existing time features right where they enter the
expert: the time half of SmolVLA's ``action_time_mlp_in`` input, and the input of PI05's
``time_mlp_in``. At initialisation the added term is exactly zero, so a wrapped model gives
bit-identical outputs to the original for every ``s``.

The embedding is held outside the LeRobot policy's module tree and saved in its own file, so a
SnapFlow checkpoint stays a valid LeRobot checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn

TARGET_TIME_WEIGHTS = "snapflow_target_time.safetensors"


@dataclass(frozen=True)
class TargetTimeSpec:
    """Shape of the embedding: feature width and sine-cosine period range."""

    width: int
    min_period: float
    max_period: float

    def as_dict(self) -> dict[str, float | int]:
        """Spec as a JSON-friendly dict."""
        return asdict(self)


def sinusoidal_features(values: torch.Tensor, width: int, min_period: float, max_period: float):
    """Sine-cosine features of ``values`` (B,) -> (B, width), float32."""
    if width % 2:
        raise ValueError(f"width must be even, got {width}")
    half = width // 2
    fraction = torch.linspace(0.0, 1.0, half, dtype=torch.float64, device=values.device)
    period = min_period * (max_period / min_period) ** fraction
    angle = (2 * math.pi / period)[None, :] * values.to(torch.float64)[:, None]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1).to(torch.float32)


class TargetTimeEmbedding(nn.Module):
    """Embeds the jump length ``t - s`` into the expert's time-feature space (zero at init)."""

    def __init__(self, spec: TargetTimeSpec) -> None:
        super().__init__()
        self.spec = spec
        self.proj = nn.Linear(spec.width, spec.width)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self._delta: torch.Tensor | None = None

    def forward(self, delta: torch.Tensor) -> torch.Tensor:
        """(B,) jump lengths -> (B, width) additive time features."""
        feats = sinusoidal_features(
            delta, self.spec.width, self.spec.min_period, self.spec.max_period
        )
        return self.proj(feats.to(self.proj.weight.dtype))

    @contextmanager
    def jump(self, t: torch.Tensor, s: torch.Tensor) -> Iterator[None]:
        """Within the context, the wrapped model predicts the average velocity from t to s."""
        self._delta = (t - s).to(torch.float32)
        try:
            yield
        finally:
            self._delta = None

    def current(self, batch: int, device: torch.device) -> torch.Tensor:
        """Additive features for the active jump (``s = t`` outside :meth:`jump`)."""
        delta = self._delta
        if delta is None:
            delta = torch.zeros(batch, dtype=torch.float32, device=device)
        return self(delta.to(device))


def target_time_spec_for(policy: nn.Module, policy_type: str) -> TargetTimeSpec:
    """The embedding shape that fits ``policy``'s time features."""
    cfg = policy.config
    if policy_type == "smolvla":
        width = policy.model.vlm_with_expert.expert_hidden_size
    elif policy_type == "pi05":
        width = policy.model.action_in_proj.out_features
    else:
        raise ValueError(f"no target-time embedding for policy type {policy_type!r}")
    return TargetTimeSpec(width=int(width), min_period=cfg.min_period, max_period=cfg.max_period)


def attach_target_time(
    policy: nn.Module, policy_type: str, embedding: TargetTimeEmbedding | None = None
) -> TargetTimeEmbedding:
    """Hook a target-time embedding into ``policy``'s expert; returns the embedding module."""
    spec = target_time_spec_for(policy, policy_type)
    if embedding is None:
        embedding = TargetTimeEmbedding(spec)
    elif embedding.spec != spec:
        raise ValueError(f"target-time embedding {embedding.spec} does not fit the policy ({spec})")
    param = next(policy.parameters())
    embedding.to(param.device)
    width = spec.width

    if policy_type == "smolvla":

        def add_to_time_half(_module: nn.Module, args: tuple) -> tuple:
            (x,) = args  # (B, H, 2W): [action features | time features]
            extra = embedding.current(x.shape[0], x.device).to(x.dtype)
            pad = torch.zeros_like(x[..., :width])
            return (x + torch.cat([pad, extra[:, None, :].expand_as(pad)], dim=-1),)

        handle = policy.model.action_time_mlp_in.register_forward_pre_hook(add_to_time_half)
    else:

        def add_to_time(_module: nn.Module, args: tuple) -> tuple:
            (x,) = args  # (B, W) time features
            return (x + embedding.current(x.shape[0], x.device).to(x.dtype),)

        handle = policy.model.time_mlp_in.register_forward_pre_hook(add_to_time)
    embedding._hook_handle = handle  # kept alive with the module; remove() detaches it
    return embedding
