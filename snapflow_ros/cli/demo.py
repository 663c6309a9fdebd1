"""``snapflow_demo``: the policy node on the embedded tiny policy, fed by a synthetic robot.

Three processes talk over real DDS, isolated on this machine (localhost discovery, a domain
id of their own unless ``ROS_DOMAIN_ID`` is set):

* ``policy_node`` with ``config/policy.yaml`` and the tiny checkpoint (built offline here);
* ``synthetic_source``: two moving coloured cameras, sinusoidal joints, a task string;
* this process: it watches chunks, commands and the node's status, prints a live line every
  second and, halfway through, switches the denoising steps at run time (A/B: the
  checkpoint's default, then ``--ab-steps``); then it stops everything with Ctrl-C semantics
  and prints a final table. Exit status 0 when the node ran, produced chunks and commands,
  and every process shut down cleanly.

Needs nothing beyond the Python environment (no ROS install).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snapflow_ros.control.status import ChunkEvent, PeriodicEvent
from snapflow_ros.launching import KILL, ManagedProcess, config_dir, executable, stop_all

NODE = "/policy_node"


@dataclass
class Phase:
    """One A/B phase: a steps setting and what was measured while it ran."""

    steps: int | None
    start_ns: int
    end_ns: int = 0
    counters_start: dict[str, int] = field(default_factory=dict)
    counters_end: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------- environment
def isolate_dds(domain_id: int | None) -> int:
    """Localhost-only discovery and a domain id (given, the user's, or one from the pid)."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if domain_id is None:
        env = os.environ.get("ROS_DOMAIN_ID")
        domain_id = int(env) if env else 52 + os.getpid() % 50  # 52..101 (the portable range)
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    return domain_id


def find_config(name: str = "policy.yaml") -> Path:
    """``config/<name>`` of the package (see :func:`snapflow_ros.launching.config_dir`)."""
    path = config_dir() / name
    if not path.is_file():
        raise SystemExit(f"snapflow_demo: cannot find config/{name} (pass --config)")
    return path


# ---------------------------------------------------------------------------- monitor
class Monitor:
    """The node's client in this process, also recording the commands (header stamps)."""

    def __init__(self) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState

        from snapflow_ros.client import NodeClient

        self.client = NodeClient(NODE, name="snapflow_demo_monitor")
        self.lock = threading.Lock()
        self.commands: list[int] = []  # header stamps (ns)
        qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.client.node.create_subscription(JointState, f"{NODE}/command", self._on_command, qos)

    def _on_command(self, msg: Any) -> None:
        from snapflow_ros.ros_conversions import stamp_to_ns

        with self.lock:
            self.commands.append(stamp_to_ns(msg.header.stamp))

    def latest_report(self) -> PeriodicEvent | None:
        """The last periodic status report of the node."""
        reports = self.client.events("periodic")
        return reports[-1] if reports else None

    def set_num_steps(self, steps: int, timeout: float = 10.0) -> bool:
        """Change the node's ``num_steps`` parameter at run time."""
        from snapflow_ros.client import ClientError

        try:
            self.client.set_parameters({"num_steps": int(steps)}, timeout=timeout)
        except ClientError:
            return False
        return True

    def window(self, start_ns: int, end_ns: int) -> tuple[list[int], list[ChunkEvent]]:
        """Command stamps and chunk events inside ``[start_ns, end_ns)``."""
        with self.lock:
            cmds = [t for t in self.commands if start_ns <= t < end_ns]
        evs = [e for e in self.client.events("chunk") if start_ns <= e.received_ns < end_ns]
        return cmds, evs

    def close(self) -> None:
        """Stop spinning and shut the monitor's context down."""
        self.client.close()


def summarize(cmds: list[int], events: list[ChunkEvent], seconds: float, dt: float) -> dict:
    """Rates, latency percentiles and jitter of one window."""
    out: dict[str, Any] = {"seconds": seconds, "chunks": len(events), "commands": len(cmds)}
    out["chunk_rate_hz"] = len(events) / seconds if seconds > 0 else math.nan
    out["command_rate_hz"] = len(cmds) / seconds if seconds > 0 else math.nan
    totals = [e.timings["total"] * 1000 for e in events]
    e2e = [(e.received_ns - e.trigger_ns) / 1e6 for e in events]
    age = [(e.received_ns - e.stamp_ns) / 1e6 for e in events]
    skipped = [e.skipped for e in events]
    for name, vals in (("latency_ms", totals), ("e2e_ms", e2e), ("obs_age_ms", age)):
        out[f"{name}_p50"] = float(np.percentile(vals, 50)) if vals else math.nan
        out[f"{name}_p95"] = float(np.percentile(vals, 95)) if vals else math.nan
    out["skipped_mean"] = float(np.mean(skipped)) if skipped else math.nan
    iv = np.diff(np.asarray(cmds, np.float64)) / 1e9
    out["jitter_std_ms"] = float(np.std(iv) * 1000) if iv.size > 1 else math.nan
    out["jitter_p99_ms"] = (
        float(np.percentile(np.abs(iv - dt), 99) * 1000) if iv.size > 1 else math.nan
    )
    out["late_chunks"] = sum(1 for e in events if not e.accepted)
    return out


def fmt(value: Any, digits: int = 1) -> str:
    """A table cell."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


# ---------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line of snapflow_demo."""
    p = argparse.ArgumentParser(prog="snapflow_demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=20.0, help="seconds of running (default 20)")
    p.add_argument("--policy-type", choices=("smolvla", "pi05"), default="smolvla")
    p.add_argument(
        "--steps",
        type=int,
        default=0,
        help="denoising steps of the first half (0: checkpoint default)",
    )
    p.add_argument(
        "--ab-steps",
        type=int,
        default=1,
        help="steps of the second half, switched at run time (0: no switch)",
    )
    p.add_argument("--control-rate", type=float, default=None, help="Hz (default: the config's)")
    p.add_argument("--config", type=Path, default=None, help="policy node parameters file")
    p.add_argument("--domain-id", type=int, default=None, help="ROS domain id (default: own)")
    p.add_argument("--startup-timeout", type=float, default=180.0)
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    p.add_argument("--verbose", action="store_true", help="show the node's log lines")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 on success."""
    args = parse_args(argv)
    domain = isolate_dds(args.domain_id)
    config = args.config or find_config()
    print(
        f"snapflow_demo: ROS_DOMAIN_ID={domain}, discovery "
        f"{os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE']}, config {config}",
        flush=True,
    )

    from snapflow_ros.policies import resolve_policy

    t0 = time.monotonic()
    checkpoint = resolve_policy(f"tiny:{args.policy_type}")
    print(
        f"tiny {args.policy_type} checkpoint: {checkpoint} ({time.monotonic() - t0:.1f} s)",
        flush=True,
    )

    interrupted = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        interrupted.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    workdir = Path(tempfile.mkdtemp(prefix="snapflow_demo_"))
    node_args = ["-p", f"policy_path:={checkpoint}", "-p", f"num_steps:={args.steps}"]
    if args.control_rate:
        node_args += ["-p", f"control_rate:={float(args.control_rate)}"]
    node_cmd = [
        *executable("policy_node"),
        "--ros-args",
        "--params-file",
        str(config),
        *node_args,
    ]
    source_cmd = [*executable("synthetic_source")]
    node_log = None if args.verbose else workdir / "policy_node.log"  # verbose: on the terminal
    procs = {
        "policy_node": ManagedProcess("policy_node", node_cmd, log_path=node_log),
        "synthetic_source": ManagedProcess(
            "synthetic_source", source_cmd, log_path=workdir / "synthetic_source.log"
        ),
    }
    monitor = Monitor()
    result: dict[str, Any] = {"domain_id": domain, "checkpoint": str(checkpoint), "phases": []}
    problems: list[str] = []
    try:
        problems += run(args, monitor, procs, interrupted, result)
    finally:
        codes = stop_processes(procs)
        monitor.close()
    for name, code in codes.items():
        result[f"{name}_exit"] = code
        if code != 0:
            problems.append(f"{name} exited with {code}")
    print_table(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
    if problems:
        print("snapflow_demo FAILED: " + "; ".join(problems), file=sys.stderr)
        if not args.verbose:
            log = (workdir / "policy_node.log").read_text(errors="replace")
            print("--- policy_node log (tail) ---\n" + log[-3000:], file=sys.stderr)
        return 1
    print(f"snapflow_demo OK (logs in {workdir})")
    return 0


def run(
    args: argparse.Namespace,
    monitor: Monitor,
    procs: dict[str, ManagedProcess],
    interrupted: threading.Event,
    result: dict[str, Any],
) -> list[str]:
    """Wait for the node, run both phases with a live line every second."""
    from snapflow_ros.client import WaitAborted, WaitTimeout, wait_until

    print("starting policy_node and synthetic_source ...", flush=True)

    def started() -> PeriodicEvent | None:
        report = monitor.latest_report()
        return report if report and report.state == "active" and monitor.commands else None

    def startup_problem() -> str:
        for name, proc in procs.items():
            if not proc.alive():
                return f"{name} exited early with {proc.returncode}"
        report = monitor.latest_report()
        if report and report.configure_error:
            return f"policy_node could not configure: {report.configure_error}"
        return "interrupted during start-up" if interrupted.is_set() else ""

    try:
        report = wait_until(
            started, args.startup_timeout, "an active policy_node", startup_problem, poll=0.1
        )
    except WaitAborted as exc:
        return [exc.reason]
    except WaitTimeout:
        return [f"policy_node not active after {args.startup_timeout:.0f} s"]
    policy = report.policy or {}
    dt = 1.0 / report.control_rate
    default_steps = policy["default_num_steps"]
    first_steps = args.steps or default_steps
    switch = args.ab_steps if args.ab_steps and args.ab_steps != first_steps else None
    result["policy"] = policy
    result["control_rate_hz"] = report.control_rate
    print(
        f"node active: {policy['policy_type']} on {policy['device']}, chunk "
        f"{policy['chunk_size']} x {policy['action_dim']} at {report.control_rate:g} Hz; "
        f"running {args.duration:g} s"
        + (f", steps {first_steps} -> {switch} halfway" if switch else f", steps {first_steps}"),
        flush=True,
    )
    start = time.time_ns()
    phases = [Phase(first_steps, start, counters_start=dict(report.counters))]
    half = start + int(args.duration / 2 * 1e9)
    end = start + int(args.duration * 1e9)
    next_print = time.monotonic() + 1.0
    while time.time_ns() < end and not interrupted.is_set():
        if switch and len(phases) == 1 and time.time_ns() >= half:
            rep = monitor.latest_report() or report
            now = time.time_ns()
            phases[0].end_ns, phases[0].counters_end = now, dict(rep.counters)
            ok = monitor.set_num_steps(switch)
            print(f"--- num_steps -> {switch} at run time ({'ok' if ok else 'FAILED'})", flush=True)
            phases.append(Phase(switch, time.time_ns(), counters_start=dict(rep.counters)))
        for name, proc in procs.items():
            if not proc.alive():
                return [f"{name} died during the run ({proc.returncode})"]
        if time.monotonic() >= next_print:
            next_print += 1.0
            now = time.time_ns()
            cmds, evs = monitor.window(now - 2_000_000_000, now)
            s = summarize(cmds, evs, 2.0, dt)
            rep = monitor.latest_report() or report
            print(
                f"  t={(now - start) / 1e9:5.1f}s  steps {phases[-1].steps:>2}  "
                f"chunks {fmt(s['chunk_rate_hz'])}/s  latency p50 {fmt(s['latency_ms_p50'], 0)} ms"
                f"  commands {fmt(s['command_rate_hz'])}/s  jitter {fmt(s['jitter_std_ms'])} ms"
                f"  starvation {rep.counters.get('starvation_events', 0)}",
                flush=True,
            )
        time.sleep(0.05)
    rep = monitor.latest_report() or report
    phases[-1].end_ns = time.time_ns()
    phases[-1].counters_end = dict(rep.counters)
    for ph in phases:
        cmds, evs = monitor.window(ph.start_ns, ph.end_ns)
        row = summarize(cmds, evs, (ph.end_ns - ph.start_ns) / 1e9, dt)
        row["steps"] = ph.steps
        row["starvation_events"] = ph.counters_end.get(
            "starvation_events", 0
        ) - ph.counters_start.get("starvation_events", 0)
        row["starved_ticks"] = ph.counters_end.get("starved_ticks", 0) - ph.counters_start.get(
            "starved_ticks", 0
        )
        result["phases"].append(row)
    result["interrupted"] = interrupted.is_set()
    problems = []
    if not any(r["chunks"] for r in result["phases"]):
        problems.append("no chunks")
    if not any(r["commands"] for r in result["phases"]):
        problems.append("no commands")
    return problems


def stop_processes(
    procs: dict[str, ManagedProcess], timeout: float = 30.0
) -> dict[str, int | None]:
    """Ctrl-C every process (source first), wait, return exit codes (-9: had to be killed)."""
    order = ["synthetic_source", "policy_node"]
    codes = stop_all([procs[name] for name in order], signal.SIGINT, timeout, KILL)
    found = dict(zip(order, codes, strict=True))
    return {name: found[name] for name in procs}


def print_table(result: dict[str, Any]) -> None:
    """The final markdown table."""
    rows = result.get("phases", [])
    if not rows:
        return
    rate = result.get("control_rate_hz")
    print()
    print(f"## snapflow_demo: tiny policy, control rate {fmt(rate, 0)} Hz")
    print()
    header = (
        "steps",
        "seconds",
        "chunks",
        "chunks/s",
        "latency p50 ms",
        "latency p95 ms",
        "e2e p50 ms",
        "skipped/chunk",
        "commands/s",
        "jitter std ms",
        "jitter p99 ms",
        "starvation",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        cells = (
            r["steps"],
            fmt(r["seconds"]),
            r["chunks"],
            fmt(r["chunk_rate_hz"]),
            fmt(r["latency_ms_p50"]),
            fmt(r["latency_ms_p95"]),
            fmt(r["e2e_ms_p50"]),
            fmt(r["skipped_mean"]),
            fmt(r["command_rate_hz"]),
            fmt(r["jitter_std_ms"]),
            fmt(r["jitter_p99_ms"]),
            f"{r['starvation_events']} ({r['starved_ticks']} ticks)",
        )
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print()
    print(
        "latency: runtime time per chunk; e2e: inference trigger to chunk scheduled; "
        "jitter: of command stamps; starvation: times the plan ran out (ticks without action)."
    )


if __name__ == "__main__":
    sys.exit(main())
