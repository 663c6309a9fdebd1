"""The policy runtime: observation in, timed action chunk out."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snapflow_ros.policies import resolve_policy
from snapflow_ros.runtime import checkpoint as ckpt
from snapflow_ros.runtime.adapters import make_adapter
from snapflow_ros.runtime.errors import CheckpointError, NonFiniteOutputError, ObservationError
from snapflow_ros.runtime.fast_path import FastSampler, cast_matrix_weights, compile_pass
from snapflow_ros.runtime.onnx_format import is_export_dir
from snapflow_ros.runtime.options import COMPILE_MODES as COMPILE_MODES  # re-exported
from snapflow_ros.runtime.options import DTYPE_NAMES, RuntimeOptions
from snapflow_ros.runtime.options import ENGINES as ENGINES  # re-exported
from snapflow_ros.runtime.sampling import euler_sample
from snapflow_ros.runtime.types import ActionChunk, Observation, StageTimings

LOG = logging.getLogger(__name__)

IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}  # float32, bfloat16


def resolve_device(device: str) -> str:
    """Turn ``auto`` into ``cuda`` or ``cpu`` and check that a requested GPU exists."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CheckpointError(f"device {device!r} requested but CUDA is not available")
    if device != "cpu" and not device.startswith("cuda"):
        raise CheckpointError(f"unknown device {device!r} (auto, cpu, cuda, cuda:N)")
    return device


class PolicyRuntime:
    """A loaded LeRobot SmolVLA / pi0.5 policy (plain or SnapFlow) ready to predict chunks.

    With ``engine: onnxruntime`` the checkpoint is an ONNX export folder and the object is an
    :class:`~snapflow_ros.runtime.onnx_engine.OnnxPolicyRuntime` (same interface).
    """

    def __new__(cls, checkpoint: str | Path | None = None, options: RuntimeOptions | None = None):
        if cls is PolicyRuntime and options is not None and options.engine == "onnxruntime":
            from snapflow_ros.runtime.onnx_engine import OnnxPolicyRuntime

            return super().__new__(OnnxPolicyRuntime)
        return super().__new__(cls)

    def __init__(self, checkpoint: str | Path, options: RuntimeOptions | None = None) -> None:
        self.options = options or RuntimeOptions()
        self.options.check()
        if is_export_dir(checkpoint):
            raise CheckpointError(
                f"{checkpoint} is an ONNX export: run it with engine 'onnxruntime' (engine "
                f"{self.options.engine!r} needs the LeRobot checkpoint it was exported from)"
            )
        self.device = resolve_device(self.options.device)
        loaded = ckpt.load_checkpoint(
            resolve_policy(checkpoint),
            self.device,
            self.options.vlm_path,
            self.options.tokenizer_path,
        )
        self.checkpoint_dir = loaded.checkpoint_dir
        self.policy_type = loaded.policy_type
        self.snapflow = loaded.meta
        self.config = config = loaded.config
        self.policy = loaded.policy.eval()
        if loaded.target_time is not None:
            loaded.target_time.eval()
        self.adapter = make_adapter(self.policy, self.policy_type, loaded.target_time)
        self.preprocessor, self.postprocessor = loaded.preprocessor, loaded.postprocessor
        self._fast: FastSampler | None = None
        self._encode_prefix = self.adapter.encode_prefix
        if self.options.engine != "eager":
            self._set_up_fast_path()
        self.image_keys: list[str] = list(config.image_features)
        self.state_dim: int = int(config.input_features[STATE_KEY].shape[0])
        self.action_dim: int = self.adapter.action_dim()
        self.chunk_size: int = int(config.chunk_size)
        self.default_num_steps: int = self._default_steps()
        self._generator = torch.Generator(device=self.device)
        self.reset_noise(self.options.seed)
        for _ in range(max(0, self.options.warmup)):
            self.predict_chunk(self.dummy_observation())
        self.reset_noise(self.options.seed)

    def _set_up_fast_path(self) -> None:
        """Fixed prompt length, precomputed step tables and (optionally) compiled passes."""
        pad_prompts_to_max_length(self.preprocessor)
        if self.options.dtype != "float32":
            cast_matrix_weights(self.policy, DTYPES[self.options.dtype])
            if self.adapter.target_time is not None:
                cast_matrix_weights(self.adapter.target_time, DTYPES[self.options.dtype])
        compiled = self.options.engine == "compiled"
        mode = self.options.compile_mode if compiled else None
        self._fast = FastSampler(
            self.adapter,
            target_time=self.is_snapflow,
            compile_mode=mode,
            trained_jumps=self.trained_jumps,
        )
        if compiled and self.options.compile_prefix:
            mode = self.options.compile_mode
            self._encode_prefix = compile_pass(self.adapter.encode_prefix, mode)

    # ------------------------------------------------------------------ properties
    @property
    def is_snapflow(self) -> bool:
        """True when the checkpoint carries a SnapFlow target-time embedding."""
        return self.snapflow is not None

    @property
    def trained_jumps(self) -> list[float] | None:
        """Jump lengths a SnapFlow checkpoint was trained on (``snapflow.json``; None: any)."""
        return self.snapflow.trained_jumps if self.snapflow is not None else []

    @property
    def configured_num_steps(self) -> int:
        """The denoising steps the base policy was configured with."""
        if self.policy_type == "smolvla":
            return int(self.config.num_steps)
        return int(self.config.num_inference_steps)

    def _default_steps(self) -> int:
        if self.options.num_steps is not None:
            return self._check_steps(self.options.num_steps)
        if self.snapflow is not None:
            return int(self.snapflow.default_num_steps)
        return self.configured_num_steps

    @staticmethod
    def _check_steps(num_steps: int) -> int:
        if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 1:
            raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
        return num_steps

    def reset_noise(self, seed: int | None) -> None:
        """Re-seed the denoising noise (None: a non-deterministic seed)."""
        self._generator.manual_seed(seed if seed is not None else torch.seed())

    def describe(self) -> dict[str, Any]:
        """A short summary of what was loaded."""
        return {
            "checkpoint": str(self.checkpoint_dir),
            "policy_type": self.policy_type,
            "snapflow": self.is_snapflow,
            "device": self.device,
            "dtype": self.options.dtype,
            "image_keys": self.image_keys,
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "chunk_size": self.chunk_size,
            "default_num_steps": self.default_num_steps,
            "engine": self.options.engine,
        }

    # ------------------------------------------------------------------ observation handling
    def dummy_observation(self) -> Observation:
        """A valid observation of mid-grey images and zero state (for warm-up and smoke tests)."""
        images = {}
        for key in self.image_keys:
            _, height, width = self.config.input_features[key].shape
            images[key] = np.full((height, width, 3), 128, np.uint8)
        return Observation(
            images=images, state=np.zeros(self.state_dim, np.float32), task="warm up"
        )

    def validate(self, obs: Observation) -> dict[str, np.ndarray]:
        """Check ``obs`` against the policy; returns its images keyed by full feature key."""
        images: dict[str, np.ndarray] = {}
        for key, img in obs.images.items():
            full = key if key.startswith(IMAGE_PREFIX) else IMAGE_PREFIX + key
            if full not in self.image_keys:
                raise ObservationError(
                    f"unknown camera {key!r}; the policy expects {self.image_keys}"
                )
            images[full] = img
        missing = [k for k in self.image_keys if k not in images]
        if missing:
            raise ObservationError(
                f"missing cameras {missing}; the policy expects {self.image_keys}"
            )
        for key, img in images.items():
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
                raise ObservationError(
                    f"camera {key}: expected a uint8 numpy array, got {_describe(img)}"
                )
            if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
                raise ObservationError(f"camera {key}: expected HxWx3 RGB, got shape {img.shape}")
        state = np.asarray(obs.state)
        if state.shape != (self.state_dim,):
            raise ObservationError(f"state: expected shape ({self.state_dim},), got {state.shape}")
        if not np.issubdtype(state.dtype, np.number) or not np.all(np.isfinite(state)):
            raise ObservationError("state contains NaN/inf or is not numeric")
        if not isinstance(obs.task, str):
            raise ObservationError(f"task must be a string, got {type(obs.task).__name__}")
        return images

    def _to_batch(self, obs: Observation, images: dict[str, np.ndarray]) -> dict[str, Any]:
        frame: dict[str, Any] = {
            key: torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)
            for key, img in images.items()
        }
        frame[STATE_KEY] = torch.as_tensor(np.asarray(obs.state, np.float32))
        frame["task"] = obs.task
        return self.preprocessor(frame)

    # ------------------------------------------------------------------ inference
    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)

    def _autocast(self):
        if self.options.dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(
            device_type=self.device.split(":")[0], dtype=DTYPES[self.options.dtype]
        )

    @torch.inference_mode()
    def predict_chunk(
        self, obs: Observation, num_steps: int | None = None, noise: torch.Tensor | None = None
    ) -> ActionChunk:
        """Predict an action chunk (H x D, unnormalised) for ``obs`` with ``num_steps`` Euler steps.

        A SnapFlow checkpoint uses its target-time embedding for the jumps it was trained on
        (one step jumps from t=1 to t=0; other step counts use ``s = t`` unless ``1/N`` is in
        ``trained_jumps``); a plain checkpoint asked for 1 step gives the naive one-step
        baseline.
        """
        steps = self._check_steps(num_steps) if num_steps is not None else self.default_num_steps
        start = time.perf_counter()
        images = self.validate(obs)
        batch = self._to_batch(obs, images)
        self._sync()
        t_pre = time.perf_counter()
        with self._autocast():
            inputs = self.adapter.model_inputs(batch)
            cache = self._encode_prefix(inputs)
            ctx = self._fast.prepare(cache) if self._fast is not None else None
            self._sync()
            t_prefix = time.perf_counter()
            if noise is None:
                noise = torch.randn(
                    self.adapter.noise_shape(1),
                    generator=self._generator,
                    device=self.device,
                    dtype=torch.float32,
                )
            noise = noise.to(self.device)
            if self._fast is not None:
                actions = self._fast.sample(cache, ctx, noise, steps)
            else:
                actions = euler_sample(
                    lambda x, t, s: self.adapter.velocity(cache, x, t, s),
                    noise,
                    steps,
                    target_time=self.is_snapflow,
                    trained_jumps=self.trained_jumps,
                )
        self._sync()
        t_denoise = time.perf_counter()
        actions = self.postprocessor(self.adapter.finalize(actions.float()))
        out = actions[0].detach().to("cpu", torch.float32).numpy()
        return finished_chunk(out, obs, steps, (start, t_pre, t_prefix, t_denoise))


def finished_chunk(
    actions: np.ndarray, obs: Observation, steps: int, marks: tuple[float, float, float, float]
) -> ActionChunk:
    """The chunk of ``actions`` (postprocessed, on the CPU) computed from ``obs`` with
    ``steps`` steps, timed by ``marks`` (``perf_counter`` at the start and after the
    preprocessing, the prefix and the denoising; the postprocessing ends now). Raises
    :class:`NonFiniteOutputError` on NaN/inf actions."""
    end = time.perf_counter()
    if not np.all(np.isfinite(actions)):
        raise NonFiniteOutputError("the policy produced NaN/inf actions for this observation")
    start, t_pre, t_prefix, t_denoise = marks
    timings = StageTimings(
        preprocess=t_pre - start,
        prefix=t_prefix - t_pre,
        denoise=t_denoise - t_prefix,
        postprocess=end - t_denoise,
        total=end - start,
    )
    return ActionChunk(actions=actions, stamp=float(obs.stamp), num_steps=steps, timings=timings)


def pad_prompts_to_max_length(preprocessor: Any) -> None:
    """Make the tokenizer step pad every prompt to its max length (static prefix shapes)."""
    found = False
    for step in getattr(preprocessor, "steps", []):
        if hasattr(step, "padding") and hasattr(step, "max_length"):
            step.padding = "max_length"
            found = True
    if not found:
        raise CheckpointError("the checkpoint's preprocessor has no tokenizer step to pad prompts")


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"ndarray dtype={value.dtype} shape={value.shape}"
    return type(value).__name__
