"""``compare``: an outputs bag against a reference bag, as a report and a CI gate.

::

    compare OUTPUTS REFERENCE [--report r.json] [--plot r.png]
            [--max-action-rmse 1e-5] [--max-missing 0] [--max-extra 0] [--max-rejected 0]
            [--max-latency-p95 0.5 --latency-metric inference] ...

Chunks (``trajectory_msgs/JointTrajectory``) are matched by observation stamp (or order);
the reference is a golden outputs bag from ``replay`` or the original recording (the chunks
the node published on the robot). Observations the node rejected as malformed (its
``rejected`` status events in the outputs bag) are reported apart: a reference chunk whose
observation was rejected is not "missing"; ``--max-rejected N`` gates them. Exit codes: 0
pass, 1 gate failed, 2 bad input (unreadable bag, missing topic, type mismatch) with one
message on stderr.
"""

from __future__ import annotations

import argparse
import sys

from snapflow_ros.bags.comparison_report import CompareOptions, compare_bags, write_json, write_plot
from snapflow_ros.bags.errors import BagError
from snapflow_ros.bags.metrics import LATENCY_METRICS, Gate, evaluate

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="compare",
        description="Compare the action chunks of an outputs bag with a reference bag "
        "(exit 0 pass, 1 gate failed, 2 bad input).",
    )
    p.add_argument("output", help="bag with the node's outputs (e.g. written by `replay`)")
    p.add_argument("reference", help="reference bag (golden outputs, or the original recording)")
    p.add_argument(
        "--topic",
        help="chunk topic of the outputs bag (default: its JointTrajectory "
        "topic; ...action_chunk if several)",
    )
    p.add_argument("--ref-topic", help="chunk topic of the reference bag (default: as --topic)")
    p.add_argument(
        "--status-topic",
        help="node status topic in the outputs bag "
        "(default: <chunk namespace>/status if present)",
    )
    p.add_argument(
        "--match",
        choices=("stamp", "order"),
        default="stamp",
        help="pair chunks by observation stamp (default) or by order",
    )
    p.add_argument(
        "--stamp-tolerance",
        type=float,
        default=0.0,
        metavar="S",
        help="stamps closer than this (s) match (default 0: exact)",
    )
    p.add_argument("--report", metavar="JSON", help="write the full report here")
    p.add_argument("--plot", metavar="PNG", help="write a plot here")
    g = p.add_argument_group("gate (unset: not checked)")
    g.add_argument("--max-action-rmse", type=float, help="overall action RMSE")
    g.add_argument("--max-action-abs", type=float, help="largest absolute action error")
    g.add_argument("--max-missing", type=int, help="reference chunks without an output chunk")
    g.add_argument("--max-extra", type=int, help="output chunks without a reference chunk")
    g.add_argument("--min-matched", type=int, help="fewest matched chunks")
    g.add_argument(
        "--max-rejected",
        type=int,
        help="observations the node rejected as malformed (not counted as missing chunks)",
    )
    g.add_argument("--max-latency-p95", type=float, metavar="S", help="p95 latency (s)")
    g.add_argument(
        "--latency-metric",
        choices=LATENCY_METRICS,
        default="inference",
        help="latency gated by --max-latency-p95 (default inference: the node's "
        "compute time per chunk)",
    )
    g.add_argument(
        "--min-chunk-rate", type=float, metavar="HZ", help="chunks per second of observation time"
    )
    return p


def _fmt(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:.4g}{unit}"


def print_summary(report: dict, failures: list[str], gate: Gate) -> None:
    """A few human-readable lines on stdout."""
    ch = report["chunks"]
    overall = report["actions"]["overall"] or {}
    lat = report["latency_s"][gate.latency_metric]
    print(f"compare: {report['output']['bag']} vs {report['reference']['bag']}")
    print(
        f"  chunks: {ch['output']} output, {ch['reference']} reference, {ch['matched']} matched, "
        f"{ch['missing']} missing, {ch['extra']} extra; rate {_fmt(ch['rate_hz'], ' Hz')}"
    )
    if ch["rejected"]:
        first = report["rejections"][0]
        print(
            f"  rejected by the node: {ch['rejected']} observations "
            f"({ch['missing_rejected']} of them have a reference chunk, not counted as "
            f"missing); first: stamp {first['stamp_ns']}, {first['input']}: {first['reason']}"
        )
    print(
        f"  actions: rmse {_fmt(overall.get('rmse'))}, max abs {_fmt(overall.get('max_abs'))}, "
        f"mean abs {_fmt(overall.get('mean_abs'))}"
    )
    print(
        f"  {gate.latency_metric} latency: p50 {_fmt(lat['p50'], ' s')}, "
        f"p95 {_fmt(lat['p95'], ' s')}, max {_fmt(lat['max'], ' s')} ({lat['count']} samples)"
    )
    if failures:
        print("FAIL: " + "; ".join(failures))
    else:
        print("PASS")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``compare``."""
    args = build_parser().parse_args(argv)
    gate = Gate(
        max_action_rmse=args.max_action_rmse,
        max_action_abs=args.max_action_abs,
        max_missing=args.max_missing,
        max_extra=args.max_extra,
        max_latency_p95=args.max_latency_p95,
        latency_metric=args.latency_metric,
        min_chunk_rate=args.min_chunk_rate,
        min_matched=args.min_matched,
        max_rejected=args.max_rejected,
    )
    options = CompareOptions(
        topic=args.topic,
        ref_topic=args.ref_topic,
        status_topic=args.status_topic,
        match=args.match,
        tolerance_ns=round(args.stamp_tolerance * 1e9),
    )
    try:
        comp = compare_bags(args.output, args.reference, options)
    except BagError as exc:
        print(f"compare: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    failures = evaluate(comp.report, gate)
    comp.report["gate"] = {
        "thresholds": gate.as_dict(),
        "passed": not failures,
        "failures": failures,
    }
    try:
        if args.report:
            write_json(comp.report, args.report)
        if args.plot:
            write_plot(comp, args.plot, gate.latency_metric)
    except OSError as exc:
        print(f"compare: error: cannot write the report: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print_summary(comp.report, failures, gate)
    return EXIT_FAIL if failures else EXIT_PASS


if __name__ == "__main__":
    sys.exit(main())
