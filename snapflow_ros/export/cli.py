"""``snapflow_export CHECKPOINT OUT``: export a policy to ONNX and check it against torch."""

from __future__ import annotations

import argparse
import logging
import sys

from snapflow_ros.export.onnx_export import OPSET, ULP_BUDGET


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="snapflow_export",
        description=(
            "Export a SmolVLA / pi0.5 checkpoint (plain or SnapFlow) to ONNX: a prefix graph "
            "(vision + language -> KV cache) and an expert-step graph for any checkpoint, and "
            "for a SnapFlow checkpoint the whole one-step chunk as ONE graph. Every graph is "
            "checked against the torch 'fast' engine; the export is refused (nothing written) "
            "when one differs beyond the float32 tolerance. Run the result with "
            "engine: onnxruntime and policy_path: OUT."
        ),
    )
    p.add_argument("checkpoint", help="checkpoint folder, Hub id, or a tiny:/libero: policy name")
    p.add_argument("out", help="export folder to write (must not exist or be empty)")
    p.add_argument("--vlm-path", default=None, help="local SmolVLA VLM folder (offline)")
    p.add_argument("--tokenizer-path", default=None, help="local tokenizer folder (offline)")
    p.add_argument(
        "--ulps",
        type=float,
        default=ULP_BUDGET,
        help=f"parity budget in float32 epsilons of each output's scale (default {ULP_BUDGET})",
    )
    p.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    p.add_argument(
        "--one-step",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the fused one-step graph (default: for SnapFlow checkpoints only)",
    )
    p.add_argument(
        "--graph-passes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="remove the vision encoder's constant-mask NaN guards and zero-mask additions "
        "(exact; default on, --no-graph-passes to measure or rule them out)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing export")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from snapflow_ros.export.onnx_export import export_policy
    from snapflow_ros.policies import resolve_policy
    from snapflow_ros.runtime.errors import PolicyRuntimeError

    def say(text: str) -> None:
        print(f"[snapflow_export] {text}", flush=True)

    try:
        checkpoint = resolve_policy(args.checkpoint)
        manifest = export_policy(
            checkpoint,
            args.out,
            vlm_path=args.vlm_path,
            tokenizer_path=args.tokenizer_path,
            ulps=args.ulps,
            overwrite=args.overwrite,
            opset=args.opset,
            one_step=args.one_step,
            graph_passes=args.graph_passes,
            log=say,
        )
    except (PolicyRuntimeError, ValueError, OSError) as exc:
        print(f"snapflow_export: error: {exc}", file=sys.stderr)
        return 1
    say(f"wrote {args.out}: {', '.join(manifest['graphs'])}")
    for name, row in manifest["parity"]["outputs"].items():
        say(f"  parity {name}: max abs diff {row['max_abs_diff']:.3g} (tol {row['tolerance']:.3g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
