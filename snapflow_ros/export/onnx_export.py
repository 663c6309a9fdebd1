"""Export a checkpoint to ONNX graphs and check them against the torch ``fast`` engine.

:func:`export_policy` writes an export folder (layout: :mod:`snapflow_ros.runtime.onnx_format`):
the prefix graph and the expert-step graph for every checkpoint, and for a SnapFlow checkpoint
also the whole one-step chunk as ONE graph. Shapes are fixed from the checkpoint (cameras and
image sizes, prompt length, chunk size, state and action widths; batch 1). Tokenisation and
(un)normalisation stay in Python (pi0.5 writes its discretised state into the prompt, so its
token ids change with every observation).

Parity, always: before the folder is put in place, every graph output is compared with the
same torch computation on the same inputs, and whole chunks run through ONNX Runtime (1 step
and the checkpoint's default and configured step counts) with the torch ``fast`` engine's
chunks for the same observation and noise. The max abs difference of each is written to
``export.json``. The export is refused (:class:`ParityError`, nothing left at ``out``) when one
exceeds its tolerance.

Tolerance, derived from float32: ``tol = ULP_BUDGET * 2**-23 * max(1, max|reference|)``, i.e.
1024 float32 epsilons of the output's scale (1.2e-4 for outputs within [-1, 1]).

* The graphs compute the same float32 operations as torch in another order (other matmul
  blocking, fused or decomposed kernels, another reduction order). Each operation's result
  then differs by a few units in its last place, relative to the magnitude of its terms.
* Those differences add up along the graph's depth (tens of layers, each a few dependent
  reductions) and normalisations and softmax pass them on at the scale of their inputs: a few
  hundred ulps at the outputs is what a correct export may show. 1024 ulps leaves a margin
  above that (measured: chunks 2-30 ulps; the KV cache of the full-size SmolVLA's 16 layers
  up to 290 ulps) while a wrong graph (a missing term, a wrong weight, a different mask) is
  off by orders of magnitude more (a weight scaled by 1.01 fails, tested).
* The scale is ``max(1, max|reference|)``: the error of a sum is relative to its terms, not to
  its result, so outputs near zero get the absolute bound of unit-scale ones.
* N Euler steps add N velocity errors each weighted by ``1/N``: the same bound holds for
  whole chunks. The postprocessor multiplies by the action standard deviation, which the
  scale of the unnormalised reference already carries.
* Boolean outputs (the prefix padding mask) must match exactly.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snapflow_ros.export.graph_passes import optimize_graph_file
from snapflow_ros.export.graphs import ExpertStepGraph, OneStepGraph, PrefixGraph
from snapflow_ros.runtime import onnx_format as fmt
from snapflow_ros.runtime.checkpoint import MODEL_WEIGHTS
from snapflow_ros.runtime.errors import PolicyRuntimeError
from snapflow_ros.runtime.onnx_engine import OnnxGraphs, graph_inputs
from snapflow_ros.runtime.options import RuntimeOptions
from snapflow_ros.runtime.policy_runtime import STATE_KEY, PolicyRuntime
from snapflow_ros.runtime.sampling import step_times
from snapflow_ros.runtime.target_time import TARGET_TIME_WEIGHTS
from snapflow_ros.runtime.types import Observation

LOG = logging.getLogger(__name__)

OPSET = 18
FLOAT32_EPS = 2.0**-23
ULP_BUDGET = 1024
PARITY_SEED = 0
PARITY_TASK = "pick up the object and place it in the basket"
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
VERSIONED = ("torch", "onnx", "onnxruntime", "onnxscript", "lerobot", "transformers")


class ExportError(PolicyRuntimeError):
    """A checkpoint that cannot be exported, or an output folder that cannot be written."""


class ParityError(ExportError):
    """The exported graphs disagree with the torch engine beyond the float32 tolerance."""


def tolerance(reference: np.ndarray, ulps: float = ULP_BUDGET) -> float:
    """The float32-derived bound for an output (see the module docstring)."""
    scale = max(1.0, float(np.max(np.abs(reference)))) if reference.size else 1.0
    return float(ulps) * FLOAT32_EPS * scale


@dataclass
class ParityRow:
    """One compared output: its max abs difference and the bound it had to stay within."""

    name: str
    max_abs_diff: float
    tolerance: float
    scale: float

    @property
    def passed(self) -> bool:
        """Within tolerance (and finite)."""
        return bool(np.isfinite(self.max_abs_diff)) and self.max_abs_diff <= self.tolerance

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "scale": self.scale,
            "passed": self.passed,
        }


def compare(name: str, got: np.ndarray, want: np.ndarray, ulps: float) -> ParityRow:
    """Max abs difference of ``got`` against the torch ``want`` and its tolerance."""
    if got.shape != want.shape:
        return ParityRow(name, float("inf"), 0.0, 0.0)
    if want.dtype == np.bool_:
        return ParityRow(name, float(np.count_nonzero(got != want)), 0.0, 1.0)
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    return ParityRow(name, float(diff.max()) if diff.size else 0.0, tolerance(want, ulps), scale)


def parity_observation(runtime: PolicyRuntime, seed: int = PARITY_SEED) -> Observation:
    """A fixed random observation of the checkpoint's cameras and state."""
    rng = np.random.default_rng(seed)
    images = {}
    for key in runtime.image_keys:
        _, height, width = runtime.config.input_features[key].shape
        images[key] = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    state = rng.normal(size=runtime.state_dim).astype(np.float32)
    return Observation(images=images, state=state, task=PARITY_TASK)


def parity_noise(runtime: PolicyRuntime, seed: int = PARITY_SEED) -> torch.Tensor:
    """Fixed noise of the checkpoint's chunk shape."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(runtime.adapter.noise_shape(1), generator=gen, dtype=torch.float32)


def _torch_inputs(runtime: PolicyRuntime, obs: Observation) -> list[torch.Tensor]:
    """The graph inputs of ``obs`` as torch tensors, in graph input order."""
    from lerobot.utils.constants import OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS

    batch = runtime._to_batch(obs, runtime.validate(obs))
    tensors = [batch[key] for key in runtime.image_keys]
    if runtime.policy_type == "smolvla":
        tensors.append(batch[STATE_KEY])
    tensors += [batch[OBS_LANGUAGE_TOKENS], batch[OBS_LANGUAGE_ATTENTION_MASK]]
    return tensors


def _input_names(runtime: PolicyRuntime) -> list[str]:
    names = list(runtime.image_keys)
    if runtime.policy_type == "smolvla":
        names.append(fmt.STATE_INPUT)
    return [*names, fmt.TOKENS_INPUT, fmt.TOKEN_MASK_INPUT]


def _export(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    opset: int,
    passes: bool,
) -> dict[str, int] | None:
    """Export ``module`` to ``path`` (weights as external data), then (``passes``) apply the
    exact graph clean-ups of :mod:`snapflow_ros.export.graph_passes`; returns what they
    removed (None: not applied)."""
    with torch.no_grad():
        program = torch.onnx.export(
            module.eval(),
            args,
            dynamo=True,
            opset_version=opset,
            input_names=input_names,
            output_names=output_names,
            verbose=False,
        )
    program.save(str(path), external_data=True)
    return optimize_graph_file(path) if passes else None


def _copy_checkpoint(source: Path, dest: Path) -> None:
    """The checkpoint without its weights: what tokenisation and (un)normalisation need."""

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [
            n
            for n in names
            if n in (MODEL_WEIGHTS, TARGET_TIME_WEIGHTS) or n.endswith(WEIGHT_SUFFIXES)
        ]

    shutil.copytree(source, dest, ignore=ignore)


def _io_specs(session: Any) -> dict[str, list[dict[str, Any]]]:
    def spec(values: Sequence[Any]) -> list[dict[str, Any]]:
        return [{"name": v.name, "shape": list(v.shape), "type": v.type} for v in values]

    return {"inputs": spec(session.get_inputs()), "outputs": spec(session.get_outputs())}


def _versions() -> dict[str, str]:
    found = {}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def step_counts(runtime: PolicyRuntime) -> list[int]:
    """The step counts whole chunks are checked at: 1, the default and the configured one."""
    return sorted({1, runtime.default_num_steps, runtime.configured_num_steps})


def check_parity(
    runtime: PolicyRuntime,
    export_dir: Path,
    manifest: dict[str, Any],
    ulps: float = ULP_BUDGET,
    seed: int = PARITY_SEED,
) -> list[ParityRow]:
    """Compare every graph of ``export_dir`` with ``runtime`` (a torch ``fast`` engine of the
    exported checkpoint) on one fixed observation and noise; one row per compared output."""
    obs = parity_observation(runtime, seed)
    noise = parity_noise(runtime, seed)
    graphs = OnnxGraphs(export_dir, manifest, [("CPUExecutionProvider", {})])
    with torch.inference_mode():
        tensors = _torch_inputs(runtime, obs)
        batch = runtime._to_batch(obs, runtime.validate(obs))
    feed = graph_inputs(batch, runtime.image_keys)
    with_state = runtime.policy_type == "smolvla"
    rows = []
    # the prefix graph
    prefix_out = graphs.prefix(feed)
    with torch.inference_mode():
        prefix_ref = PrefixGraph(runtime.adapter, runtime.image_keys, with_state)(*tensors)
    names = [fmt.PAD_MASKS, *fmt.kv_names((len(prefix_ref) - 1) // 2)]
    for name, got, want in zip(names, prefix_out, prefix_ref, strict=True):
        rows.append(compare(f"{fmt.PREFIX_GRAPH}/{name}", got, want.numpy(), ulps))
    # the expert step at the first step of the one-step schedule, against the torch cache
    (t, s), *_ = step_times(1, runtime.is_snapflow, runtime.trained_jumps)
    got_v = graphs.velocity(prefix_out, noise.numpy(), t, s)
    with torch.inference_mode():
        t_vec, s_vec = torch.full((1,), t), torch.full((1,), s)
        expert = ExpertStepGraph(runtime.adapter, runtime.image_keys, with_state)
        want_v = expert(prefix_ref[0], noise, t_vec, s_vec, *prefix_ref[1:])
    rows.append(compare(f"{fmt.EXPERT_GRAPH}/{fmt.VELOCITY_OUTPUT}", got_v, want_v.numpy(), ulps))
    # the fused one-step graph
    if graphs.has_one_step:
        with torch.inference_mode():
            cond = runtime._fast.table(1, noise).conds[0]
            fused = OneStepGraph(runtime.adapter, runtime.image_keys, with_state, cond)
            want = fused(*tensors, noise).numpy()
        got = graphs.one_step(feed, noise.numpy())
        rows.append(compare(f"{fmt.ONE_STEP_GRAPH}/{fmt.ACTIONS_OUTPUT}", got, want, ulps))
    # whole chunks through ONNX Runtime against the fast engine's chunks
    for steps in step_counts(runtime):
        want = runtime.predict_chunk(obs, num_steps=steps, noise=noise).actions
        paths = [("pair", False)]
        if steps == 1 and graphs.has_one_step:
            paths.append(("one_step", True))
        for label, fused_path in paths:
            if fused_path:
                normalised = graphs.one_step(feed, noise.numpy())
            else:
                normalised = graphs.sample(
                    graphs.prefix(feed), noise.numpy(), steps, runtime.trained_jumps
                )
            with torch.inference_mode():
                got = runtime.postprocessor(torch.from_numpy(normalised))[0].numpy()
            rows.append(compare(f"chunk/{steps}_step/{label}", got, want, ulps))
    return rows


def _parity_section(rows: list[ParityRow], ulps: float, seed: int) -> dict[str, Any]:
    return {
        "passed": all(row.passed for row in rows),
        "reference": "torch engine 'fast' (float32, CPU)",
        "tolerance_rule": f"{ulps:g} * 2**-23 * max(1, max|reference|); booleans exact",
        "ulps": ulps,
        "seed": seed,
        "task": PARITY_TASK,
        "outputs": {row.name: row.as_dict() for row in rows},
    }


def _failures(rows: list[ParityRow]) -> str:
    return "; ".join(
        f"{row.name}: max abs diff {row.max_abs_diff:.3g} > tolerance {row.tolerance:.3g}"
        for row in rows
        if not row.passed
    )


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out} exists and is not empty (pass overwrite / --overwrite)")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _put_in_place(tmp: Path, out: Path) -> None:
    """Rename the finished export to ``out`` (replacing what is there)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{time.time_ns()}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_policy(
    checkpoint: str | Path,
    out: str | Path,
    *,
    vlm_path: str | None = None,
    tokenizer_path: str | None = None,
    ulps: float = ULP_BUDGET,
    overwrite: bool = False,
    opset: int = OPSET,
    one_step: bool | None = None,
    graph_passes: bool = True,
    log: Callable[[str], None] = LOG.info,
) -> dict[str, Any]:
    """Export ``checkpoint`` to the folder ``out`` and check it; returns the manifest.

    ``one_step``: also write the fused one-step graph (default: for SnapFlow checkpoints).
    ``graph_passes``: apply the exact graph clean-ups (default; off only to measure them).
    ``ulps``: the parity budget in float32 epsilons (see the module docstring).
    Raises :class:`ParityError` (nothing written at ``out``) when a graph disagrees with the
    torch engine beyond tolerance, :class:`ExportError` / ``CheckpointError`` when the
    checkpoint cannot be exported or ``out`` is in the way.
    """
    out = Path(out).expanduser().absolute()
    _check_out(out, overwrite)
    started = time.perf_counter()
    options = RuntimeOptions(
        device="cpu",
        engine="fast",
        warmup=0,
        seed=PARITY_SEED,
        vlm_path=vlm_path,
        tokenizer_path=tokenizer_path,
    )
    runtime = PolicyRuntime(checkpoint, options)
    if getattr(runtime.config, "adapt_to_pi_aloha", False):
        raise ExportError("adapt_to_pi_aloha checkpoints are not supported by the ONNX export")
    fused = runtime.is_snapflow if one_step is None else one_step
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp's folder is private; an export is an ordinary one
    try:
        manifest = _write_export(runtime, tmp, fused, opset, graph_passes, log)
        log("checking parity against the torch 'fast' engine")
        rows = check_parity(runtime, tmp, manifest, ulps)
        manifest["parity"] = _parity_section(rows, ulps, PARITY_SEED)
        manifest["export_seconds"] = round(time.perf_counter() - started, 1)
        (tmp / fmt.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if not manifest["parity"]["passed"]:
            raise ParityError(
                f"the export of {runtime.checkpoint_dir} disagrees with the torch engine: "
                f"{_failures(rows)} (float32 budget {ulps:g} ulps of each output's scale); "
                f"nothing was written to {out}"
            )
        _put_in_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _write_export(
    runtime: PolicyRuntime,
    folder: Path,
    fused: bool,
    opset: int,
    graph_passes: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Write the graphs and the weightless checkpoint copy; the manifest without parity."""
    import onnxruntime as ort

    _copy_checkpoint(runtime.checkpoint_dir, folder / fmt.CHECKPOINT_SUBDIR)
    obs = parity_observation(runtime)
    noise = parity_noise(runtime)
    with_state = runtime.policy_type == "smolvla"
    with torch.inference_mode():
        tensors = _torch_inputs(runtime, obs)
    tensors = [t.clone() for t in tensors]  # plain tensors for torch.export
    names = _input_names(runtime)
    prefix = PrefixGraph(runtime.adapter, runtime.image_keys, with_state)
    with torch.no_grad():
        prefix_out = prefix(*tensors)
    kv = fmt.kv_names((len(prefix_out) - 1) // 2)
    graphs = [fmt.PREFIX_GRAPH, fmt.EXPERT_GRAPH] + ([fmt.ONE_STEP_GRAPH] if fused else [])
    passes = {}
    log(f"exporting {fmt.GRAPH_FILES[fmt.PREFIX_GRAPH]}")
    passes[fmt.PREFIX_GRAPH] = _export(
        prefix, tuple(tensors), folder / fmt.GRAPH_FILES[fmt.PREFIX_GRAPH], names,
        [fmt.PAD_MASKS, *kv], opset, graph_passes,
    )  # fmt: skip
    log(f"exporting {fmt.GRAPH_FILES[fmt.EXPERT_GRAPH]}")
    expert = ExpertStepGraph(runtime.adapter, runtime.image_keys, with_state)
    t_vec, s_vec = torch.ones(1), torch.zeros(1)
    passes[fmt.EXPERT_GRAPH] = _export(
        expert,
        (prefix_out[0], noise, t_vec, s_vec, *prefix_out[1:]),
        folder / fmt.GRAPH_FILES[fmt.EXPERT_GRAPH],
        [fmt.PAD_MASKS, fmt.X_T_INPUT, fmt.T_INPUT, fmt.S_INPUT, *kv],
        [fmt.VELOCITY_OUTPUT],
        opset,
        graph_passes,
    )
    if fused:
        log(f"exporting {fmt.GRAPH_FILES[fmt.ONE_STEP_GRAPH]}")
        with torch.inference_mode():
            cond = runtime._fast.table(1, noise).conds[0].clone()
        one = OneStepGraph(runtime.adapter, runtime.image_keys, with_state, cond)
        passes[fmt.ONE_STEP_GRAPH] = _export(
            one, (*tensors, noise), folder / fmt.GRAPH_FILES[fmt.ONE_STEP_GRAPH],
            [*names, fmt.NOISE_INPUT], [fmt.ACTIONS_OUTPUT], opset, graph_passes,
        )  # fmt: skip
    specs = {}
    for graph in graphs:
        path = folder / fmt.GRAPH_FILES[graph]
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        files = sorted(p.name for p in folder.iterdir() if p.name.startswith(path.name))
        size = sum((folder / f).stat().st_size for f in files)
        specs[graph] = {"files": files, "bytes": size, **_io_specs(session)}
    config = runtime.config
    return {
        "format": fmt.FORMAT,
        "format_version": fmt.FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_checkpoint": str(runtime.checkpoint_dir),
        "policy_type": runtime.policy_type,
        "snapflow": runtime.is_snapflow,
        "default_num_steps": runtime.default_num_steps,
        "configured_num_steps": runtime.configured_num_steps,
        "opset": opset,
        "dtype": "float32",
        "batch_size": 1,
        "shapes": {
            "images": {k: list(config.input_features[k].shape) for k in runtime.image_keys},
            "state_dim": runtime.state_dim,
            "prompt_length": int(tensors[-1].shape[1]),
            "chunk_size": runtime.chunk_size,
            "action_dim": runtime.action_dim,
            "max_action_dim": int(noise.shape[2]),
            "kv_layers": len(kv) // 2,
        },
        "graphs": specs,
        "graph_passes": passes if graph_passes else None,
        "versions": _versions(),
    }


def verify_export(
    export_dir: str | Path,
    checkpoint: str | Path,
    *,
    vlm_path: str | None = None,
    tokenizer_path: str | None = None,
    ulps: float = ULP_BUDGET,
) -> list[ParityRow]:
    """Check an existing export folder against ``checkpoint`` again (the same comparisons as at
    export); raises :class:`ParityError` naming the outputs beyond tolerance."""
    folder = Path(export_dir)
    manifest = fmt.read_manifest(folder)
    options = RuntimeOptions(
        device="cpu",
        engine="fast",
        warmup=0,
        seed=PARITY_SEED,
        vlm_path=vlm_path,
        tokenizer_path=tokenizer_path,
    )
    rows = check_parity(PolicyRuntime(checkpoint, options), folder, manifest, ulps)
    if not all(row.passed for row in rows):
        raise ParityError(f"{folder} disagrees with {checkpoint}: {_failures(rows)}")
    return rows
