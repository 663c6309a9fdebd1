#!/usr/bin/env python3
"""Regenerate the golden bags of ``test/data/golden`` with the project's own tools.

1. ``inputs/``: a live session recorded with ``record``: the tiny SmolVLA policy node driving
   either the simulated LIBERO task through ``libero_bridge`` (default: lock-step, sim time,
   two 64x64 cameras, LeRobot's 8-D state, one short episode) or, with ``--source
   synthetic``, the synthetic camera/joint source (wall clock, two 64x48 cameras at 10 Hz,
   joint states at 20 Hz). Everything the node published (chunks, commands, status) is in it.
2. ``outputs/``: ``replay`` of ``inputs/`` in lock-step through a fresh policy node on sim
   time with the same parameters: the golden chunks CI compares against.
3. ``policy_params.yaml`` (the node's parameters; the tests set ``policy_path``) and
   ``golden.json`` (tiny checkpoint spec and weights fingerprint, topics, commands, counts,
   versions).

Run from the repository root: ``.venv/bin/python scripts/make_golden_bag.py`` (a minute or
two). Regenerate when the tiny checkpoint, the node's chunk computation or the golden
parameters change on purpose, and review the diff of ``golden.json``.
``--checkpoint-only`` rewrites only the checkpoint entry of ``golden.json`` (a new fingerprint
format), keeping the bags; it refuses when the checkpoint built here is not the recorded one.

The weights fingerprint (``test/bags/helpers.py``: exact architecture, per-tensor norms) holds
on any CPU; the bags' float values hold on other CPUs within the tolerance the tests derive.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from snapflow_ros.client import ClientError, NodeClient, wait_until
from snapflow_ros.launching import KILL, ManagedProcess, params_with_overrides, watch
from snapflow_ros.launching import ros_env as launch_env
from snapflow_ros.sim.episode_events import EpisodeEnd, EpisodeEvent, decode_episode_event

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tests' helpers (the repository's own test package)

from test.bags.helpers import fingerprint_differences, weights_fingerprint  # noqa: E402

BIN = Path(sys.executable).parent
GOLDEN = REPO / "test" / "data" / "golden"
COMMON = {"device": "cpu", "seed": 0, "num_steps": 0, "torch_threads": 1, "warmup": 1}
SOURCES: dict[str, dict[str, Any]] = {
    "libero": {
        "config": "libero_policy.yaml",
        "overrides": {**COMMON},
        "bridge": {
            "image_height": 64,
            "image_width": 64,
            "fast_render": True,
            "autostart": False,
            "episode_length": 30,
        },
        "inputs": {
            "/libero/agentview/image_raw": "sensor_msgs/msg/Image",
            "/libero/wrist/image_raw": "sensor_msgs/msg/Image",
            "/libero/lerobot_state": "sensor_msgs/msg/JointState",
            "/libero/task": "std_msgs/msg/String",
        },
        "extra_topics": ["/libero/episode"],
        "state_topic": "/libero/lerobot_state",
    },
    "synthetic": {
        "config": "policy.yaml",
        "overrides": {**COMMON, "control_rate": 10.0, "input_timeout": 1.0, "task.text": ""},
        "source": ["camera_rate:=10.0", "joint_rate:=20.0", "width:=64", "height:=48"],
        "inputs": {
            "/camera/front/image_raw": "sensor_msgs/msg/Image",
            "/camera/wrist/image_raw": "sensor_msgs/msg/Image",
            "/joint_states": "sensor_msgs/msg/JointState",
            "/task": "std_msgs/msg/String",
        },
        "extra_topics": [],
        "state_topic": "/joint_states",
    },
}
CHUNK_TOPIC = "/policy_node/action_chunk"


def params_dict(config: str, key: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """``config/<config>`` with ``overrides`` (dotted names) applied, as a params-file dict."""
    return params_with_overrides(REPO / "config" / config, key, overrides)


def ros_env(domain: int) -> dict[str, str]:
    """Environment isolated on ``domain`` with localhost discovery."""
    env = launch_env(domain)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start(name: str, cmd: list[str], env: dict[str, str], log: Path) -> ManagedProcess:
    """Start a process (own process group) with its output in ``log``."""
    return ManagedProcess(name, cmd, env, log)


def stop(proc: ManagedProcess, timeout: float = 60.0) -> int | None:
    """Ctrl-C, wait, kill if needed."""
    return proc.stop(signal.SIGINT, timeout, KILL)


def live_failed(exc: ClientError, work: Path) -> str:
    """The message a failed live session exits with."""
    return f"golden: the live session did not go as expected: {exc} (see the logs in {work})"


def join_graph(env: dict[str, str]) -> NodeClient:
    """A :class:`NodeClient` of the policy node in this process, on ``env``'s domain and
    discovery range (the processes it watches run in ``env``)."""
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = env["ROS_AUTOMATIC_DISCOVERY_RANGE"]
    os.environ.pop("ROS_LOCALHOST_ONLY", None)
    return NodeClient("/policy_node", int(env["ROS_DOMAIN_ID"]), name="golden_probe", status=False)


def live_libero(
    cfg: dict[str, Any], work: Path, env: dict[str, str], node_cmd: list[str]
) -> list[str]:
    """One LIBERO episode driven by the policy node, recorded from its first step."""
    bridge_params = params_dict("libero_bridge.yaml", "libero_bridge", cfg["bridge"])
    (work / "bridge.yaml").write_text(yaml.safe_dump(bridge_params))
    record = [
        str(BIN / "record"),
        *cfg["inputs"],
        *cfg["extra_topics"],
        "--regex",
        "^/policy_node/",
        "--use-sim-time",
        "-o",
        str(work / "inputs"),
    ]
    bridge = start(
        "libero_bridge",
        [str(BIN / "libero_bridge"), "--ros-args", "--params-file", str(work / "bridge.yaml")],
        env,
        work / "bridge.log",
    )
    node = start("policy_node", node_cmd, env, work / "node_live.log")
    rec = start("record", record, env, work / "record.log")
    alive = watch(bridge, node, rec)
    try:
        wanted = [*cfg["inputs"], CHUNK_TOPIC]
        with join_graph(env) as client:
            episodes: list[EpisodeEvent] = []
            client.node.create_subscription(
                String,
                "/libero/episode",
                lambda msg: episodes.append(decode_episode_event(msg.data)),
                QoSProfile(
                    depth=100,
                    reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.TRANSIENT_LOCAL,
                ),
            )
            wait_until(
                lambda: all(f"recording {t} " in (work / "record.log").read_text() for t in wanted),
                300,
                "the recorder to subscribe (bridge + node up)",
                alive,
                poll=0.2,
            )
            wait_until(
                lambda: client.lifecycle_state(timeout=120, alive=alive) == "active",
                180,
                "the policy node to be active",
                alive,
                poll=0.5,
            )
            client.trigger("/libero_bridge/reset", timeout=120, alive=alive)
            wait_until(
                lambda: any(isinstance(e, EpisodeEnd) for e in episodes),
                600,
                "the end of the episode",
                alive,
                poll=0.1,
            )
            time.sleep(1.0)  # the last messages reach the recorder
    except ClientError as exc:
        raise SystemExit(live_failed(exc, work)) from None
    finally:
        if stop(rec) != 0:
            raise SystemExit("golden: record failed (see record.log)")
        stop(node)
        stop(bridge)
    return [
        "record",
        *cfg["inputs"],
        *cfg["extra_topics"],
        "--regex",
        "^/policy_node/",
        "--use-sim-time",
        "-o",
        "inputs",
    ]


def live_synthetic(
    cfg: dict[str, Any], work: Path, env: dict[str, str], node_cmd: list[str], duration: float
) -> list[str]:
    """The synthetic source and the policy node on the wall clock, ``duration`` s recorded."""
    source = start(
        "synthetic_source",
        [
            str(BIN / "synthetic_source"),
            "--ros-args",
            *[a for p in cfg["source"] for a in ("-p", p)],
        ],
        env,
        work / "source.log",
    )
    node = start("policy_node", node_cmd, env, work / "node_live.log")
    args = [*cfg["inputs"], "--regex", "^/policy_node/", "--duration", str(duration)]
    try:
        with join_graph(env) as client:
            chunks: list[JointTrajectory] = []
            client.node.create_subscription(JointTrajectory, CHUNK_TOPIC, chunks.append, 10)
            wait_until(
                lambda: len(chunks) >= 2,
                300,
                f"two chunks on {CHUNK_TOPIC}",
                watch(source, node),
                poll=0.1,
            )
        rec = subprocess.run(
            [str(BIN / "record"), *args, "-o", str(work / "inputs")],
            env=env,
            timeout=duration + 300,
        )
        if rec.returncode:
            raise SystemExit(f"golden: record failed ({rec.returncode})")
    except ClientError as exc:
        raise SystemExit(live_failed(exc, work)) from None
    finally:
        stop(node)
        stop(source)
    return ["record", *args, "-o", "inputs"]


def main() -> int:
    """Build inputs/ and outputs/ in a temporary folder, then move them into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=GOLDEN)
    parser.add_argument("--source", choices=tuple(SOURCES), default="libero")
    parser.add_argument("--duration", type=float, default=3.0, help="synthetic: seconds recorded")
    parser.add_argument("--domain", type=int, default=os.getpid() % 90 + 5)
    parser.add_argument(
        "--checkpoint-only",
        action="store_true",
        help="only rewrite golden.json's checkpoint entry (the bags stay)",
    )
    args = parser.parse_args()

    from snapflow_ros.bags.io import BagReader, bag_size
    from snapflow_ros.policies.tiny import TinySpec, ensure_tiny_checkpoint

    cfg = SOURCES[args.source]
    if args.source == "libero":
        from snapflow_ros.policies import libero_tiny_spec

        spec = libero_tiny_spec("smolvla")
    else:
        spec = TinySpec(policy_type="smolvla")
    ckpt = ensure_tiny_checkpoint(spec)
    if args.checkpoint_only:
        return rewrite_checkpoint_entry(args.out / "golden.json", spec, ckpt)
    env = ros_env(args.domain)
    work = Path(tempfile.mkdtemp(prefix="golden-"))
    stored = params_dict(cfg["config"], "policy_node", {**cfg["overrides"], "policy_path": ""})
    run = params_dict(cfg["config"], "policy_node", {**cfg["overrides"], "policy_path": str(ckpt)})
    (work / "run_params.yaml").write_text(yaml.safe_dump(run, sort_keys=False))
    node_cmd = [
        str(BIN / "policy_node"),
        "--ros-args",
        "--params-file",
        str(work / "run_params.yaml"),
    ]

    print(f"golden: live {args.source} session (domain {args.domain}) in {work}", flush=True)
    if args.source == "libero":
        record_cmd = live_libero(cfg, work, env, node_cmd)
    else:
        record_cmd = live_synthetic(cfg, work, env, node_cmd, args.duration)

    print("golden: lock-step replay through a fresh sim-time node", flush=True)
    replay_cmd = ["replay", "inputs", "-o", "outputs"]
    node = start(
        "policy_node", [*node_cmd, "-p", "use_sim_time:=true"], env, work / "node_replay.log"
    )
    try:
        t0 = time.monotonic()
        rep = subprocess.run(
            [str(BIN / "replay"), str(work / "inputs"), "-o", str(work / "outputs")],
            env=env,
            timeout=900,
        )
        replay_s = time.monotonic() - t0
        if rep.returncode:
            raise SystemExit(f"golden: replay failed ({rep.returncode}); see {work}")
    finally:
        stop(node)

    counts = {}
    for name in ("inputs", "outputs"):
        with BagReader(work / name) as reader:
            counts[name] = {t: i.count for t, i in sorted(reader.topics.items())}
    info = {
        "made_by": "scripts/make_golden_bag.py --source " + args.source,
        "source": args.source,
        "checkpoint": checkpoint_entry(spec, ckpt),
        "params_config": cfg["config"],
        "node_overrides": cfg["overrides"],
        "inputs": cfg["inputs"],
        "state_topic": cfg["state_topic"],
        "chunk_topic": CHUNK_TOPIC,
        "record": record_cmd,
        "replay": replay_cmd,
        "replay_wall_s": round(replay_s, 1),
        "counts": counts,
        "versions": {"python": sys.version.split()[0], **_versions()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("inputs", "outputs"):
        shutil.rmtree(args.out / name, ignore_errors=True)
        shutil.move(str(work / name), str(args.out / name))
    (args.out / "policy_params.yaml").write_text(
        "# Parameters of the golden policy node (made by scripts/make_golden_bag.py);\n"
        "# the tests set policy_path to the tiny checkpoint described in golden.json.\n"
        + yaml.safe_dump(stored, sort_keys=False)
    )
    (args.out / "golden.json").write_text(json.dumps(info, indent=2) + "\n")
    size = bag_size(args.out / "inputs") + bag_size(args.out / "outputs")
    print(f"golden: wrote {args.out} ({size / 1e6:.2f} MB); counts {json.dumps(counts)}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def checkpoint_entry(spec: Any, ckpt: Path) -> dict[str, Any]:
    """golden.json's description of the tiny checkpoint: its spec and weights fingerprint."""
    return {"tiny_spec": asdict(spec), "weights": weights_fingerprint(ckpt)}


def rewrite_checkpoint_entry(info_path: Path, spec: Any, ckpt: Path) -> int:
    """Replace the checkpoint entry of ``info_path`` if ``ckpt`` is the recorded checkpoint."""
    info = json.loads(info_path.read_text())
    recorded = info["checkpoint"]
    if recorded["tiny_spec"] != json.loads(json.dumps(asdict(spec))):
        raise SystemExit("golden: the tiny spec changed; regenerate the bags instead")
    changed = fingerprint_differences(recorded["weights"], weights_fingerprint(ckpt))
    if changed:
        raise SystemExit(f"golden: not the recorded checkpoint ({changed[:3]}); regenerate")
    info["checkpoint"] = checkpoint_entry(spec, ckpt)
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    print(f"golden: rewrote the checkpoint entry of {info_path}")
    return 0


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {}
    for pkg in ("torch", "lerobot", "rosbags", "numpy"):
        try:
            out[pkg] = version(pkg)
        except Exception:
            out[pkg] = "?"
    return out


if __name__ == "__main__":
    sys.exit(main())
