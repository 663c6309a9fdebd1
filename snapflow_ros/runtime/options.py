"""How to load and run a checkpoint, described without torch.

The names of the engines, compile modes and dtypes and :class:`RuntimeOptions` live here so
that what only describes or checks options (the policy node's parameter table, command-line
parsers) can import them without importing torch. The torch objects they stand for (the
``torch.dtype`` of a dtype name, the engines themselves) stay where torch is imported
(:mod:`.policy_runtime`, :mod:`.fast_path`).
"""

from __future__ import annotations

from dataclasses import dataclass

from snapflow_ros.runtime.errors import CheckpointError

ENGINES = ("eager", "fast", "compiled", "onnxruntime")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
DTYPE_NAMES = ("float32", "bfloat16")  # the keys of policy_runtime.DTYPES


@dataclass
class RuntimeOptions:
    """How to load and run a checkpoint.

    ``device``: ``auto`` (cuda when present, else cpu), ``cpu``, ``cuda`` or ``cuda:N``.
    ``dtype``: ``float32`` or ``bfloat16`` (autocast around the model passes).
    ``num_steps``: default denoising steps (None: 1 for SnapFlow, the config's value otherwise).
    ``seed``: seeds the denoising noise generator (identical chunks for identical inputs).
    ``vlm_path`` / ``tokenizer_path``: local folders replacing Hub downloads of the SmolVLA VLM
    config/processor or the pi0.5 PaliGemma tokenizer (found automatically in the checkpoint's
    ``vlm/`` or ``tokenizer/`` subfolder).
    ``warmup``: number of warm-up predictions at load.
    ``engine``: ``eager`` (LeRobot's denoise step, the reference), ``fast`` (per-step work
    hoisted out of the loop, prompts padded to a fixed length, with ``bfloat16`` the matrix
    weights stored in bfloat16; bit-identical to eager in float32) or
    ``compiled`` (``fast`` with the expert pass under ``torch.compile``) or ``onnxruntime``
    (the checkpoint is an export folder written by ``snapflow_export``, run by ONNX Runtime;
    float32 only; providers from ``device``: see :mod:`snapflow_ros.runtime.onnx_engine`).
    ``compile_mode``: the ``torch.compile`` mode of the ``compiled`` engine
    (``reduce-overhead`` uses CUDA graphs on a GPU).
    ``compile_prefix``: also compile the prefix (vision + language) encoder.
    """

    device: str = "auto"
    dtype: str = "float32"
    num_steps: int | None = None
    seed: int | None = 0
    vlm_path: str | None = None
    tokenizer_path: str | None = None
    warmup: int = 1
    engine: str = "eager"
    compile_mode: str = "default"
    compile_prefix: bool = False

    def check(self) -> None:
        """Raise :class:`CheckpointError` on an unknown dtype, engine or compile mode."""
        if self.dtype not in DTYPE_NAMES:
            raise CheckpointError(f"unknown dtype {self.dtype!r} ({' or '.join(DTYPE_NAMES)})")
        if self.engine not in ENGINES:
            raise CheckpointError(f"unknown engine {self.engine!r} ({', '.join(ENGINES)})")
        if self.compile_mode not in COMPILE_MODES:
            raise CheckpointError(
                f"unknown compile_mode {self.compile_mode!r} ({', '.join(COMPILE_MODES)})"
            )
        if self.engine == "onnxruntime" and self.dtype != "float32":
            raise CheckpointError("engine 'onnxruntime' runs float32 graphs: dtype must be float32")
        if self.compile_prefix and self.engine != "compiled":
            raise CheckpointError("compile_prefix needs engine 'compiled'")
