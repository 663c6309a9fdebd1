"""Soak benchmark of the policy node: hours-style behaviour in minutes (not a test).

Usage::

    python -m snapflow_ros.bench.soak [--good 600] [--bad 600] [--cycle 20] [--window 5]
        [--rate 50] [--busy-core 0] [--domain-id N] [--out artifacts/soak.json]

The policy node (tiny SmolVLA, one step, ``--rate`` Hz) runs in its own process, fed by this
process like :mod:`snapflow_ros.bench.node_overhead` (two 64x48 cameras at 20 Hz, joint states
at 50 Hz). Phase one sends good inputs for ``--good`` seconds. Phase two cycles through the
bad-input classes of :data:`BAD_INPUTS` for ``--bad`` seconds: each class is sent for half a
``--cycle``, then good inputs for the other half (recovery). Every ``--window`` seconds it
records the node's resident memory, command rate (``hold_mode: none``: a hold publishes
nothing, so the rate drops while the node holds), command interval jitter (p99 and max of
|interval - period|), starvation events, non-finite commands, log lines per second and the
fraction of status reports that called the node healthy.

Writes JSON (the whole time series, per-phase and per-class summaries) and a PNG plot next to it,
and prints a markdown summary. Compare runs made on the same machine.

Isolation: the soak publishes NaN and duplicate joint states, broken images and a 100 kB task,
so it never joins the caller's ROS graph: discovery is localhost-only whatever the environment
says, and the domain is ``--domain-id`` or else a free id of the portable range 52..101 (held
by a lock file while the soak runs, see :mod:`snapflow_ros.dds_domains`) other than the
caller's ``ROS_DOMAIN_ID``.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from snapflow_ros.bench.node_overhead import (
    Bench,
    busy_cores,
    start_node,
    stop_node,
    wait_for_commands,
)
from snapflow_ros.dds_domains import DomainReservation, reserve_domains

FUTURE_NS = 10_000_000_000  # +10 s: a camera driver with a broken clock
HUGE_TASK = "pick up the red cube " * 5000  # ~100 kB
GOOD_TASK = "pick up the red cube"

BAD_INPUTS = (
    "nan_joint",
    "missing_joint",
    "duplicate_joint",
    "bad_encoding",
    "truncated_image",
    "future_stamp",
    "huge_task",
    "camera_silent",
)
"""Classes of bad input the soak cycles through (see :meth:`SoakBench.publish_inputs`)."""

LOG_STAMP = re.compile(r"\[(\d+\.\d+)\]")


class SoakBench(Bench):
    """The feeder of :class:`Bench` with a switchable input class, recording command values."""

    def __init__(self, rate: float) -> None:
        self.mode = "good"
        self._task_mode = "good"
        super().__init__(rate)
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String

        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self._task_pub = self.node.create_publisher(String, "/task", latched)
        self.nonfinite: list[int] = []  # receive times of non-finite commands

    def _on_command(self, msg: Any) -> None:
        super()._on_command(msg)
        if not all(math.isfinite(v) for v in msg.position):
            with self.lock:
                self.nonfinite.append(time.time_ns())

    def _set_task(self, mode: str) -> None:
        from std_msgs.msg import String

        if mode != self._task_mode:
            self._task_mode = mode
            self._task_pub.publish(String(data=HUGE_TASK if mode == "huge_task" else GOOD_TASK))

    def publish_inputs(self, k: int, now_ns: int) -> None:
        """Tick ``k`` of the feed, good or broken the way :attr:`mode` says."""
        from sensor_msgs.msg import JointState

        from snapflow_ros.nodes.synthetic_source import (
            DEFAULT_JOINTS,
            synthetic_frame,
            synthetic_joints,
        )
        from snapflow_ros.ros_conversions import ns_to_stamp_fields, rgb_to_image

        mode = self.mode
        self._set_task(mode)
        stamp_ns = now_ns + (FUTURE_NS if mode == "future_stamp" else 0)
        sec, nsec = ns_to_stamp_fields(stamp_ns)
        if k % 5 in (0, 2):
            for i, pub in enumerate(self.cams):
                if mode == "camera_silent" and i == 0:
                    continue
                img = rgb_to_image(synthetic_frame(now_ns * 1e-9, 48, 64, i), "rgb8")
                if mode == "bad_encoding" and i == 0:
                    img.encoding = "yuv422_bogus"
                if mode == "truncated_image" and i == 1:
                    img.data = bytes(img.data)[: len(img.data) // 2]
                img.header.stamp.sec, img.header.stamp.nanosec = sec, nsec
                pub.publish(img)
        names = list(DEFAULT_JOINTS)
        values = synthetic_joints(now_ns * 1e-9, len(names)).tolist()
        if mode == "nan_joint":
            values[2] = float("nan")
        elif mode == "missing_joint":
            names, values = names[:-1], values[:-1]
        elif mode == "duplicate_joint":
            names[1] = names[0]
        js = JointState(name=names, position=values)
        js.header.stamp.sec, js.header.stamp.nanosec = sec, nsec
        self.joints.publish(js)


def isolate(domain_id: int | None) -> tuple[int, DomainReservation | None]:
    """Localhost-only discovery and the soak's domain (``domain_id``, else a free one other
    than the caller's), set in this process's environment (the node inherits it); the
    reservation holding a chosen id (None for a given one)."""
    caller = os.environ.get("ROS_DOMAIN_ID", "").strip()
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.pop("ROS_STATIC_PEERS", None)
    reservation = None
    if domain_id is None:
        reservation = reserve_domains(1, exclude={int(caller)} if caller.isdigit() else ())
        domain_id = reservation.ids[0]
    elif caller == str(domain_id):
        print(
            f"soak: warning: --domain-id {domain_id} is this shell's ROS_DOMAIN_ID: local nodes "
            "on it receive the bad inputs",
            file=sys.stderr,
            flush=True,
        )
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    return domain_id, reservation


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (NaN if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def log_stamps(log: Path) -> list[float]:
    """Wall-clock stamps (s) of the node's log lines."""
    stamps = []
    for line in log.read_text(errors="replace").splitlines():
        match = LOG_STAMP.search(line)
        if match:
            stamps.append(float(match.group(1)))
    return stamps


def window_stats(
    bench: SoakBench, start_ns: int, end_ns: int, period: float, log_times: list[float]
) -> dict[str, Any]:
    """What happened between ``start_ns`` and ``end_ns`` (wall clock)."""
    with bench.lock:
        cmds = [c for c in bench.commands if start_ns <= c[0] < end_ns]
        nonfinite = sum(start_ns <= t < end_ns for t in bench.nonfinite)
        healthy = [r.healthy for r in bench.reports if start_ns <= r.t_ns < end_ns]
    seconds = (end_ns - start_ns) / 1e9
    dev = np.abs(np.diff([c[0] for c in cmds]) / 1e9 - period) * 1000.0
    logs = sum(start_ns / 1e9 <= t < end_ns / 1e9 for t in log_times)
    return {
        "commands": len(cmds),
        "command_rate_hz": len(cmds) / seconds,
        "interval_p99_dev_ms": float(np.percentile(dev, 99)) if dev.size else None,
        "interval_max_dev_ms": float(dev.max()) if dev.size else None,
        "nonfinite_commands": nonfinite,
        "log_lines_per_s": logs / seconds,
        "healthy_fraction": float(np.mean(healthy)) if healthy else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run both phases; the time series and summaries."""
    from snapflow_ros.cli.demo import find_config
    from snapflow_ros.policies import resolve_policy

    checkpoint = resolve_policy("tiny:smolvla")
    extra = [f"input_timeout:={args.input_timeout}", "hold_mode:=none"]
    proc = start_node(checkpoint, find_config(), args, extra)
    log = proc.log_path
    bench = SoakBench(args.rate)
    samples: list[dict[str, Any]] = []
    period = 1.0 / args.rate
    try:
        wait_for_commands(bench, proc, 180)
        t0 = time.time_ns()
        schedule = [("good", "good", args.good)]
        cycles = max(int(args.bad // args.cycle), 1)
        for i in range(cycles):
            bad = BAD_INPUTS[i % len(BAD_INPUTS)]
            schedule += [("bad", bad, args.cycle / 2), ("bad", f"recover:{bad}", args.cycle / 2)]
        with busy_cores(args.busy_core):
            for phase, mode, seconds in schedule:
                bench.mode = mode if not mode.startswith("recover:") else "good"
                end = time.monotonic() + seconds
                while time.monotonic() < end and proc.alive():
                    w0 = time.time_ns()
                    starv0 = _counter(bench, "starvation_events")
                    time.sleep(min(args.window, max(end - time.monotonic(), 0.05)))
                    w1 = time.time_ns()
                    stats = window_stats(bench, w0, w1, period, log_stamps(log))
                    stats.update(
                        t_s=(w1 - t0) / 1e9,
                        phase=phase,
                        input=mode,
                        rss_mb=rss_mb(proc.pid),
                        starvation_events=_counter(bench, "starvation_events") - starv0,
                    )
                    samples.append(stats)
                    print(_line(stats), flush=True)
                if not proc.alive():
                    break
        alive = proc.alive()
    finally:
        bench.close()
        rc = stop_node(proc)
    return {"samples": samples, "node_alive_at_end": alive, "exit_code": rc, "log": str(log)}


def _counter(bench: SoakBench, name: str) -> int:
    with bench.lock:
        reports = bench.reports
        return int(reports[-1].counters.get(name, 0)) if reports else 0


def _line(s: dict[str, Any]) -> str:
    p99 = s["interval_p99_dev_ms"]
    return (
        f"t={s['t_s']:7.1f}s {s['input']:<24} cmd {s['command_rate_hz']:5.1f} Hz "
        f"p99dev {p99 if p99 is None else round(p99, 2)} ms healthy {s['healthy_fraction']} "
        f"rss {s['rss_mb']:.0f} MB "
        f"logs {s['log_lines_per_s']:.1f}/s starv {s['starvation_events']} "
        f"nonfinite {s['nonfinite_commands']}"
    )


def summarise(samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per input class (good, each bad class, recoveries): means and worst cases."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        key = "recovery" if s["input"].startswith("recover:") else s["input"]
        groups.setdefault(key, []).append(s)
    out = {}
    for key, rows in groups.items():
        p99 = [r["interval_p99_dev_ms"] for r in rows if r["interval_p99_dev_ms"] is not None]
        out[key] = {
            "windows": len(rows),
            "command_rate_hz_mean": float(np.mean([r["command_rate_hz"] for r in rows])),
            "healthy_fraction": _mean([r["healthy_fraction"] for r in rows]),
            "interval_p99_dev_ms_max": max(p99) if p99 else None,
            "log_lines_per_s_max": max(r["log_lines_per_s"] for r in rows),
            "starvation_events": sum(r["starvation_events"] for r in rows),
            "nonfinite_commands": sum(r["nonfinite_commands"] for r in rows),
            "rss_mb_first": rows[0]["rss_mb"],
            "rss_mb_last": rows[-1]["rss_mb"],
        }
    return out


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def table(result: dict[str, Any]) -> str:
    """Markdown summary of a soak run."""
    lines = [
        f"## Policy node soak ({result['rate']:g} Hz, good {result['good_s']:g} s, "
        f"bad {result['bad_s']:g} s, {result['busy_cores']} busy cores)",
        "",
        "| inputs | windows | commands/s | healthy | worst p99 interval dev (ms) | "
        "max log lines/s | starvation | non-finite commands | RSS first -> last (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, s in result["summary"].items():
        p99, healthy = s["interval_p99_dev_ms_max"], s["healthy_fraction"]
        lines.append(
            f"| {key} | {s['windows']} | {s['command_rate_hz_mean']:.1f} | "
            f"{'-' if healthy is None else f'{healthy:.2f}'} | "
            f"{'-' if p99 is None else f'{p99:.2f}'} | {s['log_lines_per_s_max']:.1f} | "
            f"{s['starvation_events']} | {s['nonfinite_commands']} | "
            f"{s['rss_mb_first']:.0f} -> {s['rss_mb_last']:.0f} |"
        )
    lines.append(f"\nnode alive at the end: {result['node_alive_at_end']}")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """RSS, command rate, jitter and log rate over time, bad-input windows shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    t = [s["t_s"] for s in samples]
    series = (
        ("rss_mb", "RSS (MB)"),
        ("command_rate_hz", "commands/s"),
        ("interval_p99_dev_ms", "p99 |interval - period| (ms)"),
        ("log_lines_per_s", "log lines/s"),
    )
    fig, axes = plt.subplots(len(series), 1, figsize=(10, 9), sharex=True)
    for ax, (key, label) in zip(axes, series, strict=True):
        ax.plot(t, [np.nan if s[key] is None else s[key] for s in samples], lw=1)
        ax.set_ylabel(label, fontsize=8)
        for s in samples:
            if s["phase"] == "bad" and not s["input"].startswith("recover:"):
                ax.axvspan(s["t_s"] - result["window_s"], s["t_s"], color="red", alpha=0.08)
    axes[-1].set_xlabel("time (s); shaded: bad inputs")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the soak; prints the summary, writes JSON and a PNG plot."""
    p = argparse.ArgumentParser(
        prog="python -m snapflow_ros.bench.soak", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--good", type=float, default=600.0, help="seconds of good inputs")
    p.add_argument("--bad", type=float, default=600.0, help="seconds cycling bad inputs")
    p.add_argument("--cycle", type=float, default=20.0, help="seconds per bad class + recovery")
    p.add_argument("--window", type=float, default=5.0, help="sampling window (s)")
    p.add_argument("--rate", type=float, default=50.0, help="control rate (Hz)")
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads in the node")
    p.add_argument("--input-timeout", type=float, default=0.5)
    p.add_argument("--busy-core", type=int, default=0, metavar="N")
    p.add_argument(
        "--realtime-priority",
        type=int,
        default=0,
        metavar="P",
        help="the node's realtime_priority parameter (0: normal scheduling)",
    )
    p.add_argument(
        "--domain-id",
        type=int,
        default=None,
        metavar="N",
        help="ROS_DOMAIN_ID of the soak (default: a free id in 52..101 other than the "
        "caller's; discovery is localhost-only either way)",
    )
    p.add_argument("--out", type=Path, default=Path("artifacts/soak.json"))
    args = p.parse_args(argv)
    for name in ("good", "bad", "cycle", "window", "rate"):
        if not getattr(args, name) > 0:
            p.error(f"--{name} must be > 0")
    if args.domain_id is not None and not 0 <= args.domain_id <= 232:
        p.error(f"--domain-id must be in 0..232, got {args.domain_id}")

    from snapflow_ros.bench.machine import machine_info
    from snapflow_ros.bench.output import emit

    domain, reservation = isolate(args.domain_id)
    print(f"soak: ROS_DOMAIN_ID={domain}, localhost-only discovery", flush=True)
    try:
        raw = run(args)
    finally:
        if reservation is not None:
            reservation.release()
    result = {
        "domain_id": domain,
        "rate": args.rate,
        "good_s": args.good,
        "bad_s": args.bad,
        "cycle_s": args.cycle,
        "window_s": args.window,
        "busy_cores": args.busy_core,
        "realtime_priority": args.realtime_priority,
        "bad_inputs": list(BAD_INPUTS),
        **raw,
        "summary": summarise(raw["samples"]),
        "machine": machine_info("cpu"),
        "load_average": os.getloadavg(),
        "command": " ".join(["python -m snapflow_ros.bench.soak", *(argv or sys.argv[1:])]),
    }
    emit(result, table(result), args.out)
    plot(result, args.out.with_suffix(".png"))
    ok = result["node_alive_at_end"] and all(
        s["nonfinite_commands"] == 0 for s in result["summary"].values()
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
