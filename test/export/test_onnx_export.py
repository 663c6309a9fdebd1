"""ONNX export (graphs, parity, refusal) and the onnxruntime engine, on tiny SmolVLA and pi0.5."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from snapflow_ros.export import cli
from snapflow_ros.export.onnx_export import (
    ULP_BUDGET,
    ParityError,
    export_policy,
    tolerance,
    verify_export,
)
from snapflow_ros.runtime import (
    CheckpointError,
    ObservationError,
    PolicyRuntime,
    RuntimeOptions,
)
from snapflow_ros.runtime import onnx_format as fmt
from snapflow_ros.runtime.onnx_engine import OnnxPolicyRuntime, select_providers

from ..runtime.helpers import make_observation, make_snapflow_copy

SHORT, LONG = "pick", "pick up the red block and put it in the bowl on the left"
FLOAT32_BOUND = ULP_BUDGET * 2.0**-23  # the export's parity bound at unit scale


def _fast(path: Path, **kw) -> PolicyRuntime:
    return PolicyRuntime(path, RuntimeOptions(device="cpu", engine="fast", warmup=0, **kw))


def _onnx(path: Path, **kw) -> PolicyRuntime:
    return PolicyRuntime(path, RuntimeOptions(device="cpu", engine="onnxruntime", **kw))


def _noise(rt: PolicyRuntime, seed: int = 1) -> torch.Tensor:
    shape = (1, rt.chunk_size, int(rt.config.max_action_dim))
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=["smolvla", "pi05"])
def snapflow_export(request, tiny_cache, tmp_path_factory):
    """(SnapFlow checkpoint, its export folder, the manifest export_policy returned)."""
    from snapflow_ros.policies.tiny import TinySpec, ensure_tiny_checkpoint

    plain = ensure_tiny_checkpoint(TinySpec(policy_type=request.param), tiny_cache)
    root = tmp_path_factory.mktemp(f"onnx_{request.param}")
    snap = make_snapflow_copy(_fast(plain), plain, root / "snap", scale=0.5)
    manifest = export_policy(snap, root / "export")
    return snap, root / "export", manifest


@pytest.fixture(scope="module")
def plain_export(tiny_smolvla_dir, tmp_path_factory):
    """(plain tiny SmolVLA checkpoint, its export folder), written by the command line."""
    out = tmp_path_factory.mktemp("onnx_plain") / "export"
    assert cli.main([str(tiny_smolvla_dir), str(out)]) == 0
    return tiny_smolvla_dir, out


@pytest.mark.numerics  # parity with torch, also on other float kernels
def test_export_writes_one_step_graph_pair_and_parity(snapflow_export):
    snap, out, manifest = snapflow_export
    assert json.loads((out / fmt.MANIFEST).read_text()) == manifest
    assert set(manifest["graphs"]) == {fmt.PREFIX_GRAPH, fmt.EXPERT_GRAPH, fmt.ONE_STEP_GRAPH}
    for graph in manifest["graphs"]:
        assert (out / fmt.GRAPH_FILES[graph]).is_file()
        onnx.checker.check_model(str(out / fmt.GRAPH_FILES[graph]))
    one_step = manifest["graphs"][fmt.ONE_STEP_GRAPH]
    names = [i["name"] for i in one_step["inputs"]]
    assert names[-1] == fmt.NOISE_INPUT and (fmt.STATE_INPUT in names) == (
        manifest["policy_type"] == "smolvla"
    )  # pi0.5's state is in its prompt
    assert one_step["outputs"][0]["shape"] == [1, 10, 7]
    parity = manifest["parity"]["outputs"]
    assert parity["chunk/1_step/one_step"] and parity["chunk/10_step/pair"]
    assert parity[f"{fmt.PREFIX_GRAPH}/{fmt.PAD_MASKS}"]["max_abs_diff"] == 0
    for name, row in parity.items():
        assert row["max_abs_diff"] <= row["tolerance"], name
    assert manifest["parity"]["passed"]
    # SmolVLA's vision encoder: its constant-mask NaN guards were removed before parity
    removed = manifest["graph_passes"]
    vision_guards = 2 if manifest["policy_type"] == "smolvla" else 0  # tiny: 2 vision layers
    for graph in (fmt.PREFIX_GRAPH, fmt.ONE_STEP_GRAPH):
        assert removed[graph] == {"nan_guards": vision_guards, "zero_masks": vision_guards}
        ops = {n.op_type for n in onnx.load(str(out / fmt.GRAPH_FILES[graph])).graph.node}
        assert "IsNaN" not in ops
    copied = out / fmt.CHECKPOINT_SUBDIR
    assert (copied / "config.json").is_file() and (copied / "snapflow.json").is_file()
    assert not (copied / "model.safetensors").exists()  # the weights are in the graphs
    assert not list(out.parent.glob(".export.partial-*"))


def test_tolerance_is_float32_budget_of_the_output_scale():
    assert tolerance(np.array([0.25, -0.5])) == pytest.approx(1024 * 2.0**-23)
    assert tolerance(np.array([4.0, -8.0])) == pytest.approx(8 * 1024 * 2.0**-23)


@pytest.mark.numerics  # parity with torch, also on other float kernels
def test_onnxruntime_engine_matches_fast_engine(snapflow_export):
    snap, out, _ = snapflow_export
    ort_rt, fast = _onnx(out, warmup=1), _fast(snap)
    assert isinstance(ort_rt, OnnxPolicyRuntime) and isinstance(ort_rt, PolicyRuntime)
    assert ort_rt.policy is None  # no torch model: the graphs do the work
    described = ort_rt.describe()
    assert described["engine"] == "onnxruntime" and described["providers"] == [
        "CPUExecutionProvider"
    ]
    for key in ("image_keys", "state_dim", "action_dim", "chunk_size", "default_num_steps"):
        assert described[key] == fast.describe()[key], key
    for seed, task in ((3, SHORT), (4, LONG)):
        obs = make_observation(fast, seed=seed, task=task)
        for steps in (1, 2, 10):
            noise = _noise(fast, seed)
            got = ort_rt.predict_chunk(obs, num_steps=steps, noise=noise)
            want = fast.predict_chunk(obs, num_steps=steps, noise=noise)
            scale = max(1.0, float(np.abs(want.actions).max()))
            assert got.actions.shape == want.actions.shape and got.actions.dtype == np.float32
            bound = FLOAT32_BOUND * scale
            np.testing.assert_allclose(got.actions, want.actions, rtol=0, atol=bound)
            assert (got.num_steps, got.stamp) == (steps, obs.stamp)
            assert got.timings.total > 0 and got.timings.prefix > 0
            # one step runs the fused graph (all in `prefix`), more steps the expert graph
            assert (got.timings.denoise == 0) == (steps == 1)


@pytest.mark.numerics  # parity with torch, also on other float kernels
def test_seeded_noise_gives_the_fast_engines_chunks(snapflow_export):
    snap, out, _ = snapflow_export
    ort_rt, fast = _onnx(out, warmup=0, seed=7), _fast(snap, seed=7)
    obs = make_observation(fast, seed=5)
    for _ in range(2):  # the same stream of noise, chunk after chunk
        got, want = ort_rt.predict_chunk(obs), fast.predict_chunk(obs)
        np.testing.assert_allclose(got.actions, want.actions, rtol=0, atol=FLOAT32_BOUND * 4)


@pytest.mark.numerics  # parity with torch, also on other float kernels
def test_plain_checkpoint_exports_the_pair_for_n_steps_and_the_naive_step(plain_export):
    plain, out = plain_export
    manifest = json.loads((out / fmt.MANIFEST).read_text())
    assert set(manifest["graphs"]) == {fmt.PREFIX_GRAPH, fmt.EXPERT_GRAPH}
    assert not manifest["snapflow"] and manifest["parity"]["passed"]
    ort_rt, fast = _onnx(out, warmup=0), _fast(plain)
    assert ort_rt.default_num_steps == fast.default_num_steps == 10
    obs = make_observation(fast, seed=2)
    for steps in (1, 10):
        noise = _noise(fast)
        got = ort_rt.predict_chunk(obs, num_steps=steps, noise=noise)
        want = fast.predict_chunk(obs, num_steps=steps, noise=noise)
        np.testing.assert_allclose(got.actions, want.actions, rtol=0, atol=FLOAT32_BOUND * 4)
        assert got.timings.denoise > 0


BAD_OBSERVATIONS = [
    lambda o: o.images.pop(next(iter(o.images))),
    lambda o: o.images.__setitem__("observation.images.top", o.images[next(iter(o.images))]),
    lambda o: o.images.__setitem__(next(iter(o.images)), np.zeros((48, 64, 3), np.float32)),
    lambda o: o.images.__setitem__(next(iter(o.images)), np.zeros((48, 64, 4), np.uint8)),
    lambda o: setattr(o, "state", np.zeros(3, np.float32)),
    lambda o: setattr(o, "state", np.full(8, np.nan, np.float32)),
    lambda o: setattr(o, "task", None),
]


def test_bad_observations_raise_the_torch_engines_errors(plain_export):
    plain, out = plain_export
    ort_rt, fast = _onnx(out, warmup=0), _fast(plain)
    for mutate in BAD_OBSERVATIONS:
        obs = make_observation(fast)
        mutate(obs)
        with pytest.raises(ObservationError) as want:
            fast.predict_chunk(obs)
        with pytest.raises(ObservationError) as got:
            ort_rt.predict_chunk(obs)
        assert str(got.value) == str(want.value)
    obs = make_observation(fast)
    key = next(iter(obs.images))
    obs.images[key] = np.zeros((64, 64, 3), np.uint8)  # torch resizes; the graph is fixed
    with pytest.raises(ObservationError, match="exported graphs take 48x64 images, got 64x64"):
        ort_rt.predict_chunk(obs)
    assert np.all(np.isfinite(ort_rt.predict_chunk(make_observation(fast)).actions))


def test_too_tight_tolerance_refuses_and_leaves_nothing(tiny_smolvla_dir, tmp_path):
    out = tmp_path / "export"
    with pytest.raises(ParityError, match="disagrees with the torch engine") as info:
        export_policy(tiny_smolvla_dir, out, ulps=0)
    assert "nothing was written" in str(info.value)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no half-written temporary folder either


def _tamper(graph_path: Path) -> None:
    """Scale the largest float weight of a graph by 1.01, as a corrupted export would be."""
    model = onnx.load(str(graph_path))
    weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
    target = max(weights, key=lambda t: int(np.prod(t.dims)))
    target.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(target) * 1.01, target.name))
    data = graph_path.name + ".data"
    (graph_path.parent / data).unlink()
    onnx.save_model(model, str(graph_path), save_as_external_data=True, location=data)


def test_tampered_graph_fails_verification(plain_export, tmp_path):
    plain, out = plain_export
    assert verify_export(out, plain)  # the untouched export passes
    copy = shutil.copytree(out, tmp_path / "tampered")
    _tamper(copy / fmt.GRAPH_FILES[fmt.EXPERT_GRAPH])
    with pytest.raises(ParityError, match="expert_step/velocity: max abs diff") as info:
        verify_export(copy, plain)
    assert "prefix/" not in str(info.value)  # only what the tampered graph computes


def test_refusals(plain_export, tmp_path):
    plain, out = plain_export
    with pytest.raises(CheckpointError, match="is an ONNX export: run it with engine"):
        _fast(out)
    with pytest.raises(CheckpointError, match="is not an ONNX export"):
        _onnx(plain)
    with pytest.raises(CheckpointError, match="dtype must be float32"):
        _onnx(out, dtype="bfloat16")
    with pytest.raises(CheckpointError, match="no CUDA provider"):
        select_providers("cuda", ["CPUExecutionProvider"], out)
    providers, device = select_providers(
        "auto", ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        tmp_path,
    )  # fmt: skip
    assert device == "cuda" and [p for p, _ in providers] == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
    ]  # fmt: skip
    assert providers[0][1]["trt_engine_cache_enable"]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        export_policy(plain, busy)
    assert (busy / "keep.txt").read_text() == "x"
    failed = json.loads((out / fmt.MANIFEST).read_text())
    failed["parity"]["passed"] = False
    bad = shutil.copytree(out, tmp_path / "failed")
    (bad / fmt.MANIFEST).write_text(json.dumps(failed))
    with pytest.raises(CheckpointError, match="did not pass its parity check"):
        _onnx(bad)


def test_cli_exports_and_reports_errors(plain_export, tmp_path, capsys):
    plain, out = plain_export
    assert cli.main([str(plain), str(out)]) == 1  # exists and is not empty
    assert "not empty" in capsys.readouterr().err
    assert cli.main(["tiny:nope", str(tmp_path / "x")]) == 1
    assert "unknown tiny policy" in capsys.readouterr().err
