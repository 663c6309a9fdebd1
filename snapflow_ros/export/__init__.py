"""ONNX export of SmolVLA / pi0.5 policies (plain and SnapFlow) with parity checks.

ROS-free. :func:`snapflow_ros.export.onnx_export.export_policy` writes an export folder that
the runtime's ``onnxruntime`` engine loads (:mod:`snapflow_ros.runtime.onnx_engine`); the
console script is ``snapflow_export`` (:mod:`snapflow_ros.export.cli`).
"""
