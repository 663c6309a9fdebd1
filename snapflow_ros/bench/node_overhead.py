"""Overhead of the ROS policy node over the bare runtime, and command jitter at 50 Hz.

Usage::

    python -m snapflow_ros.bench.node_overhead [--duration 20] [--rate 50] [--steps 1]
        [--policy-type smolvla] [--busy-core N] [--realtime-priority P]
        [--out artifacts/node_overhead.json]

1. Bare runtime: ``PolicyRuntime.predict_chunk`` in this process on the same kind of
   observation (same checkpoint, steps and torch threads as the node).
2. Node: ``policy_node`` in its own process (DDS isolated: localhost, own domain id), fed by
   this process with two 64x48 rgb8 cameras at 30 Hz and joint states at 50 Hz, each stamped
   when published. For every chunk it measures, with the node's per-chunk status event:

   * ``in``: input transport, node receive time minus the newest input's stamp;
   * ``node``: trigger to chunk published inside the node minus the runtime's own time
     (observation assembly and conversion, scheduling, message building, publishing);
   * ``out``: chunk transport, receive time here minus publish time in the node;
   * ``overhead`` = in + node + out: message in -> chunk out minus runtime time.

   and the command stream (``sensor_msgs/JointState`` at ``--rate``): rate, interval jitter
   (std, p50/p99/max of |interval - period|, from header stamps and from arrival times),
   starvation. Waiting for the replanning trigger is not overhead and is not counted.

Prints a markdown table and writes JSON. Absolute numbers depend on the machine and its load;
compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from snapflow_ros.control.status import ChunkEvent, PeriodicEvent
from snapflow_ros.launching import KILL, ManagedProcess, executable, stop_all, watch


def _pct(values: list[float] | np.ndarray, q: float) -> float:
    arr = np.asarray(values, np.float64)
    return float(np.percentile(arr, q)) if arr.size else float("nan")


def _stats_ms(values: list[float] | np.ndarray) -> dict[str, float]:
    arr = np.asarray(values, np.float64) * 1000.0
    return {
        "p50": _pct(arr, 50),
        "p95": _pct(arr, 95),
        "p99": _pct(arr, 99),
        "mean": float(arr.mean()) if arr.size else float("nan"),
        "n": int(arr.size),
    }


def bare_runtime(checkpoint: Path, steps: int, threads: int, repeats: int) -> dict[str, Any]:
    """Per-stage latency of the runtime alone, in this process."""
    import torch

    from snapflow_ros.nodes.synthetic_source import synthetic_frame, synthetic_joints
    from snapflow_ros.runtime import Observation, PolicyRuntime, RuntimeOptions

    if threads:
        torch.set_num_threads(threads)
    runtime = PolicyRuntime(checkpoint, RuntimeOptions(device="cpu", seed=0))
    totals, stages = [], {k: [] for k in ("preprocess", "prefix", "denoise", "postprocess")}
    for i in range(repeats + 3):
        t = i * 0.033
        images = {}
        for j, key in enumerate(runtime.image_keys):
            _, h, w = runtime.config.input_features[key].shape
            images[key] = synthetic_frame(t, int(h), int(w), j)
        obs = Observation(
            images=images,
            state=synthetic_joints(t, runtime.state_dim).astype(np.float32),
            task="pick up the red cube",
        )
        chunk = runtime.predict_chunk(obs, num_steps=steps)
        if i >= 3:  # warm-up
            totals.append(chunk.timings.total)
            for k in stages:
                stages[k].append(getattr(chunk.timings, k))
    return {"total_ms": _stats_ms(totals), **{f"{k}_ms": _stats_ms(v) for k, v in stages.items()}}


class Bench:
    """The feeder + recorder node of the node measurement (a client of the policy node,
    in this process)."""

    def __init__(self, rate: float) -> None:
        from rclpy.qos import (
            DurabilityPolicy,
            QoSProfile,
            ReliabilityPolicy,
            qos_profile_sensor_data,
        )
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import String
        from trajectory_msgs.msg import JointTrajectory

        from snapflow_ros.client import NodeClient

        self.client = NodeClient("/policy_node", name="node_overhead_bench")
        self.node = n = self.client.node
        self.lock = threading.Lock()
        self.chunks: list[tuple[int, int]] = []  # (recv_ns, stamp_ns)
        self.commands: list[tuple[int, int]] = []  # (recv_ns, stamp_ns)
        deep = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        n.create_subscription(JointTrajectory, "/policy_node/action_chunk", self._on_chunk, deep)
        n.create_subscription(JointState, "/policy_node/command", self._on_command, deep)
        self.cams = [
            n.create_publisher(Image, f"/camera/{c}/image_raw", qos_profile_sensor_data)
            for c in ("front", "wrist")
        ]
        self.joints = n.create_publisher(JointState, "/joint_states", qos_profile_sensor_data)
        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        n.create_publisher(String, "/task", latched).publish(String(data="pick up the red cube"))
        self._stop = threading.Event()
        self._feeder = threading.Thread(target=self._feed, daemon=True)
        self._feeder.start()

    @staticmethod
    def _ns(stamp: Any) -> int:
        return stamp.sec * 1_000_000_000 + stamp.nanosec

    def _on_chunk(self, msg: Any) -> None:
        with self.lock:
            self.chunks.append((time.time_ns(), self._ns(msg.header.stamp)))

    def _on_command(self, msg: Any) -> None:
        with self.lock:
            self.commands.append((time.time_ns(), self._ns(msg.header.stamp)))

    @property
    def events(self) -> list[ChunkEvent]:
        """The node's chunk status events so far."""
        return self.client.events("chunk")

    @property
    def reports(self) -> list[PeriodicEvent]:
        """The node's periodic status reports so far."""
        return self.client.events("periodic")

    def _feed(self) -> None:
        period, k = 1.0 / 50.0, 0
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.publish_inputs(k, time.time_ns())
            k += 1
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))

    def publish_inputs(self, k: int, now_ns: int) -> None:
        """Tick ``k`` of the 50 Hz feed: joint states every tick, both cameras at 20 Hz."""
        from sensor_msgs.msg import JointState

        from snapflow_ros.nodes.synthetic_source import (
            DEFAULT_JOINTS,
            synthetic_frame,
            synthetic_joints,
        )
        from snapflow_ros.ros_conversions import ns_to_stamp_fields, rgb_to_image

        sec, nsec = ns_to_stamp_fields(now_ns)
        if k % 5 in (0, 2):  # 2 of every 5 joint ticks -> 20 Hz
            for i, pub in enumerate(self.cams):
                img = rgb_to_image(synthetic_frame(now_ns * 1e-9, 48, 64, i), "rgb8")
                img.header.stamp.sec, img.header.stamp.nanosec = sec, nsec
                pub.publish(img)
        js = JointState(
            name=DEFAULT_JOINTS,
            position=synthetic_joints(now_ns * 1e-9, len(DEFAULT_JOINTS)).tolist(),
        )
        js.header.stamp.sec, js.header.stamp.nanosec = sec, nsec
        self.joints.publish(js)

    def close(self) -> None:
        """Stop feeding and shut the client down."""
        self._stop.set()
        self._feeder.join(5)
        self.client.close()


SPIN_LOOP = (
    "import os\nos.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))\nwhile True: pass"
)


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """Keep ``count`` CPU cores busy with spin-loop processes (normal scheduling, whatever
    this process runs with) while the block runs."""
    procs = [
        ManagedProcess(f"busy_core_{i}", [sys.executable, "-c", SPIN_LOOP])
        for i in range(max(count, 0))
    ]
    try:
        yield
    finally:
        stop_all(procs, signal.SIGKILL, 10.0, escalate=())


def start_node(
    checkpoint: Path, config: Path, args: argparse.Namespace, extra: list[str] | None = None
) -> ManagedProcess:
    """Start ``policy_node`` for a benchmark (its log in a temporary file, ``log_path``)."""
    log = Path(tempfile.mkdtemp(prefix="node_bench_")) / "policy_node.log"
    cmd = [
        *executable("policy_node"),
        "--ros-args",
        "--params-file",
        str(config),
        "-p",
        f"policy_path:={checkpoint}",
        "-p",
        f"num_steps:={args.steps}",
        "-p",
        f"control_rate:={float(args.rate)}",
        "-p",
        f"torch_threads:={args.threads}",
        "-p",
        "limits.max_delta:=[1000.0]",
        "-p",
        "status_rate:=2.0",
        "-p",
        f"realtime_priority:={args.realtime_priority}",
    ]
    for item in extra or []:
        cmd += ["-p", item]
    return ManagedProcess("policy_node", cmd, log_path=log)


def wait_for_commands(bench: Bench, proc: ManagedProcess, timeout: float) -> None:
    """Block until the node publishes commands; exit with its log if it dies or times out."""
    from snapflow_ros.client import ClientError, wait_until

    try:
        wait_until(lambda: bench.commands, timeout, "commands of policy_node", watch(proc), 0.1)
    except ClientError:
        raise SystemExit(
            f"policy_node did not start; log: {proc.log_path}\n" + proc.log()[-2000:]
        ) from None


def wait_for_report_after(bench: Bench, end_ns: int, timeout: float = 5.0) -> None:
    """Wait for the node's first periodic status report received after ``end_ns`` (its
    counters then cover the measured window); go on without it after ``timeout`` s."""
    from snapflow_ros.client import ClientError, wait_until

    with contextlib.suppress(ClientError):
        wait_until(lambda: bench.client.received("periodic", end_ns), timeout, "a status report")


def stop_node(proc: ManagedProcess) -> int | None:
    """Ctrl-C the node and return its exit code (killed after 30 s)."""
    return proc.stop(signal.SIGINT, 30.0, KILL)


def measure_node(checkpoint: Path, config: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run the node for ``args.duration`` s and compute overhead and jitter."""
    proc = start_node(checkpoint, config, args)
    if args.realtime_priority:  # after starting the node: it must not inherit it
        from snapflow_ros.nodes.process import set_realtime_priority

        why_not = set_realtime_priority(args.realtime_priority)
        if why_not:
            raise SystemExit(f"--realtime-priority {args.realtime_priority}: {why_not}")
    bench = Bench(args.rate)
    try:
        wait_for_commands(bench, proc, 180)
        time.sleep(1.0)  # let the auto replan threshold settle
        start = time.time_ns()
        counters0 = bench.reports[-1].counters if bench.reports else {}
        with busy_cores(args.busy_core):
            time.sleep(args.duration)
        end = time.time_ns()
        wait_for_report_after(bench, end)  # the counters at the end of the window
        counters1 = bench.reports[-1].counters if bench.reports else {}
    finally:
        bench.close()
        rc = stop_node(proc)
    events = bench.events
    with bench.lock:
        chunks, commands = list(bench.chunks), list(bench.commands)
    published = [e for e in events if e.published]
    pairs = [(e, c) for e, c in zip(published, chunks, strict=False) if e.stamp_ns == c[1]]
    rows = [(e, c) for e, c in pairs if start <= e.received_ns < end]
    t_in = [e.input_latency_s for e, _ in rows]
    t_runtime = [e.timings["total"] for e, _ in rows]
    t_node = [(e.published_ns - e.trigger_ns) / 1e9 - e.timings["total"] for e, _ in rows]
    t_out = [(c[0] - e.published_ns) / 1e9 for e, c in rows]
    overhead = [a + b + c for a, b, c in zip(t_in, t_node, t_out, strict=True)]
    cmd = [c for c in commands if start <= c[1] < end]
    period = 1.0 / args.rate
    iv_stamp = np.diff([c[1] for c in cmd]) / 1e9
    iv_recv = np.diff([c[0] for c in cmd]) / 1e9

    def jitter(iv: np.ndarray) -> dict[str, float]:
        dev = np.abs(iv - period) * 1000
        return {
            "std_ms": float(np.std(iv) * 1000) if iv.size else float("nan"),
            "p50_abs_dev_ms": _pct(dev, 50),
            "p99_abs_dev_ms": _pct(dev, 99),
            "max_abs_dev_ms": float(dev.max()) if dev.size else float("nan"),
        }

    seconds = (end - start) / 1e9
    return {
        "exit_code": rc,
        "log": str(proc.log_path),
        "seconds": seconds,
        "chunks": len(rows),
        "chunk_rate_hz": len(rows) / seconds,
        "runtime_in_node_ms": _stats_ms(t_runtime),
        "input_transport_ms": _stats_ms(t_in),
        "node_internal_ms": _stats_ms(t_node),
        "output_transport_ms": _stats_ms(t_out),
        "overhead_ms": _stats_ms(overhead),
        "commands": len(cmd),
        "command_rate_hz": len(cmd) / seconds,
        "command_jitter_stamp": jitter(iv_stamp),
        "command_jitter_arrival": jitter(iv_recv),
        "starvation_events": counters1.get("starvation_events", 0)
        - counters0.get("starvation_events", 0),
        "starved_ticks": counters1.get("starved_ticks", 0) - counters0.get("starved_ticks", 0),
    }


def table(result: dict[str, Any]) -> str:
    """Markdown tables of a result."""
    node, bare = result["node"], result["bare_runtime"]
    f = "{:.2f}".format
    lines = [
        f"## Policy node overhead ({result['policy_type']} tiny, {result['steps']} step(s), "
        f"{result['rate']:g} Hz, {result.get('busy_cores', 0)} busy cores, "
        f"realtime priority {result.get('realtime_priority', 0)}, "
        f"{node['chunks']} chunks in {node['seconds']:.0f} s)",
        "",
        "| per chunk (ms) | p50 | p95 | p99 |",
        "|---|---|---|---|",
    ]
    for label, key in (
        ("bare runtime (this process)", None),
        ("runtime inside the node", "runtime_in_node_ms"),
        ("input transport (DDS in)", "input_transport_ms"),
        ("node internal (convert, schedule, publish)", "node_internal_ms"),
        ("output transport (DDS out)", "output_transport_ms"),
        ("**overhead = in + internal + out**", "overhead_ms"),
    ):
        s = bare["total_ms"] if key is None else node[key]
        lines.append(f"| {label} | {f(s['p50'])} | {f(s['p95'])} | {f(s['p99'])} |")
    js, ja = node["command_jitter_stamp"], node["command_jitter_arrival"]
    lines += [
        "",
        f"| commands at {result['rate']:g} Hz | rate Hz | std ms | p50 dev ms | p99 dev ms | "
        "max dev ms | starvation |",
        "|---|---|---|---|---|---|---|",
        f"| header stamps (timer) | {f(node['command_rate_hz'])} | {f(js['std_ms'])} | "
        f"{f(js['p50_abs_dev_ms'])} | {f(js['p99_abs_dev_ms'])} | {f(js['max_abs_dev_ms'])} | "
        f"{node['starvation_events']} ({node['starved_ticks']} ticks) |",
        f"| arrival here (timer + DDS) | {f(node['command_rate_hz'])} | {f(ja['std_ms'])} | "
        f"{f(ja['p50_abs_dev_ms'])} | {f(ja['p99_abs_dev_ms'])} | {f(ja['max_abs_dev_ms'])} | |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints the tables, writes JSON."""
    p = argparse.ArgumentParser(
        prog="python -m snapflow_ros.bench.node_overhead", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=50.0, help="control rate (Hz)")
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads (node and bare)")
    p.add_argument("--repeats", type=int, default=50, help="bare runtime predictions")
    p.add_argument("--policy-type", choices=("smolvla", "pi05"), default="smolvla")
    p.add_argument(
        "--busy-core",
        type=int,
        default=0,
        metavar="N",
        help="keep N cores busy with spin loops during the node measurement (contention)",
    )
    p.add_argument(
        "--realtime-priority",
        type=int,
        default=0,
        metavar="P",
        help="SCHED_FIFO priority of the node (its realtime_priority parameter) and of this "
        "benchmark's receiving node, so arrival times measure the node and DDS (0: normal)",
    )
    p.add_argument("--out", type=Path, default=Path("artifacts/node_overhead.json"))
    args = p.parse_args(argv)

    from snapflow_ros.bench.machine import machine_info
    from snapflow_ros.bench.output import emit
    from snapflow_ros.cli.demo import find_config, isolate_dds
    from snapflow_ros.policies import resolve_policy

    domain = isolate_dds(None)
    checkpoint = resolve_policy(f"tiny:{args.policy_type}")
    print(f"bare runtime: {args.repeats} predictions ...", flush=True)
    bare = bare_runtime(checkpoint, args.steps, args.threads, args.repeats)
    print(f"node: {args.duration:g} s at {args.rate:g} Hz (ROS_DOMAIN_ID={domain}) ...", flush=True)
    node = measure_node(checkpoint, find_config(), args)
    result = {
        "policy_type": args.policy_type,
        "steps": args.steps,
        "rate": args.rate,
        "threads": args.threads,
        "busy_cores": args.busy_core,
        "realtime_priority": args.realtime_priority,
        "bare_runtime": bare,
        "node": node,
        "machine": machine_info("cpu"),
        "load_average": os.getloadavg(),
        "command": " ".join(
            ["python -m snapflow_ros.bench.node_overhead", *(argv or sys.argv[1:])]
        ),
    }
    emit(result, table(result), args.out)
    return 0 if node["exit_code"] == 0 and node["chunks"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
