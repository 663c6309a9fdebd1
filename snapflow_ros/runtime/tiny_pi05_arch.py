"""Shrink LeRobot's PI05 architecture for tiny offline test models.

PI05's sizes cannot be made small through its config: only the ``gemma_2b`` / ``gemma_300m``
variants are accepted, and the vision tower, projection size and 257,152-token vocabulary are
fixed in code. :func:`tiny_pi05_architecture` patches exactly those names while a model is
built. A tiny checkpoint records the sizes in :data:`TINY_ARCH_FILE`, and the runtime applies
the same override when it reloads such a checkpoint (the LeRobot config does not store them):
that is why this module is part of the runtime; the tiny checkpoints' builder
(:mod:`snapflow_ros.policies.tiny`) uses it from here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["TINY_ARCH_FILE", "GemmaSize", "TinyPI05Arch", "tiny_pi05_architecture"]

TINY_ARCH_FILE = "snapflow_tiny_arch.json"


@dataclass(frozen=True)
class GemmaSize:
    """Sizes of one Gemma tower (LeRobot's ``GemmaConfig`` fields)."""

    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    num_kv_heads: int
    head_dim: int


@dataclass(frozen=True)
class TinyPI05Arch:
    """All sizes that PI05 hard-codes, at test scale."""

    vlm: GemmaSize = field(default_factory=lambda: GemmaSize(64, 2, 128, 2, 1, 16))
    expert: GemmaSize = field(default_factory=lambda: GemmaSize(32, 2, 64, 2, 1, 16))
    vocab_size: int = 265
    vision_width: int = 32
    vision_depth: int = 1
    vision_heads: int = 2
    vision_mlp_dim: int = 64
    patch_size: int = 16

    def save(self, checkpoint_dir: Path) -> None:
        """Record the override in a checkpoint folder."""
        (checkpoint_dir / TINY_ARCH_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, checkpoint_dir: Path) -> TinyPI05Arch | None:
        """Read the override from a checkpoint folder, or None when it is a regular checkpoint."""
        path = Path(checkpoint_dir) / TINY_ARCH_FILE
        if not path.is_file():
            return None
        raw = json.loads(path.read_text())
        return cls(
            vlm=GemmaSize(**raw.pop("vlm")),
            expert=GemmaSize(**raw.pop("expert")),
            **raw,
        )


@contextmanager
def tiny_pi05_architecture(arch: TinyPI05Arch) -> Iterator[None]:
    """Build PI05 models with ``arch``'s sizes while the context is active."""
    from lerobot.policies.pi05 import modeling_pi05 as m

    orig_get = m.get_gemma_config
    orig_vlm_cls = m.PaliGemmaForConditionalGenerationWithPiGemma
    orig_expert_cls = m.PiGemmaForCausalLM

    def get_gemma_config(variant: str):
        size = {"gemma_2b": arch.vlm, "gemma_300m": arch.expert}.get(variant)
        if size is None:
            return orig_get(variant)
        return m.GemmaConfig(**asdict(size))

    def build_vlm(config):
        vision = config.vision_config
        vision.hidden_size = arch.vision_width
        vision.intermediate_size = arch.vision_mlp_dim
        vision.num_hidden_layers = arch.vision_depth
        vision.num_attention_heads = arch.vision_heads
        vision.patch_size = arch.patch_size
        vision.projection_dim = arch.vlm.width
        config.text_config.vocab_size = arch.vocab_size
        config._vocab_size = arch.vocab_size
        config.image_token_index = arch.vocab_size - 1
        config.image_token_id = arch.vocab_size - 1
        return orig_vlm_cls(config=config)

    def build_expert(config):
        config.vocab_size = arch.vocab_size
        return orig_expert_cls(config=config)

    m.get_gemma_config = get_gemma_config
    m.PaliGemmaForConditionalGenerationWithPiGemma = build_vlm
    m.PiGemmaForCausalLM = build_expert
    try:
        yield
    finally:
        m.get_gemma_config = orig_get
        m.PaliGemmaForConditionalGenerationWithPiGemma = orig_vlm_cls
        m.PiGemmaForCausalLM = orig_expert_cls
