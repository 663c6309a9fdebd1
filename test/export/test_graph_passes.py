"""The exact graph clean-ups: what is removed, what is kept, and that outputs do not change."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from snapflow_ros.export.graph_passes import optimize_graph_file, remove_constant_mask_guards

SHAPE = [1, 2, 4, 4]  # batch, heads, queries, keys
NEG_INF = np.float32(-np.inf)


def _attention_model(mask: np.ndarray | None, *, axis: int = -1, built: bool = False):
    """scores (+ mask) -> Softmax -> Where(IsNaN(p), 0, p), the exporter's lowering.

    ``mask``: an additive constant (an initializer, or with ``built`` computed from boolean
    initializers as the exporter does); None: the mask is a graph input."""
    nodes, inits = [], [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    inputs = [helper.make_tensor_value_info("scores", TensorProto.FLOAT, SHAPE)]
    if mask is None:
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 4, 4]))
    elif built:
        keep = np.isfinite(mask)
        inits += [
            numpy_helper.from_array(keep, "keep"),
            numpy_helper.from_array(np.ones_like(keep), "valid"),
            numpy_helper.from_array(np.array(NEG_INF), "neg_inf"),
        ]
        nodes += [
            helper.make_node("And", ["keep", "valid"], ["both"]),
            helper.make_node("Where", ["both", "zero", "neg_inf"], ["mask"]),
        ]
    else:
        inits.append(numpy_helper.from_array(mask.astype(np.float32), "mask"))
    nodes += [
        helper.make_node("Add", ["scores", "mask"], ["masked"]),
        helper.make_node("Softmax", ["masked"], ["p"], axis=axis),
        helper.make_node("IsNaN", ["p"], ["nan"]),
        helper.make_node("Where", ["nan", "zero", "p"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "attention",
        inputs,
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, SHAPE)],
        inits,
        value_info=[helper.make_tensor_value_info("masked", TensorProto.FLOAT, SHAPE)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


def _ops(model: onnx.ModelProto) -> Counter[str]:
    return Counter(n.op_type for n in model.graph.node)


def _scores(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=SHAPE).astype(np.float32) * 4


CAUSAL = np.where(np.tril(np.ones((4, 4), bool)), 0.0, NEG_INF).astype(np.float32)[None, None]


@pytest.mark.parametrize("built", [False, True])
def test_an_all_zero_constant_mask_loses_guard_and_add_and_outputs_stay_bitwise(built):
    model = _attention_model(np.zeros((1, 1, 4, 4), np.float32), built=built)
    feed = {"scores": _scores()}
    before = _run(model, feed)
    assert remove_constant_mask_guards(model, Path(".")) == {"nan_guards": 1, "zero_masks": 1}
    onnx.checker.check_model(model)
    ops = _ops(model)
    assert ops["IsNaN"] == ops["Where"] == ops["Add"] == ops["And"] == 0
    assert ops["Softmax"] == 1 and [t.name for t in model.graph.initializer] == []
    assert np.array_equal(_run(model, feed), before)


def test_a_causal_constant_mask_keeps_its_add_and_loses_only_the_guard():
    model = _attention_model(CAUSAL)
    feed = {"scores": _scores(1)}
    before = _run(model, feed)
    assert remove_constant_mask_guards(model, Path(".")) == {"nan_guards": 1, "zero_masks": 0}
    ops = _ops(model)
    assert ops["IsNaN"] == 0 and ops["Add"] == 1
    assert np.array_equal(_run(model, feed), before)


@pytest.mark.parametrize(
    "case",
    ["a fully masked row", "mask from an input", "softmax on another axis"],
)
def test_guards_that_can_matter_are_kept(case):
    if case == "a fully masked row":
        mask = CAUSAL.copy()
        mask[..., 2, :] = NEG_INF  # this query sees nothing: the guard turns NaN into 0
        model = _attention_model(mask)
    elif case == "mask from an input":
        model = _attention_model(None)
    else:
        model = _attention_model(np.zeros((1, 1, 4, 4), np.float32), axis=2)
    ops = _ops(model)
    assert remove_constant_mask_guards(model, Path(".")) == {"nan_guards": 0, "zero_masks": 0}
    assert _ops(model) == ops
    if case == "a fully masked row":  # and the guard is what keeps that row finite
        out = _run(model, {"scores": _scores()})
        assert np.all(np.isfinite(out)) and not np.any(out[..., 2, :])


def test_a_zero_mask_add_of_unknown_output_shape_is_kept(tmp_path):
    model = _attention_model(np.zeros((1, 1, 4, 4), np.float32))
    del model.graph.value_info[:]  # a broadcasting Add may widen the scores: not removable
    assert remove_constant_mask_guards(model, tmp_path) == {"nan_guards": 1, "zero_masks": 0}
    assert _ops(model)["Add"] == 1


def test_a_file_with_external_weights_is_rewritten_and_its_weights_file_kept(tmp_path):
    model = _attention_model(CAUSAL)
    path = tmp_path / "graph.onnx"
    onnx.save(
        model, str(path), save_as_external_data=True, location="graph.onnx.data",
        size_threshold=0,
    )  # fmt: skip
    data = (tmp_path / "graph.onnx.data").read_bytes()
    feed = {"scores": _scores(2)}
    before = _run(onnx.load(str(path)), feed)
    assert optimize_graph_file(path) == {"nan_guards": 1, "zero_masks": 0}
    assert (tmp_path / "graph.onnx.data").read_bytes() == data
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert np.array_equal(session.run(None, feed)[0], before)
    assert optimize_graph_file(path) == {"nan_guards": 0, "zero_masks": 0}  # idempotent
