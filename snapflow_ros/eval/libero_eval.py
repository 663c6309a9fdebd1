"""Closed-loop LIBERO evaluation through ROS 2: bridge + policy node, N episodes per task.

Starts ``libero_bridge`` once and ``policy_node`` once per checkpoint (``--launcher
subprocess``: plain processes with params files; ``--launcher ros2launch``: through
``launch/libero_eval.launch.py``), then for every configuration, suite, task and episode:
pause the policy, select suite/task/initial state on the bridge, reset it (10 settle steps),
reset and resume the policy, and wait for the bridge's episode result. Initial states are the
task's 50 benchmark ones (default) or, with ``--init-states fresh --seed S``, fresh object
placements drawn from the task's own distribution (episode ``i``: seed
``episode_seed(S, i, "eval")``), written to ``<out>/init_states`` and handed to the bridge. Writes
``results.json``, ``episodes.csv``, ``summary.csv``, ``summary.md`` (success table) and, with
``--video``, one mp4 per episode. Configurations compare checkpoints and step counts in one
run: ``--config teacher10=/ckpt/teacher,10 --config teacher1=/ckpt/teacher,1
--config student=/ckpt/student``. A configuration whose path is an ONNX export folder
(``snapflow_export``) runs in the node with ``engine: onnxruntime``, checkpoints with the
node's configured engine. Usage and examples: ``docs/libero.md``.

Exit codes: 0 all episodes ran (whatever their success), 1 the evaluation failed (a process
died, a timeout), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from snapflow_ros.dds_domains import DomainBusy, reserve_domain
from snapflow_ros.eval.launchers import LAUNCHERS
from snapflow_ros.eval.results import percentile_ms, recorded_path
from snapflow_ros.launching import config_dir, node_parameters, params_with_overrides
from snapflow_ros.policies import (
    LIBERO_POLICIES,
    is_embedded,
    is_hub_id,
    is_tiny,
    resolve_policy,
)
from snapflow_ros.sim.placements import INIT_STATES_ENV, noise_seed
from snapflow_ros.sim.scripted_expert import PRIVILEGED_STATE_NAMES, expert_task
from snapflow_ros.sim.suites import (
    NUM_INIT_STATES,
    SUITE_NUM_TASKS,
    SUITES,
    max_steps_for,
)

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
CAMERAS = ("agentview", "wrist")
INIT_STATES = ("benchmark", "fresh")
RENDER_CHOICES = ("auto", "every", "on-demand")
PRIVILEGED_SOURCE = "privileged"  # the policy node's state source for libero/privileged_state
NAME_CHECK_S = 2.0  # s to look for another run's nodes before starting
TWIN_GRACE_S = 15.0  # s a name may be seen twice while this run's stopped node leaves
# The file that makes a folder an ONNX export (runtime/onnx_format.MANIFEST; eval may not
# import the runtime: test/eval/test_libero_eval_onnx.py checks that the two names agree).
EXPORT_MANIFEST = "export.json"
ONNX_ENGINE = "onnxruntime"
DEFAULT_ENGINE = "eager"  # the policy node's default engine (params/policy_node.py)


class UsageError(ValueError):
    """A bad command-line argument (exit code 2)."""


@dataclass
class PolicyConfig:
    """One compared configuration: a name, a checkpoint (or ONNX export folder), a step count
    (0: its default) and the policy node's engine for it (set by :func:`validate`)."""

    name: str
    policy_path: str
    num_steps: int = 0
    resolved_path: str = ""
    engine: str = ""


@dataclass
class EvalPlan:
    """Everything an evaluation run needs, validated."""

    suites: list[str]
    tasks: dict[str, list[int]]
    episodes: int
    init_offset: int
    configs: list[PolicyConfig]
    max_steps: int
    image_size: int
    fast_render: bool
    mode: str
    out: Path
    video: tuple[str, ...]
    launcher: str
    bridge_params: Path
    policy_params: Path
    policy_args: dict[str, Any] = field(default_factory=dict)
    domain: int | None = None
    namespace: str = ""
    startup_timeout: float = 900.0
    episode_timeout: float = 0.0
    init_states: str = "benchmark"
    seed: int = 0
    # fresh placements: SimConfig.placements of the draws (recorded: scenes differ by it)
    placements: str = "settled"
    noise_seed: int = 0  # the node's seed on state i: noise_seed + i (-1: its own seed)
    privileged_state: bool = False
    render: str = "every"  # "every" step, or "on-demand" (render_mode)
    video_size: int = 0  # the bridge's video.size (0: videos of the policy's images)


def parse_config(text: str) -> PolicyConfig:
    """``NAME=PATH[,NUM_STEPS]`` -> :class:`PolicyConfig` (UsageError when malformed)."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise UsageError(f"--config {text!r}: expected NAME=POLICY_PATH[,NUM_STEPS]")
    if not NAME_RE.match(name):
        raise UsageError(f"--config {text!r}: the name may use letters, digits, '_', '-', '.'")
    path, steps = rest, 0
    head, comma, tail = rest.rpartition(",")
    if comma:
        try:
            steps = int(tail)
        except ValueError as exc:
            raise UsageError(
                f"--config {text!r}: NUM_STEPS must be an integer, got {tail!r}"
            ) from exc
        path = head
        if steps < 1:
            raise UsageError(f"--config {text!r}: NUM_STEPS must be >= 1 (omit it for the default)")
    if (is_tiny(path) or is_embedded(path)) and path not in LIBERO_POLICIES:
        raise UsageError(
            f"--config {text!r}: unknown policy name {path!r} ({', '.join(LIBERO_POLICIES)}; "
            "the policy node's tiny:smolvla has other cameras than LIBERO)"
        )
    local = Path(path).expanduser()
    hub = not local.exists() and is_hub_id(path)  # downloaded when the run starts
    if path not in LIBERO_POLICIES and not local.is_dir() and not hub:
        raise UsageError(f"--config {text!r}: {path} is not a checkpoint folder")
    return PolicyConfig(name, path, steps)


def is_export(policy_path: str) -> bool:
    """True when ``policy_path`` is a local ONNX export folder written by ``snapflow_export``."""
    return (Path(policy_path).expanduser() / EXPORT_MANIFEST).is_file()


def config_engine(cfg: PolicyConfig, configured: Any) -> str:
    """The policy node's engine for ``cfg``: ``onnxruntime`` for an ONNX export folder, the
    configured engine (``configured``: from --policy-params / --policy-arg, None when neither
    sets one: the node's default) for a checkpoint. UsageError for an export with a torch
    engine or a checkpoint with ``onnxruntime``."""
    if is_export(cfg.policy_path):
        if configured not in (None, ONNX_ENGINE):
            raise UsageError(
                f"--config {cfg.name}: {cfg.policy_path} is an ONNX export, which only engine "
                f"{ONNX_ENGINE!r} runs, but the policy node's engine is set to {configured!r} "
                "(--policy-arg engine / --policy-params): leave engine unset (exports then run "
                f"with {ONNX_ENGINE}, checkpoints with the node's default) or evaluate the "
                "export in a run of its own"
            )
        return ONNX_ENGINE
    if configured == ONNX_ENGINE:
        raise UsageError(
            f"--config {cfg.name}: {cfg.policy_path} is not an ONNX export (no "
            f"{EXPORT_MANIFEST}) and engine {ONNX_ENGINE!r} runs only exports: export it with "
            f"`snapflow_export {cfg.policy_path} OUT` and pass OUT, or leave engine unset "
            "(libero_eval picks onnxruntime for export folders by itself)"
        )
    return str(configured) if configured is not None else DEFAULT_ENGINE


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise UsageError(f"{what}: expected comma-separated integers, got {text!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    """The command line (``libero_eval --help``)."""
    p = argparse.ArgumentParser(
        prog="libero_eval",
        description="Closed-loop LIBERO evaluation of policies through the ROS 2 policy node.",
    )
    p.add_argument(
        "--suites", default="libero_spatial", help=f"comma-separated suites ({', '.join(SUITES)})"
    )
    p.add_argument(
        "--tasks", default="all", help="task indices in every suite, comma-separated, or 'all'"
    )
    p.add_argument(
        "--episodes",
        type=int,
        default=1,
        help="episodes per task (initial states init-offset .. +N-1)",
    )
    p.add_argument("--init-offset", type=int, default=0, help="first initial state")
    p.add_argument(
        "--init-states",
        choices=INIT_STATES,
        default="benchmark",
        help="the task's 50 benchmark initial states, or fresh seeded object placements",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="--init-states fresh: base seed of the placements"
    )
    p.add_argument(
        "--noise-seed",
        type=int,
        default=0,
        help="the policy node's noise seed on initial state i is this + i (each state its own "
        "noise, every configuration the same on a state); -1: the node's `seed` for every "
        "episode (each episode then draws the same noise sequence)",
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME=PATH[,NUM_STEPS]",
        help="a configuration to evaluate (repeat to compare); PATH: a checkpoint "
        "folder, an ONNX export folder (snapflow_export; run with engine onnxruntime), a Hub "
        f"id or {', '.join(LIBERO_POLICIES)}; default: tiny=tiny:libero",
    )
    p.add_argument(
        "--max-steps",
        type=int,
        default=0,
        help="step limit per episode (0: the suite's, as in LeRobot's eval)",
    )
    p.add_argument("--image-size", type=int, default=256, help="camera image size (square)")
    p.add_argument(
        "--fast-render",
        action="store_true",
        help="no shadows/reflections (faster; images differ from the datasets')",
    )
    p.add_argument(
        "--privileged-state",
        action="store_true",
        help="the bridge also publishes the task object's and target's positions and the node "
        "appends them to the state (policies trained on demonstrations --privileged)",
    )
    p.add_argument("--mode", choices=("lockstep", "realtime"), default="lockstep")
    p.add_argument(
        "--render",
        choices=RENDER_CHOICES,
        default="auto",
        help="render the cameras every step, or only for the observations the policy node "
        "reads (on-demand: same outcomes, several times faster; lock-step, whole chunks, no "
        "video); auto: on-demand where it applies",
    )
    p.add_argument(
        "--video",
        nargs="?",
        const="agentview",
        default="",
        help="write an mp4 per episode: agentview (default), wrist or both",
    )
    p.add_argument(
        "--video-size",
        type=int,
        default=0,
        help="--video: render the video cameras at this size for people, besides the "
        "policy's images (0: the policy's images, enlarged)",
    )
    p.add_argument("--out", default="", help="output folder (default artifacts/libero_eval/<time>)")
    p.add_argument("--launcher", choices=LAUNCHERS, default="subprocess")
    p.add_argument("--bridge-params", default="", help="base bridge params file")
    p.add_argument("--policy-params", default="", help="base policy node params file")
    p.add_argument(
        "--policy-arg",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="extra policy node parameter (YAML value), e.g. device:=cuda",
    )
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID of the run")
    p.add_argument("--namespace", default="", help="ROS namespace of the bridge and the node")
    p.add_argument("--startup-timeout", type=float, default=900.0)
    p.add_argument(
        "--episode-timeout", type=float, default=0.0, help="s per episode (0: 120 + 3 per step)"
    )
    return p


def validate(args: argparse.Namespace) -> EvalPlan:
    """Check every argument; UsageError says what is wrong."""
    import yaml

    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    if not suites:
        raise UsageError("--suites: no suite given")
    unknown = [s for s in suites if s not in SUITE_NUM_TASKS]
    if unknown:
        raise UsageError(f"--suites: unknown {unknown} (known: {', '.join(SUITES)})")
    tasks: dict[str, list[int]] = {}
    for suite in suites:
        n = SUITE_NUM_TASKS[suite]
        chosen = list(range(n)) if args.tasks == "all" else _int_list(args.tasks, "--tasks")
        bad = [t for t in chosen if not 0 <= t < n]
        if bad or not chosen:
            raise UsageError(f"--tasks: {suite} has tasks 0..{n - 1}, got {bad or 'none'}")
        tasks[suite] = chosen
    if args.privileged_state:
        for suite, chosen in tasks.items():
            for task in chosen:
                try:
                    expert_task(suite, task)
                except ValueError as exc:
                    raise UsageError(f"--privileged-state: {exc}") from None
    if args.episodes < 1:
        raise UsageError(f"--episodes: must be >= 1, got {args.episodes}")
    if args.init_offset < 0 or args.init_offset + args.episodes > NUM_INIT_STATES:
        raise UsageError(
            f"--init-offset {args.init_offset} + --episodes {args.episodes}: LIBERO tasks have "
            f"{NUM_INIT_STATES} initial states (0..{NUM_INIT_STATES - 1})"
        )
    if args.seed < 0:
        raise UsageError(f"--seed: must be >= 0, got {args.seed}")
    if args.noise_seed < -1:
        raise UsageError(f"--noise-seed: must be >= -1, got {args.noise_seed}")
    if args.max_steps < 0:
        raise UsageError(f"--max-steps: must be >= 0, got {args.max_steps}")
    if not 16 <= args.image_size <= 1024:
        raise UsageError(f"--image-size: must be in 16..1024, got {args.image_size}")
    configs = [parse_config(c) for c in (args.config or ["tiny=tiny:libero"])]
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise UsageError(f"--config: duplicate names {names}")
    video: tuple[str, ...] = ()
    if args.video:
        video = CAMERAS if args.video == "both" else (args.video,)
        if any(v not in CAMERAS for v in video):
            raise UsageError(f"--video: agentview, wrist or both, got {args.video!r}")
    if not (args.video_size == 0 or 16 <= args.video_size <= 1024):
        raise UsageError(f"--video-size: must be 0 or in 16..1024, got {args.video_size}")
    if args.video_size and not video:
        raise UsageError("--video-size needs --video")
    policy_args: dict[str, Any] = {}
    for item in args.policy_arg:
        key, sep, value = item.partition(":=")
        if not sep or not key:
            raise UsageError(f"--policy-arg {item!r}: expected NAME:=VALUE")
        policy_args[key] = yaml.safe_load(value)
    if "seed" in policy_args and args.noise_seed >= 0:
        raise UsageError(
            "--policy-arg seed:=... is replaced at every episode by --noise-seed (state i: "
            f"{args.noise_seed} + i); pass --noise-seed -1 to run every episode with that seed"
        )
    files = {}
    for what, given, default in (
        ("--bridge-params", args.bridge_params, "libero_bridge.yaml"),
        ("--policy-params", args.policy_params, "libero_policy.yaml"),
    ):
        path = Path(given) if given else config_dir() / default
        if not path.is_file():
            raise UsageError(f"{what}: {path} does not exist")
        files[what] = path
    configured = node_parameters(
        params_with_overrides(files["--policy-params"], "policy_node", policy_args), "policy_node"
    ).get("engine")
    for cfg in configs:
        cfg.engine = config_engine(cfg, configured)
    if args.domain_id is not None and not 0 <= args.domain_id <= 232:
        raise UsageError(f"--domain-id: must be in 0..232, got {args.domain_id}")
    if args.namespace and not re.match(r"^(/[A-Za-z][A-Za-z0-9_]*)+$", args.namespace):
        raise UsageError(f"--namespace: not a ROS namespace: {args.namespace!r} (e.g. /eval)")
    if args.startup_timeout <= 0 or args.episode_timeout < 0:
        raise UsageError("--startup-timeout must be > 0 and --episode-timeout >= 0")
    render = render_mode(
        args.render,
        args.mode,
        bool(video),
        node_parameters(
            params_with_overrides(files["--policy-params"], "policy_node", policy_args),
            "policy_node",
        ),
    )
    out = (
        Path(args.out)
        if args.out
        else Path("artifacts/libero_eval") / time.strftime("%Y%m%d-%H%M%S")
    )
    return EvalPlan(
        suites=suites,
        tasks=tasks,
        episodes=args.episodes,
        init_offset=args.init_offset,
        configs=configs,
        max_steps=args.max_steps,
        image_size=args.image_size,
        fast_render=args.fast_render,
        mode=args.mode,
        out=out,
        video=video,
        launcher=args.launcher,
        bridge_params=files["--bridge-params"],
        policy_params=files["--policy-params"],
        policy_args=policy_args,
        domain=args.domain_id,
        namespace=args.namespace,
        startup_timeout=args.startup_timeout,
        episode_timeout=args.episode_timeout,
        init_states=args.init_states,
        seed=args.seed,
        noise_seed=args.noise_seed,
        privileged_state=args.privileged_state,
        render=render,
        video_size=args.video_size,
    )


def render_mode(choice: str, mode: str, video: bool, node: dict[str, Any]) -> str:
    """``every`` or ``on-demand`` for ``--render choice`` (``node``: the policy node's
    parameters). On demand, the bridge renders only where the node's chunk runs out, which is
    where the node reads an image only when it executes whole chunks: lock-step, a replan
    threshold of 0, chunks published; every frame is needed for a video."""
    threshold = node.get("replan_threshold", -1.0)
    chunk = node.get("chunk") or {}
    why = ""
    if mode != "lockstep":
        why = "it needs --mode lockstep"
    elif video:
        why = "a video needs every frame"
    elif not isinstance(threshold, int | float) or float(threshold) != 0.0:
        why = f"the node re-plans before its chunk runs out (replan_threshold {threshold!r})"
    elif chunk.get("publish") is False:
        why = "the node publishes no chunks (chunk.publish false)"
    if choice == "on-demand" and why:
        raise UsageError(f"--render on-demand: {why}")
    return "every" if why or choice == "every" else "on-demand"


def chunk_topic(node: dict[str, Any]) -> str:
    """The policy node's chunk topic as the bridge names it (relative to the namespace)."""
    topic = str((node.get("chunk") or {}).get("topic") or "~/action_chunk")
    return f"policy_node/{topic[2:]}" if topic.startswith("~/") else topic


def privileged_hint(node_log: str, privileged_state: bool) -> str:
    """A hint line when the node refused the policy for a state short by exactly the
    privileged values and ``--privileged-state`` is off; otherwise ``""``."""
    width = re.search(r"state: the sources give (\d+) values .*the policy expects (\d+)", node_log)
    missing = int(width[2]) - int(width[1]) if width else 0
    if privileged_state or missing != len(PRIVILEGED_STATE_NAMES):
        return ""
    return (
        "\nhint: a policy trained on `demonstrations --privileged` takes the 8 "
        "LIBERO values + 6 privileged ones: add --privileged-state"
    )


def privileged_source(policy_params: Path) -> dict[str, Any]:
    """Policy node overrides that append the bridge's ``libero/privileged_state`` (6 values,
    taken by name) to the state sources of ``policy_params``."""
    params = node_parameters(params_with_overrides(policy_params, "policy_node", {}), "policy_node")
    sources = list((params.get("state") or {}).get("sources") or [])
    return {
        "state.sources": [*sources, PRIVILEGED_SOURCE],
        f"state.{PRIVILEGED_SOURCE}.type": "joint_state",
        f"state.{PRIVILEGED_SOURCE}.topic": "libero/privileged_state",
        f"state.{PRIVILEGED_SOURCE}.names": list(PRIVILEGED_STATE_NAMES),
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def plan_record(plan: EvalPlan) -> dict[str, Any]:
    """The plan as results.json records it: checkpoints, files and folders as the user named
    them (:func:`~snapflow_ros.eval.results.recorded_path`), not as this machine resolved them."""
    record = asdict(plan)
    for key, value in record.items():
        if isinstance(value, Path):
            record[key] = recorded_path(value)
    for entry in record["configs"]:
        for key in ("policy_path", "resolved_path"):
            entry[key] = recorded_path(entry[key])
    return record


def _init_label(init_states: str) -> str:
    """``init`` (benchmark initial state) or ``fresh`` (fresh placement) in names and logs."""
    return "fresh" if init_states == "fresh" else "init"


# ---------------------------------------------------------------------------------------------
# running
class Runner:
    """Runs an :class:`EvalPlan` (processes, client, episodes, reports)."""

    def __init__(self, plan: EvalPlan) -> None:
        from snapflow_ros.eval.client import EvalClient, Names
        from snapflow_ros.launching import ros_env

        self.plan = plan
        self.names = Names(plan.namespace)
        self.env = ros_env(plan.domain)
        self.domain = int(self.env.get("ROS_DOMAIN_ID", "0") or 0)
        self.client = EvalClient(
            self.domain, self.names, plan.video, "video_raw" if plan.video_size else "image_raw"
        )
        self.bridge: Any = None
        self.node: Any = None
        self.episodes: list[dict[str, Any]] = []
        self.placement_seeds: dict[tuple[str, int], list[int]] = {}

    def _fresh_init_states(self) -> Path:
        """Draw the fresh initial states of every task and write them where the bridge reads."""
        from snapflow_ros.sim.libero_env import sample_fresh_init_states
        from snapflow_ros.sim.placements import write_init_states

        plan = self.plan
        folder = (plan.out / "init_states").resolve()
        count = plan.init_offset + plan.episodes
        for suite in plan.suites:
            for task in plan.tasks[suite]:
                print(
                    f"libero_eval: drawing {count} fresh placements of {suite} task {task} "
                    f"(seed {plan.seed})",
                    flush=True,
                )
                states, seeds = sample_fresh_init_states(
                    suite, task, plan.seed, count, "eval", plan.placements
                )
                write_init_states(folder, suite, task, states, seeds)
                self.placement_seeds[(suite, task)] = seeds
        return folder

    def _check_names_free(self, wait: float = NAME_CHECK_S) -> None:
        """EvalError when a bridge or policy node with this run's names is already in the
        graph: two runs on one domain and namespace would reset each other's episodes."""
        from snapflow_ros.client import WaitTimeout, wait_until

        def taken() -> list[str]:
            names = (self.names.bridge, self.names.policy)
            return [n for n in names if self.client.ros.has_node(n)]

        try:  # discovery of other participants takes a moment: watch the graph for ``wait`` s
            names = wait_until(taken, wait, "another run's nodes in the graph", poll=0.1)
        except WaitTimeout:
            return
        raise self._names_taken(names)

    def _names_taken(self, names: list[str]) -> Exception:
        from snapflow_ros.eval.client import EvalError

        return EvalError(
            f"{' and '.join(names)} already running on ROS_DOMAIN_ID {self.domain} "
            "(another libero_eval, a launch or a robot): pass another --domain-id or "
            "--namespace"
        )

    def _check_no_twins(self, grace: float = TWIN_GRACE_S) -> None:
        """EvalError when another node has this run's bridge or policy node name.

        The check before start can only watch the graph for a while; under load another
        participant may be discovered later. Once this run's own nodes are up, a name seen
        twice is a twin, unless the second entry is this run's previous policy node on its
        way out of the graph (a configuration group restarts the node): a name still seen
        twice after ``grace`` s is a twin. Checked before every episode.
        """
        from snapflow_ros.client import WaitTimeout, wait_until

        def twins() -> list[str]:
            names = (self.names.bridge, self.names.policy)
            return [n for n in names if self.client.ros.node_count(n) > 1]

        if not twins():
            return
        try:
            wait_until(lambda: not twins(), grace, "a stopped node leaving the graph", poll=0.1)
        except WaitTimeout:
            raise self._names_taken(twins()) from None

    def _alive(self) -> str:
        from snapflow_ros.launching import first_exit

        return first_exit((self.bridge, self.node), log_lines=30)

    def _start(self, kind: str, params: Path, log_name: str) -> Any:
        from snapflow_ros.eval.launchers import start_node

        return start_node(
            kind,
            params,
            self.plan.launcher,
            self.plan.out / "logs" / log_name,
            self.env,
            self.plan.namespace,
        )

    def run(self) -> int:
        """Run every episode; returns the exit code."""
        from snapflow_ros.eval.client import EvalError
        from snapflow_ros.launching import write_params

        plan = self.plan
        params_dir = plan.out / "params"
        bridge_file = write_params(
            plan.bridge_params,
            "libero_bridge",
            {
                "image_height": plan.image_size,
                "image_width": plan.image_size,
                "fast_render": plan.fast_render,
                "autostart": False,
                "auto_next": False,
                "mode": plan.mode,
                "episode_length": plan.max_steps,
                "suite": plan.suites[0],
                "task_index": plan.tasks[plan.suites[0]][0],
                "privileged_state": plan.privileged_state,
                "render.on_demand": plan.render == "on-demand",
                "render.chunk_topic": chunk_topic(
                    node_parameters(
                        params_with_overrides(plan.policy_params, "policy_node", plan.policy_args),
                        "policy_node",
                    )
                ),
                "policy_node": "",  # this run pauses, resets and resumes the node itself
                "video.size": plan.video_size,
                "video.cameras": list(plan.video) or ["agentview"],
            },
            params_dir / "libero_bridge.yaml",
        )
        code = 0
        try:
            if plan.init_states == "fresh":
                self.env[INIT_STATES_ENV] = str(self._fresh_init_states())
            else:  # an inherited folder must not replace the benchmark states unnoticed
                self.env.pop(INIT_STATES_ENV, None)
            self._check_names_free()
            self.bridge = self._start("libero_bridge", bridge_file, "libero_bridge.log")
            groups: dict[str, list[PolicyConfig]] = {}
            for cfg in plan.configs:
                try:
                    cfg.resolved_path = str(resolve_policy(cfg.policy_path))
                except ValueError as exc:  # an unreachable Hub id, a shipped policy missing
                    raise EvalError(f"--config {cfg.name}: {exc}") from exc
                groups.setdefault(cfg.resolved_path, []).append(cfg)
            for i, (path, configs) in enumerate(groups.items()):
                self._run_group(i, path, configs, params_dir)
        except EvalError as exc:
            print(f"libero_eval: evaluation failed: {exc}", file=sys.stderr)
            code = 1
        except KeyboardInterrupt:
            print("libero_eval: interrupted", file=sys.stderr)
            code = 130
        finally:
            for proc in (self.node, self.bridge):
                if proc is not None:
                    proc.stop()
            self.client.close()
            self._write()
        return code

    def _run_group(
        self, index: int, path: str, configs: list[PolicyConfig], params_dir: Path
    ) -> None:
        from snapflow_ros.eval.client import EvalError
        from snapflow_ros.launching import write_params

        plan = self.plan
        overrides = {
            "policy_path": path,
            "use_sim_time": plan.mode == "lockstep",
            **(privileged_source(plan.policy_params) if plan.privileged_state else {}),
            **plan.policy_args,
            **({"engine": ONNX_ENGINE} if configs[0].engine == ONNX_ENGINE else {}),
        }
        policy_file = write_params(
            plan.policy_params, "policy_node", overrides, params_dir / f"policy_node_{index}.yaml"
        )
        self.node = self._start("policy_node", policy_file, f"policy_node_{index}.log")
        state = self.client.lifecycle_state(self.names.policy, plan.startup_timeout, self._alive)
        if state != "active":
            tail = self.node.log_tail()
            raise EvalError(
                f"the policy node is {state!r}, not active (configure failed?); its log ends "
                f"with:\n{tail}{privileged_hint(tail, plan.privileged_state)}"
            )
        for cfg in configs:
            self.client.set_params(
                self.names.policy, {"num_steps": cfg.num_steps}, alive=self._alive
            )
            for suite in plan.suites:
                for task in plan.tasks[suite]:
                    for ep in range(plan.episodes):
                        record = self._episode(cfg, suite, task, plan.init_offset + ep)
                        self.episodes.append(record)
                        self._write(final=False)  # nothing measured is lost to a kill
                        # Printed only once recorded and written: a user who stops the run
                        # on seeing this line finds the episode in the reports.
                        print(_episode_line(record, plan.init_states), flush=True)
        self.node.stop()
        self.node = None

    def _episode(self, cfg: PolicyConfig, suite: str, task: int, init: int) -> dict[str, Any]:
        plan, names, client = self.plan, self.names, self.client
        alive = self._alive
        self._check_no_twins()
        client.trigger(f"{names.policy}/pause", alive=alive)
        client.set_params(
            names.bridge,
            {"suite": suite, "task_index": task, "init_state_index": init},
            alive=alive,
        )
        if plan.video:
            client.record_frames(0)
        started = time.monotonic()
        start = client.reset_episode(plan.startup_timeout, alive)
        seed = noise_seed(plan.noise_seed, init)
        if seed is not None:  # applies at the reset below
            client.set_params(names.policy, {"seed": seed}, alive=alive)
        client.trigger(f"{names.policy}/reset", alive=alive)
        client.trigger(f"{names.policy}/resume", alive=alive)
        steps = max_steps_for(suite, plan.max_steps)
        timeout = plan.episode_timeout or 120.0 + 3.0 * steps
        end = client.wait_end(start.episode_id, timeout, alive)
        chunks = [
            c
            for c in client.chunks_since(started)
            if c.accepted
            and (plan.mode != "lockstep" or (c.stamp_ns is not None and c.stamp_ns < end.end_ns))
        ]  # lock-step: not the chunk computed from the final observation
        video = ""
        if plan.video:
            video = self._write_video(cfg, suite, task, init, start.first_stamp_ns)
        totals = [c.timings["total"] for c in chunks if c.timings]
        record = {
            "config": cfg.name,
            "policy_path": recorded_path(cfg.policy_path),
            "num_steps": cfg.num_steps,
            "engine": cfg.engine,
            "suite": suite,
            "task_index": task,
            "task": end.task,
            "init_state_index": init,
            "init_states": plan.init_states,
            "placement_seed": (
                self.placement_seeds[(suite, task)][init] if plan.init_states == "fresh" else None
            ),
            "noise_seed": seed,
            "episode_id": end.episode_id,
            "success": end.success,
            "steps": end.steps,
            "reason": end.reason,
            "max_steps": end.max_steps,
            "wall_s": end.wall_s,
            "steps_per_s": end.steps_per_s,
            "sim_step_mean_s": end.step_mean_s,
            "wait_mean_s": end.wait_mean_s,
            "chunks": len(chunks),
            "inference_mean_s": sum(totals) / len(totals) if totals else None,
            "latency_p50_ms": percentile_ms(totals, 50),
            "latency_p95_ms": percentile_ms(totals, 95),
            "inference_s": totals,
            "chunk_num_steps": sorted({c.num_steps for c in chunks}),
            "kicks": end.kicks,
            "rendered_steps": end.rendered_steps,
            "rejected_commands": end.commands.rejected,
            "commands": asdict(end.commands),
            "final_state": end.final_state,
            "objects": end.objects,
            "video": video,
        }
        return record

    def _write_video(
        self, cfg: PolicyConfig, suite: str, task: int, init: int, first_stamp: int
    ) -> str:
        from snapflow_ros.sim.video import side_by_side, upscale_for_viewing, write_mp4

        frames = self.client.frames(first_stamp)
        self.client.record_frames(None)
        images = [side_by_side([f[c] for c in self.plan.video]) for f in frames]
        if not self.plan.video_size:  # the policy's small images: enlarged to be seen
            images = [upscale_for_viewing(image) for image in images]
        if not images:
            return ""
        label = _init_label(self.plan.init_states)
        path = self.plan.out / "videos" / cfg.name / f"{suite}_task{task}_{label}{init}.mp4"
        return recorded_path(write_mp4(path, images, fps=20))

    def _write(self, final: bool = True) -> None:
        """Write the reports of the episodes so far (``final``: and print the table)."""
        from snapflow_ros.eval.results import write_reports

        try:
            from snapflow_ros.bench.machine import machine_info

            machine = machine_info("cpu")
        except Exception:  # machine info is best effort
            machine = {}
        meta = {
            "plan": plan_record(self.plan),
            "machine": machine,
            "domain_id": self.domain,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        paths = write_reports(self.plan.out, meta, self.episodes)
        if not final:
            return
        print(f"libero_eval: wrote {', '.join(str(p) for p in paths.values())}", flush=True)
        if self.episodes:
            print(paths["markdown"].read_text(), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``libero_eval`` (exit 2 on bad arguments)."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        plan = validate(args)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"libero_eval: error: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    domain = plan.domain if plan.domain is not None else int(os.environ.get("ROS_DOMAIN_ID") or 0)
    try:  # held while the run lasts: no test run or other tool takes it meanwhile
        reservation = reserve_domain(domain)
    except DomainBusy as exc:
        print(f"libero_eval: error: {exc} (--domain-id)", file=sys.stderr)
        return 2
    # Ctrl-C and SIGTERM (a job scheduler, `kill`) both stop the run cleanly: the processes
    # are stopped and the results so far written. SIGINT is set explicitly: a shell starting
    # the run in the background would otherwise leave it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return Runner(plan).run()
    finally:
        if reservation is not None:
            reservation.release()


def _episode_line(record: dict[str, Any], init_states: str) -> str:
    """The one-line progress report of a finished episode."""
    return (
        f"[{record['config']}] {record['suite']} task {record['task_index']} "
        f"{_init_label(init_states)} {record['init_state_index']}: "
        f"{'SUCCESS' if record['success'] else 'fail'} ({record['reason']}) "
        f"{record['steps']} steps, {record['wall_s']:.1f} s, {record['chunks']} chunks, latency "
        f"p50 {_ms(record['latency_p50_ms'])} / p95 {_ms(record['latency_p95_ms'])} ms"
    )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
