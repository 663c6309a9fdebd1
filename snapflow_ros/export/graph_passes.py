"""Exact clean-ups of an exported ONNX graph, applied before the parity check.

The torch exporter lowers ``scaled_dot_product_attention`` as
``Softmax(scores + mask)`` followed by ``Where(IsNaN(p), 0, p)``: the guard turns rows whose
mask is ``-inf`` everywhere (fully padded queries) into zeros instead of NaN. In the vision
encoder the mask is a constant of the graph (every patch is valid at a fixed image size), so:

* when every row of a constant mask keeps a finite entry, no row can be fully masked and, for
  finite scores, the guard is the identity: it is removed;
* when that constant mask is all zeros (and does not widen the scores by broadcasting),
  ``scores + 0`` is ``scores``: the ``Add`` is removed too.

On the full-size SmolVLA one-step graph these element-wise passes over ``[1, heads, 1024,
1024]`` per attention layer and camera took about a fifth of the CPU time (an ONNX Runtime
profile; README, "ONNX export and ONNX Runtime"). Masks that depend on a graph input (the
language prefix's padding) are left alone, as is any guard whose mask cannot be evaluated
from the graph's constants. Only the graph structure changes; the weights (external data)
are untouched, and the parity check that follows compares the result with torch like any
other export.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import external_data_helper, numpy_helper

MAX_CONSTANT_NODES = 64  # a mask built from more nodes than this is not evaluated
_SUBGRAPH_ATTRIBUTES = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


class _Graph:
    """Lookups over one graph: producers, value shapes, constant values."""

    def __init__(self, model: onnx.ModelProto, base_dir: Path) -> None:
        self.graph = model.graph
        self.opsets = list(model.opset_import)
        self.base_dir = base_dir
        self.producer = {out: n for n in self.graph.node for out in n.output if out}
        self.initializer = {t.name: t for t in self.graph.initializer}
        self.order = {id(n): i for i, n in enumerate(self.graph.node)}
        values = [*self.graph.input, *self.graph.value_info, *self.graph.output]
        self.shapes = {v.name: _shape(v) for v in values}
        self._constants: dict[str, np.ndarray | None] = {}

    def constant(self, name: str) -> np.ndarray | None:
        """The value of ``name`` when it depends on initializers only (else None)."""
        if name not in self._constants:
            self._constants[name] = self._evaluate(name)
        return self._constants[name]

    def _evaluate(self, name: str) -> np.ndarray | None:
        from onnx.reference import ReferenceEvaluator

        if name in self.initializer:
            return numpy_helper.to_array(self._loaded(self.initializer[name]))
        nodes: dict[int, onnx.NodeProto] = {}
        needed: dict[str, onnx.TensorProto] = {}
        pending = [name]
        while pending:
            current = pending.pop()
            if not current or current in needed:
                continue
            if current in self.initializer:
                needed[current] = self.initializer[current]
                continue
            node = self.producer.get(current)
            if node is None or any(a.type in _SUBGRAPH_ATTRIBUTES for a in node.attribute):
                return None  # a graph input, or a node with subgraphs
            if id(node) not in nodes:
                nodes[id(node)] = node
                pending.extend(node.input)
            if len(nodes) > MAX_CONSTANT_NODES:
                return None
        ordered = sorted(nodes.values(), key=lambda n: self.order[id(n)])
        sub = onnx.helper.make_graph(
            ordered,
            "constant",
            [],
            [onnx.helper.make_empty_tensor_value_info(name)],
            [self._loaded(t) for t in needed.values()],
        )
        try:
            model = onnx.helper.make_model(sub, opset_imports=self.opsets)
            (value,) = ReferenceEvaluator(model).run(None, {})
        except Exception:  # an op the reference evaluator lacks: not treated as constant
            return None
        return np.asarray(value)

    def _loaded(self, tensor: onnx.TensorProto) -> onnx.TensorProto:
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        if external_data_helper.uses_external_data(copy):
            external_data_helper.load_external_data_for_tensor(copy, str(self.base_dir))
            copy.data_location = onnx.TensorProto.DEFAULT
            del copy.external_data[:]
        return copy


def _shape(value: onnx.ValueInfoProto) -> tuple[int | str, ...] | None:
    if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value or d.dim_param for d in value.type.tensor_type.shape.dim)


def _softmax_on_last_axis(node: onnx.NodeProto) -> bool:
    axes = [a.i for a in node.attribute if a.name == "axis"]
    return not axes or axes[0] == -1  # opset >= 13 defaults to -1


def _keeps_a_finite_entry_per_row(mask: np.ndarray | None) -> bool:
    return (
        mask is not None
        and mask.dtype.kind == "f"
        and bool(np.all(np.any(np.isfinite(np.atleast_1d(mask)), axis=-1)))
    )


def _identity(node: onnx.NodeProto, source: str) -> onnx.NodeProto:
    return onnx.helper.make_node("Identity", [source], [node.output[0]], name=node.name)


def remove_constant_mask_guards(model: onnx.ModelProto, base_dir: Path) -> dict[str, int]:
    """Remove the softmax NaN guards (and all-zero mask additions) of attention whose additive
    mask is a graph constant with a finite entry in every row; returns the counts removed.
    ``base_dir``: the folder of the model's external data."""
    g = _Graph(model, base_dir)
    replace: dict[int, onnx.NodeProto] = {}
    removed = Counter({"nan_guards": 0, "zero_masks": 0})
    for node in g.graph.node:
        if node.op_type != "Where" or len(node.input) != 3:
            continue
        isnan, softmax = g.producer.get(node.input[0]), g.producer.get(node.input[2])
        if isnan is None or isnan.op_type != "IsNaN" or softmax is None:
            continue
        if softmax.op_type != "Softmax" or isnan.input[0] != softmax.output[0]:
            continue
        if not _softmax_on_last_axis(softmax):
            continue
        zero = g.constant(node.input[1])
        if zero is None or zero.size != 1 or float(zero.reshape(-1)[0]) != 0.0:
            continue
        add = g.producer.get(softmax.input[0])
        if add is None or add.op_type != "Add":
            continue
        side = next(
            (i for i in (1, 0) if _keeps_a_finite_entry_per_row(g.constant(add.input[i]))), None
        )
        if side is None:
            continue
        replace[id(node)] = _identity(node, softmax.output[0])
        removed["nan_guards"] += 1
        scores = add.input[1 - side]
        shape = g.shapes.get(scores)
        same_shape = shape is not None and shape == g.shapes.get(add.output[0])
        if same_shape and not np.any(g.constant(add.input[side])) and id(add) not in replace:
            replace[id(add)] = _identity(add, scores)
            removed["zero_masks"] += 1
    if replace:
        nodes = [replace.get(id(n), n) for n in g.graph.node]
        del g.graph.node[:]
        g.graph.node.extend(nodes)
        _drop_unused(g.graph)
    return dict(removed)


def _drop_unused(graph: onnx.GraphProto) -> None:
    """Remove nodes none of whose outputs is used, then initializers nothing reads."""

    def used() -> Counter[str]:
        names: Counter[str] = Counter(i for n in graph.node for i in n.input if i)
        names.update(out.name for out in graph.output)
        return names

    while True:
        live = used()
        keep = [n for n in graph.node if any(live[o] for o in n.output if o)]
        if len(keep) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(keep)
    live = used()
    inits = [t for t in graph.initializer if live[t.name]]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def optimize_graph_file(path: Path) -> dict[str, int]:
    """Apply :func:`remove_constant_mask_guards` to the ONNX file ``path`` in place (its
    external weights file stays as it is); returns the counts."""
    model = onnx.load(str(path), load_external_data=False)
    counts = remove_constant_mask_guards(model, path.parent)
    if any(counts.values()):
        onnx.save(model, str(path))
    return counts
