"""The benchmark suite: runtime stages, node overhead, LIBERO sim rate, distillation throughput.

Usage::

    snapflow_bench                         # CI-sized: tiny models, short runs (minutes, CPU)
    snapflow_bench --profile full --allow-skip   # + full-size models, fp32 + bf16, longer runs
    snapflow_bench --sections runtime --device cuda --out-dir artifacts/bench_gpu

Each section is its own module, run in its own process (own torch threads, no state shared
between sections), and can be run alone with finer options:

========  ==========================================  ==========================================
section   module                                      measures
========  ==========================================  ==========================================
runtime   ``snapflow_ros.bench.runtime_latency``      preprocess / prefix / denoise step /
                                                      postprocess per policy, size, dtype,
                                                      engine (eager, fast, compiled) and step
                                                      count; 10/1 and engine ratios in one run
onnx      ``snapflow_ros.bench.onnx_latency``         whole chunk, onnxruntime engine (ONNX
                                                      export) vs torch engines, 1 and 10 steps,
                                                      ratio to the fastest torch engine
profile   ``snapflow_ros.bench.stage_profile``        one-step chunk split into vision encoder,
                                                      projector, language prefix, expert, rest
node      ``snapflow_ros.bench.node_overhead``        ROS node overhead over the bare runtime,
                                                      command rate and jitter
sim       ``snapflow_ros.bench.libero_sim``           LIBERO physics / render step rate
distill   ``snapflow_training.bench_throughput``      distillation samples/s
========  ==========================================  ==========================================

Writes ``<out-dir>/<section>.json`` (each with machine, versions and settings),
``<out-dir>/suite.json`` (all of them, plus status and duration of each section) and
``<out-dir>/suite.md`` (the tables); prints the tables. A section that fails or cannot run
here (for example LIBERO not installed), or that skips some of its rows (the runtime section
skips full-size pi0.5 on a CPU with less than 48 GB), is recorded as such and the others still
run. Exit code: 0 when everything ran; 1 when a section failed; 3 when something was skipped
and ``--allow-skip`` was not given (a benchmark that silently measured less is not a pass).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from snapflow_ros.bench.machine import machine_info, resolve_device

SECTIONS = ("runtime", "onnx", "profile", "node", "sim", "distill")
MODULES = {
    "runtime": "snapflow_ros.bench.runtime_latency",
    "onnx": "snapflow_ros.bench.onnx_latency",
    "profile": "snapflow_ros.bench.stage_profile",
    "node": "snapflow_ros.bench.node_overhead",
    "sim": "snapflow_ros.bench.libero_sim",
    "distill": "snapflow_training.bench_throughput",
}
PROFILES: dict[str, dict[str, list[str]]] = {
    "ci": {
        "runtime": [
            "--sizes", "tiny", "--steps", "1,2,5,10", "--engines", "eager,fast,compiled",
            "--dtypes", "float32", "--repeats", "5",
        ],
        "onnx": ["--models", "tiny-smolvla,tiny-pi05,student", "--steps", "1,10",
                 "--repeats", "10", "--threads", "1"],
        "profile": ["--size", "tiny", "--steps", "1", "--engine", "fast"],
        "node": ["--duration", "5", "--rate", "50", "--repeats", "20"],
        "sim": ["--sizes", "128", "--steps", "10", "--lockstep-sizes", ""],
        "distill": ["--size", "tiny", "--steps", "10", "--batch-size", "8"],
    },
    "full": {
        "runtime": [
            "--sizes", "tiny,full", "--steps", "1,2,5,10", "--engines", "eager,fast,compiled",
            "--dtypes", "float32,bfloat16", "--repeats", "5",
        ],
        "onnx": ["--models", "tiny-smolvla,tiny-pi05,student,full-smolvla", "--steps", "1,10",
                 "--repeats", "5", "--threads", "2"],
        "profile": ["--size", "full", "--steps", "1", "--engine", "compiled", "--repeats", "3"],
        "node": [],
        "sim": [],
        "distill": ["--size", "full", "--steps", "6", "--batch-size", "2",
                    "--dtypes", "float32,bfloat16"],
    },
}  # fmt: skip
DEVICE_SECTIONS = ("runtime", "onnx", "profile", "distill")  # sections that take --device
EXIT_FAILED, EXIT_SKIPPED = 1, 3


def unavailable_reason(section: str) -> str | None:
    """Why ``section`` cannot run in this environment (None: it can)."""
    if section == "sim" and importlib.util.find_spec("libero") is None:
        return "LIBERO is not installed (requirements/libero.txt)"
    if section == "distill" and importlib.util.find_spec("snapflow_training") is None:
        return "the training package (snapflow_training) is not installed"
    if section == "onnx" and importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed (requirements/runtime.txt)"
    if section == "node" and importlib.util.find_spec("rclpy") is None:
        return "rclpy is not importable"
    return None


def section_command(section: str, profile: str, device: str, out: Path) -> list[str]:
    """The command line that runs one section."""
    args = [*PROFILES[profile][section], "--out", str(out)]
    if section in DEVICE_SECTIONS:
        args += ["--device", device]
    return [sys.executable, "-m", MODULES[section], *args]


def run_section(section: str, profile: str, device: str, out_dir: Path) -> dict[str, Any]:
    """Run one section in its own process; returns its status, duration and JSON result."""
    entry: dict[str, Any] = {"section": section, "module": MODULES[section]}
    reason = unavailable_reason(section)
    if reason is not None:
        print(f"[suite] {section}: skipped ({reason})", file=sys.stderr, flush=True)
        return {**entry, "status": "skipped", "reason": reason}
    out = out_dir / f"{section}.json"
    out.unlink(missing_ok=True)
    cmd = section_command(section, profile, device, out)
    entry["command"] = " ".join(c if c else "''" for c in cmd[1:])
    print(f"[suite] {section}: {entry['command']}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    entry["seconds"] = round(time.perf_counter() - start, 1)
    entry["exit_code"] = proc.returncode
    if proc.returncode != 0 or not out.exists():
        entry["status"] = "failed"
        entry["output_tail"] = proc.stdout[-3000:]
        print(f"[suite] {section}: FAILED (exit {proc.returncode})", file=sys.stderr)
        print(entry["output_tail"], file=sys.stderr)
        return entry
    entry["status"] = "ok"
    entry["result"] = json.loads(out.read_text())
    skipped_rows = [row for row in entry["result"].get("rows", []) if "skipped" in row]
    if skipped_rows:
        entry["skipped_rows"] = skipped_rows
    return entry


def skipped_items(sections: list[dict[str, Any]]) -> list[str]:
    """What the run did not measure: skipped sections and the rows sections skipped."""
    items = []
    for entry in sections:
        if entry["status"] == "skipped":
            items.append(f"section {entry['section']}: {entry['reason']}")
        for row in entry.get("skipped_rows", []):
            what = "/".join(str(row[k]) for k in ("policy", "size") if k in row)
            items.append(f"{entry['section']} {what}: {row['skipped']}")
    return items


def exit_code(sections: list[dict[str, Any]], allow_skip: bool) -> int:
    """1 when a section failed, else 3 when something was skipped without ``allow_skip``."""
    if any(s["status"] == "failed" for s in sections):
        return EXIT_FAILED
    if skipped_items(sections) and not allow_skip:
        return EXIT_SKIPPED
    return 0


def markdown(report: dict[str, Any]) -> str:
    """The suite's tables, one section after another."""
    machine = report["machine"]
    gpu = f", GPU {machine['gpu']}" if machine.get("gpu") else ""
    lines = [
        f"# snapflow_ros benchmark suite ({report['profile']})",
        "",
        f"Machine: {machine['cpu']} ({machine['cpu_count']} cores, "
        f"{machine.get('memory_gb', '?')} GB){gpu}; torch {machine['versions']['torch']}, "
        f"lerobot {machine['versions']['lerobot']}; device {report['device']}.",
    ]
    for entry in report["sections"]:
        lines += ["", f"## {entry['section']} ({entry['status']})", ""]
        if entry["status"] == "ok":
            lines += [f"`{entry['command']}` ({entry['seconds']} s)", ""]
            lines.append(entry["result"].get("markdown", "(no table)"))
            if entry.get("skipped_rows"):
                lines += ["", f"{len(entry['skipped_rows'])} row(s) skipped (see the table)"]
        elif entry["status"] == "skipped":
            lines.append(f"skipped: {entry['reason']}")
        else:
            lines.append(f"failed (exit {entry['exit_code']}): `{entry['command']}`")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(
        prog="snapflow_bench",
        description=__doc__.split("\n\n")[0],
        epilog="Each section can also be run alone: python -m <module> --help.",
    )
    p.add_argument("--profile", choices=tuple(PROFILES), default="ci")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma list of sections")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--out-dir", type=Path, default=Path("artifacts/bench"))
    p.add_argument(
        "--allow-skip",
        action="store_true",
        help="exit 0 although sections or rows were skipped (they are still reported)",
    )
    args = p.parse_args(argv)
    args.sections = [s for s in args.sections.split(",") if s]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown or not args.sections:
        p.error(f"--sections: unknown {unknown} (choose from {', '.join(SECTIONS)})")
    if args.device != "auto" and args.device != "cpu" and not args.device.startswith("cuda"):
        p.error(f"--device: expected auto, cpu, cuda or cuda:N, got {args.device!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the selected sections; print and write the combined report."""
    args = parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    sections = [run_section(s, args.profile, args.device, args.out_dir) for s in args.sections]
    code = exit_code(sections, args.allow_skip)
    report = {
        "benchmark": "suite",
        "profile": args.profile,
        "device": args.device,
        "started": started,
        "machine": machine_info(resolve_device(args.device)),
        "sections": sections,
        "skipped": skipped_items(sections),
        "allow_skip": args.allow_skip,
        "exit_code": code,
    }
    text = markdown(report)
    (args.out_dir / "suite.json").write_text(json.dumps(report, indent=2))
    (args.out_dir / "suite.md").write_text(text)
    print(text)
    print(f"[suite] wrote {args.out_dir / 'suite.json'} and suite.md", file=sys.stderr)
    for item in report["skipped"]:
        print(f"[suite] skipped: {item}", file=sys.stderr)
    if code == EXIT_SKIPPED:
        print("[suite] exit 3: something was skipped (--allow-skip accepts that)", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
