"""The ``onnxruntime`` engine: an exported policy (see :mod:`.onnx_format`) run by ONNX Runtime.

Tokenisation, normalisation and validation stay in Python and are the very code the torch
engines run (the checkpoint's own LeRobot processors, :meth:`PolicyRuntime.validate`), so the
same :class:`Observation` gives the same graph inputs, the same errors on bad input and an
:class:`ActionChunk` with the same timings. The model work runs in ONNX Runtime:

* one step of a SnapFlow export: ``one_step.onnx``, the whole chunk in one graph (its time is
  reported as ``prefix``; ``denoise`` is 0);
* otherwise ``prefix.onnx`` once, then ``expert_step.onnx`` once per Euler step with the same
  ``(t, s)`` schedule as the torch engines (:func:`snapflow_ros.runtime.sampling.step_times`).

Execution providers follow ``device``: ``cpu`` -> CPU; ``cuda`` / ``cuda:N`` -> TensorRT (when
the installed onnxruntime has it, with its engine cache in ``<export>/trt_cache``), then CUDA,
then CPU for what they do not take; ``auto`` -> the GPU providers when present, else CPU.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snapflow_ros.policies import resolve_policy
from snapflow_ros.runtime import checkpoint as ckpt
from snapflow_ros.runtime import onnx_format as fmt
from snapflow_ros.runtime.errors import CheckpointError, ObservationError
from snapflow_ros.runtime.options import RuntimeOptions
from snapflow_ros.runtime.policy_runtime import (
    STATE_KEY,
    PolicyRuntime,
    finished_chunk,
    pad_prompts_to_max_length,
)
from snapflow_ros.runtime.sampling import step_times
from snapflow_ros.runtime.types import ActionChunk, Observation

ENGINE = "onnxruntime"
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
TRT_CACHE_SUBDIR = "trt_cache"


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise CheckpointError(
            "engine 'onnxruntime' needs the onnxruntime package (pip install onnxruntime, "
            "or onnxruntime-gpu for CUDA / TensorRT)"
        ) from exc
    return onnxruntime


def trt_cache_dir(export_dir: Path) -> Path:
    """Where TensorRT keeps its built engines for an export: ``<export>/trt_cache`` when the
    folder is writable, else a per-export folder under ``~/.cache/snapflow_ros``."""
    if os.access(export_dir, os.W_OK):
        return export_dir / TRT_CACHE_SUBDIR
    digest = hashlib.sha256(str(export_dir.resolve()).encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "snapflow_ros" / TRT_CACHE_SUBDIR / digest


def select_providers(
    device: str, available: Sequence[str], export_dir: Path
) -> tuple[list[tuple[str, dict[str, Any]]], str]:
    """ONNX Runtime providers (with options) for ``device``, and the device they resolve to."""
    gpu = "CUDAExecutionProvider" in available
    if device == "auto":
        device = "cuda" if gpu else "cpu"
    if device == "cpu":
        return [("CPUExecutionProvider", {})], "cpu"
    if not device.startswith("cuda"):
        raise CheckpointError(f"unknown device {device!r} (auto, cpu, cuda, cuda:N)")
    if not gpu:
        raise CheckpointError(
            f"device {device!r} requested but onnxruntime has no CUDA provider (available: "
            f"{', '.join(available)}); install onnxruntime-gpu"
        )
    index_text = device.partition(":")[2] or "0"
    if not index_text.isdigit():
        raise CheckpointError(f"unknown device {device!r} (auto, cpu, cuda, cuda:N)")
    index = int(index_text)
    providers: list[tuple[str, dict[str, Any]]] = []
    if "TensorrtExecutionProvider" in available:
        cache = trt_cache_dir(export_dir)
        cache.mkdir(parents=True, exist_ok=True)
        providers.append(
            (
                "TensorrtExecutionProvider",
                {
                    "device_id": index,
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache),
                    "trt_timing_cache_enable": True,
                    "trt_timing_cache_path": str(cache),
                },
            )
        )
    providers.append(("CUDAExecutionProvider", {"device_id": index}))
    providers.append(("CPUExecutionProvider", {}))
    return providers, device


class OnnxGraphs:
    """The ONNX Runtime sessions of an export folder and the chunk computation over them.

    Inputs and outputs are numpy: the graph inputs of the preprocessed batch (by graph input
    name) and noise (1, chunk, max_action_dim); the result is the normalised action chunk
    (1, chunk, action_dim), before the postprocessor.
    """

    def __init__(
        self,
        export_dir: Path,
        manifest: dict[str, Any],
        providers: list[tuple[str, dict[str, Any]]],
        threads: int | None = None,
    ) -> None:
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initializers etc. stay quiet
        if threads:
            options.intra_op_num_threads = threads
        names = [name for name, _ in providers]
        provider_options = [opts for _, opts in providers]
        self.sessions: dict[str, Any] = {}
        for graph in manifest["graphs"]:
            path = export_dir / fmt.GRAPH_FILES[graph]
            try:
                self.sessions[graph] = ort.InferenceSession(
                    str(path), options, providers=names, provider_options=provider_options
                )
            except Exception as exc:  # ORT raises its own exception types for bad files
                raise CheckpointError(f"ONNX Runtime could not load {path}: {exc}") from exc
        self.providers = self.sessions[fmt.PREFIX_GRAPH].get_providers()
        self.action_dim = int(manifest["shapes"]["action_dim"])
        self.snapflow = bool(manifest["snapflow"])
        self._inputs = {
            graph: {i.name for i in session.get_inputs()}
            for graph, session in self.sessions.items()
        }

    @property
    def has_one_step(self) -> bool:
        """True when the export holds the fused one-step graph."""
        return fmt.ONE_STEP_GRAPH in self.sessions

    def _run(self, graph: str, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        wanted = self._inputs[graph]
        return self.sessions[graph].run(None, {k: v for k, v in feed.items() if k in wanted})

    def prefix(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The prefix graph's outputs: padding mask, then keys/values of every layer."""
        return self._run(fmt.PREFIX_GRAPH, inputs)

    def velocity(self, prefix: list[np.ndarray], x_t: np.ndarray, t: float, s: float) -> np.ndarray:
        """One expert pass ``v(x_t, t, s)`` against a prefix graph's outputs."""
        pad_masks, *kv = prefix
        names = fmt.kv_names(len(kv) // 2)
        feed = {
            fmt.PAD_MASKS: pad_masks,
            fmt.X_T_INPUT: x_t,
            fmt.T_INPUT: np.full((x_t.shape[0],), t, np.float32),
            fmt.S_INPUT: np.full((x_t.shape[0],), s, np.float32),
            **dict(zip(names, kv, strict=True)),
        }
        return self._run(fmt.EXPERT_GRAPH, feed)[0]

    def one_step(self, inputs: dict[str, np.ndarray], noise: np.ndarray) -> np.ndarray:
        """The fused one-step graph: normalised actions (1, chunk, action_dim)."""
        return self._run(fmt.ONE_STEP_GRAPH, {**inputs, fmt.NOISE_INPUT: noise})[0]

    def sample(
        self,
        prefix: list[np.ndarray],
        noise: np.ndarray,
        num_steps: int,
        trained_jumps: Sequence[float] | None,
    ) -> np.ndarray:
        """Euler steps from ``noise`` (t=1) to actions (t=0), as the torch engines take them;
        normalised actions with the padding dropped."""
        dt = np.float32(-1.0 / num_steps)
        x = noise
        for t, s in step_times(num_steps, self.snapflow, trained_jumps):
            x = x + dt * self.velocity(prefix, x, t, s)
        return x[:, :, : self.action_dim]


def graph_inputs(batch: dict[str, Any], image_keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The graph inputs (by name) of a preprocessed LeRobot batch."""
    from lerobot.utils.constants import OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS

    def arr(value: torch.Tensor) -> np.ndarray:
        return value.detach().to("cpu").numpy()

    feed = {key: arr(batch[key]).astype(np.float32, copy=False) for key in image_keys}
    if STATE_KEY in batch:
        feed[fmt.STATE_INPUT] = arr(batch[STATE_KEY]).astype(np.float32, copy=False)
    feed[fmt.TOKENS_INPUT] = arr(batch[OBS_LANGUAGE_TOKENS]).astype(np.int64, copy=False)
    feed[fmt.TOKEN_MASK_INPUT] = arr(batch[OBS_LANGUAGE_ATTENTION_MASK]).astype(bool, copy=False)
    return feed


def load_export_processors(
    checkpoint_dir: Path, policy_type: str, vlm_path: str | None, tokenizer_path: str | None
) -> tuple[Any, Any, Any]:
    """Config and pre/post-processors of an export's weightless checkpoint copy (on the CPU),
    with the same local VLM / tokenizer folders :func:`checkpoint.load_checkpoint` uses."""
    vlm_dir = None
    if vlm_path:
        what = "a local VLM folder (its config.json, tokenizer and processor files)"
        vlm_dir = ckpt.local_folder(vlm_path, "vlm_path", "config.json", what)
    tokenizer_override = None
    if tokenizer_path:
        tokenizer_override = ckpt.local_folder(
            tokenizer_path, "tokenizer_path", "tokenizer_config.json", "a local tokenizer folder"
        )
    elif policy_type == "smolvla" and vlm_dir and (vlm_dir / "tokenizer_config.json").is_file():
        tokenizer_override = vlm_dir
    if vlm_dir is None and (checkpoint_dir / "vlm" / "config.json").is_file():
        vlm_dir = checkpoint_dir / "vlm"
    config = ckpt.load_policy_config(checkpoint_dir, policy_type, "cpu", vlm_dir)
    tokenizer_dir = ckpt.local_tokenizer_dir(checkpoint_dir, policy_type, tokenizer_override)
    pre, post = ckpt.load_processors(config, checkpoint_dir, "cpu", tokenizer_dir)
    pad_prompts_to_max_length(pre)
    return config, pre, post


class OnnxPolicyRuntime(PolicyRuntime):
    """A :class:`PolicyRuntime` whose model passes run in ONNX Runtime (``engine:
    onnxruntime``); ``checkpoint`` is an export folder written by ``snapflow_export``.

    ``PolicyRuntime(path, RuntimeOptions(engine="onnxruntime"))`` returns one of these.
    There is no torch model: ``policy`` and ``adapter`` are None.
    """

    def __init__(self, checkpoint: str | Path, options: RuntimeOptions | None = None) -> None:
        self.options = options or RuntimeOptions(engine=ENGINE)
        self.options.check()
        if self.options.engine != ENGINE:
            raise CheckpointError(f"OnnxPolicyRuntime runs engine {ENGINE!r}")
        export_dir = resolve_policy(checkpoint)
        self.export_dir = export_dir
        self.manifest = fmt.read_manifest(export_dir)
        self.checkpoint_dir = export_dir / fmt.CHECKPOINT_SUBDIR
        self.policy_type = ckpt.read_policy_type(self.checkpoint_dir)
        self.snapflow = ckpt.SnapFlowMeta.read(self.checkpoint_dir)
        providers, self.device = select_providers(
            self.options.device, _onnxruntime().get_available_providers(), export_dir
        )
        self.config, self.preprocessor, self.postprocessor = load_export_processors(
            self.checkpoint_dir,
            self.policy_type,
            self.options.vlm_path,
            self.options.tokenizer_path,
        )
        self.policy = None
        self.adapter = None
        self._fast = None
        self.graphs = OnnxGraphs(export_dir, self.manifest, providers, torch.get_num_threads())
        self.image_keys = list(self.config.image_features)
        self.state_dim = int(self.config.input_features[STATE_KEY].shape[0])
        self.action_dim = int(self.config.output_features["action"].shape[0])
        self.chunk_size = int(self.config.chunk_size)
        self.default_num_steps = self._default_steps()
        self._noise_shape = (1, self.chunk_size, int(self.config.max_action_dim))
        self._generator = torch.Generator(device="cpu")
        self.reset_noise(self.options.seed)
        for _ in range(max(0, self.options.warmup)):
            self.predict_chunk(self.dummy_observation())
        self.reset_noise(self.options.seed)

    def validate(self, obs: Observation) -> dict[str, np.ndarray]:
        """:meth:`PolicyRuntime.validate`, and the image sizes the graphs were exported for
        (the torch engines resize any size; an exported graph's shapes are fixed)."""
        images = super().validate(obs)
        for key, img in images.items():
            _, height, width = self.manifest["shapes"]["images"][key]
            if img.shape[:2] != (height, width):
                raise ObservationError(
                    f"camera {key}: the exported graphs take {height}x{width} images, got "
                    f"{img.shape[0]}x{img.shape[1]} (export again for another size)"
                )
        return images

    def describe(self) -> dict[str, Any]:
        """A short summary of what was loaded (the torch engines' keys, plus the export)."""
        return {
            **super().describe(),
            "export": str(self.export_dir),
            "providers": list(self.graphs.providers),
        }

    def predict_chunk(
        self, obs: Observation, num_steps: int | None = None, noise: torch.Tensor | None = None
    ) -> ActionChunk:
        """Predict an action chunk as :meth:`PolicyRuntime.predict_chunk` does, in ONNX Runtime."""
        steps = self._check_steps(num_steps) if num_steps is not None else self.default_num_steps
        start = time.perf_counter()
        images = self.validate(obs)
        with torch.inference_mode():
            batch = self._to_batch(obs, images)
            inputs = graph_inputs(batch, self.image_keys)
            if noise is None:
                noise = torch.randn(
                    self._noise_shape, generator=self._generator, dtype=torch.float32
                )
        noise_np = noise.detach().to("cpu", torch.float32).numpy()
        t_pre = time.perf_counter()
        if steps == 1 and self.graphs.has_one_step:
            actions = self.graphs.one_step(inputs, noise_np)
            t_prefix = t_denoise = time.perf_counter()
        else:
            prefix = self.graphs.prefix(inputs)
            t_prefix = time.perf_counter()
            actions = self.graphs.sample(prefix, noise_np, steps, self.trained_jumps)
            t_denoise = time.perf_counter()
        with torch.inference_mode():
            out_t = self.postprocessor(torch.from_numpy(np.ascontiguousarray(actions)))
        out = out_t[0].detach().to("cpu", torch.float32).numpy()
        return finished_chunk(out, obs, steps, (start, t_pre, t_prefix, t_denoise))
