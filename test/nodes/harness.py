"""Test harness: run the policy node (as a separate process, or in this process in its own
rclpy Context) and talk to it over real DDS, through the package's own client
(:class:`snapflow_ros.client.NodeClient`) plus the topics a robot would publish and read.

Isolation: every test module gets ``ROS_DOMAIN_ID`` values of its own (:func:`domain_id`: ids
of the portable range that no other process on this host holds while this session runs) and
localhost-only discovery; everything waits for matching or for the awaited messages instead of
sleeping for fixed times.

Failures off the test's thread are not lost: a callback of an in-process node that raises, or a
feed thread that dies, is recorded; every wait of this module fails at once naming it, and
test/conftest.py fails the test during which it happened (:func:`take_failures`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from snapflow_ros import launching
from snapflow_ros.client import ClientError, NodeClient, wait_until
from snapflow_ros.control.status import PeriodicEvent
from snapflow_ros.dds_domains import DomainReservation, DomainsExhausted, reserve_domains
from snapflow_ros.nodes.synthetic_source import synthetic_frame, synthetic_joints
from snapflow_ros.ros_conversions import (
    ns_to_stamp_fields,
    rgb_to_compressed,
    rgb_to_image,
    stamp_to_ns,
)
from test.config_files import flat_parameters

REPO = Path(__file__).resolve().parents[2]
JOINTS = ["joint_1", "joint_2", "joint_3", "joint_4", "joint_5", "joint_6", "joint_7", "gripper"]
ACTIONS = ["joint_1", "joint_2", "joint_3", "joint_4", "joint_5", "joint_6", "gripper"]


DOMAIN_POOL_SIZE = 8
"""Domain ids a test session holds (about six sessions fit the portable range at once)."""
DOMAIN_POOL_MIN = 5
"""Fewer free ids than this: the session fails to start instead of sharing too few."""


class _DomainPool:
    """The session's domain ids: :data:`DOMAIN_POOL_SIZE` ids reserved (lock files, see
    :mod:`snapflow_ros.dds_domains`) on first use and held until the process exits; each new
    key gets the next one in turn."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reservations: list[DomainReservation] = []
        self._ids: list[int] = []
        self._next = 0
        self._by_key: dict[tuple[int, int], int] = {}
        self._by_module: dict[str, set[int]] = {}  # the ids each test module uses

    def _exclude(self) -> set[int]:
        caller = os.environ.get("ROS_DOMAIN_ID", "")
        return {int(caller)} if caller.isdigit() else set()  # the developer's own graph

    def _reserve_pool(self) -> None:
        try:
            held = reserve_domains(DOMAIN_POOL_SIZE, exclude=self._exclude(), contiguous=True)
        except DomainsExhausted:
            held = reserve_domains(
                DOMAIN_POOL_SIZE, minimum=DOMAIN_POOL_MIN, exclude=self._exclude()
            )
        self._reservations.append(held)
        self._ids = held.ids

    def get(self, key: int, span: int, module: str = "") -> int:
        with self._lock:
            if (key, span) in self._by_key:
                return self._by_key[(key, span)]
            if not self._ids:
                self._reserve_pool()
            taken = self._by_module.setdefault(module, set())
            n = len(self._ids)
            runs = []  # (ring position, first id) of each run of ``span`` consecutive ids
            for step in range(n):
                i = (self._next + step) % n
                block = self._ids[i : i + span]
                if block == list(range(block[0], block[0] + span)):
                    runs.append((i, block[0]))
            # the next run in turn that this module does not use yet, else the next run
            fresh = [r for r in runs if not taken & set(range(r[1], r[1] + span))]
            if fresh or runs:
                i, first = (fresh or runs)[0]
                self._next = (i + span) % n
            else:  # no run of ``span`` consecutive ids in the pool: a block of its own
                extra = reserve_domains(span, exclude=self._exclude(), contiguous=True)
                self._reservations.append(extra)
                first = extra.ids[0]
            taken.update(range(first, first + span))
            self._by_key[(key, span)] = first
            return first


_DOMAINS = _DomainPool()


def domain_id(offset: int, span: int = 1) -> int:
    """The ROS domain id of ``offset`` (any int naming a module's or test's domain) in this
    session: an id of the portable range 52..101 that no other process on this host holds
    (a lock file per id, held until this process exits). The same offset gives the same id;
    new offsets take the session's ids in turn, each of one test module a different one
    (modules run one after the other; an id comes back about :data:`DOMAIN_POOL_SIZE`
    offsets later). ``span``: the first of that many consecutive ids, for a tool that
    numbers its domains itself (``libero_proof.sh``)."""
    return _DOMAINS.get(offset, span, sys._getframe(1).f_globals.get("__name__", ""))


def ros_env(domain: int) -> dict[str, str]:
    """Environment of a child process isolated on ``domain`` (localhost discovery only)."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_LOCALHOST_ONLY", None)
    env.pop("ROS_STATIC_PEERS", None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def tool_env_with_cache(tiny_cache: Path, tmp_path: Path, domain: int) -> dict[str, str]:
    """Environment of a tool run on ``domain`` (:func:`ros_env`; the tools that isolate DDS
    themselves take their domain from ``ROS_DOMAIN_ID`` when it is set), reusing the
    session's tiny checkpoints through ``$SNAPFLOW_CACHE/tiny``."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tiny").symlink_to(tiny_cache)
    env = ros_env(domain)
    env["SNAPFLOW_CACHE"] = str(cache)
    return env


@dataclass(eq=False)
class Failure:
    """Something that failed off the test's thread (a node callback, a feed thread)."""

    source: str
    text: str
    reported: bool = False


_failures_lock = threading.Lock()
_failures: list[Failure] = []
_dead_feeds: dict[int, Failure] = {}  # id(Harness) -> its feed thread's failure, while open


def record_failure(source: str, text: str) -> Failure:
    """Record a failure that happened on another thread (see :func:`take_failures`)."""
    failure = Failure(source, text)
    with _failures_lock:
        _failures.append(failure)
    return failure


def take_failures() -> list[Failure]:
    """The failures not reported yet, now marked reported (test/conftest.py calls this after
    each phase of each test, so a failure fails the test during which it happened)."""
    with _failures_lock:
        new = [f for f in _failures if not f.reported]
        for f in new:
            f.reported = True
        _failures[:] = []
    return new


def describe(failures: list[Failure]) -> str:
    """Failures as one message."""
    lines = []
    for f in failures:
        last = f.text.strip().splitlines()[-1] if f.text.strip() else ""
        lines.append(f"{f.source} failed: {last}\n{f.text.rstrip()}")
    return "\n".join(lines)


def broken() -> str | None:
    """What stops a wait from ever succeeding: a feed thread that died (reported by every
    wait while its harness is open) or a node callback that failed (reported once)."""
    with _failures_lock:
        new = [f for f in _failures if not f.reported and f not in _dead_feeds.values()]
        dead = list(_dead_feeds.values())
    if not new and not dead:
        return None
    for f in new:
        f.reported = True
    for f in dead:  # the test that sees it in a wait reports it; later waits still name it
        f.reported = True
    return describe([*dead, *new])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 0.02) -> Any:
    """Poll ``predicate`` until it is truthy; fail naming ``what`` after ``timeout`` s, or at
    once when a feed thread or a node callback has failed (:func:`broken`)."""
    try:
        return wait_until(predicate, timeout, what, alive=broken, poll=poll)
    except ClientError as exc:
        raise AssertionError(str(exc)) from None


def write_params(path: Path, overrides: dict[str, Any]) -> Path:
    """The default config/policy.yaml with ``overrides`` (dotted names) applied."""
    return launching.write_params(REPO / "config" / "policy.yaml", "policy_node", overrides, path)


def console_script(name: str) -> str:
    """Path of a console script installed in this venv (what launch runs)."""
    path = Path(sys.executable).parent / name
    assert (
        path.is_file()
    ), f"{name} not installed: pip install --no-deps -e . after setup.py changes"
    return str(path)


class LoggedProcess(launching.ManagedProcess):
    """A command in its own process group, its output in a log file; a context manager."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path) -> None:
        super().__init__(Path(cmd[0]).name, cmd, env, log_path)


class NodeProcess(LoggedProcess):
    """``policy_node --ros-args --params-file FILE [-p k:=v ...]`` in its own process."""

    def __init__(
        self, params_file: Path, domain: int, log_path: Path, extra_args: list[str] | None = None
    ) -> None:
        cmd = [console_script("policy_node"), "--ros-args", "--params-file", str(params_file)]
        for arg in extra_args or []:
            cmd += ["-p", arg]
        super().__init__(cmd, ros_env(domain), log_path)


@dataclass
class Feed:
    """What the feeder publishes (changed by the tests while it runs)."""

    # good | stale | bad_encoding | bad_size | nan_joint | missing_joint | duplicate_joint
    mode: str = "good"
    cameras: tuple[str, ...] = ("front", "wrist")
    silent: set[str] = field(default_factory=set)  # cameras not published
    stamp_offset: float = 0.0  # seconds added to every stamp (<0: old data, >0: clock skew)
    paused: bool = False  # publish nothing
    published: int = 0


@dataclass
class Recorded:
    """A message and when it arrived (ns, this process's clock)."""

    msg: Any
    recv_ns: int


class Harness:
    """A test-side ROS node: feeds cameras/joints/task, records chunks/commands/status/diag."""

    def __init__(
        self,
        domain: int,
        ns: str = "/policy_node",
        command_type: type = JointState,
        command_topic: str | None = None,
        compressed: tuple[str, ...] = (),
        encodings: dict[str, str] | None = None,
    ) -> None:
        # this process too: localhost-only discovery (read when the context starts)
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        os.environ.pop("ROS_STATIC_PEERS", None)
        self.client = NodeClient(ns, domain, name="test_harness")
        self.node = self.client.node
        self.ns = ns
        self.feed = Feed()
        self.lock = threading.Lock()
        self.chunks: list[Recorded] = []
        self.commands: list[Recorded] = []
        self.status: list[Recorded] = []  # the raw messages (sizes on the wire)
        self.diagnostics: list[Recorded] = []
        self.image_stamps: list[int] = []
        self.joint_stamps: list[int] = []
        node = self.node
        self.compressed = set(compressed)
        self.encodings = encodings or {}
        self.cam_pubs = {
            name: node.create_publisher(
                CompressedImage, f"/camera/{name}/image_raw/compressed", qos_profile_sensor_data
            )
            if name in self.compressed
            else node.create_publisher(Image, f"/camera/{name}/image_raw", qos_profile_sensor_data)
            for name in self.feed.cameras
        }
        self.joint_pub = node.create_publisher(JointState, "/joint_states", qos_profile_sensor_data)
        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self.task_pub = node.create_publisher(String, "/task", latched)
        deep = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(
            JointTrajectory, f"{ns}/action_chunk", self._rec(self.chunks), deep
        )
        node.create_subscription(
            command_type, command_topic or f"{ns}/command", self._rec(self.commands), deep
        )
        node.create_subscription(String, f"{ns}/status", self._rec(self.status), deep)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._rec(self.diagnostics), deep)
        self._stop = threading.Event()
        self._feed_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ plumbing
    def _rec(self, store: list[Recorded]):
        def callback(msg: Any) -> None:
            with self.lock:
                store.append(Recorded(msg, time.time_ns()))

        return callback

    def close(self) -> None:
        """Stop feeding and spinning; shut the context down."""
        self._stop.set()
        if self._feed_thread is not None:
            self._feed_thread.join(5)
        with _failures_lock:
            _dead_feeds.pop(id(self), None)
        self.client.close()

    def _waited(self, exc: ClientError) -> AssertionError:
        """The assertion for a failed wait of the client, naming a dead feed or callback."""
        cause = broken()
        return AssertionError(f"{exc} ({cause})" if cause else str(exc))

    # ------------------------------------------------------------------ feeding
    def publish_task(self, text: str = "pick up the red cube") -> None:
        """Publish the (latched) task."""
        self.task_pub.publish(String(data=text))

    def start_feed(self, camera_rate: float = 30.0) -> None:
        """Publish cameras (and joints every frame) from a thread, as ``self.feed`` says."""
        self.publish_task()

        def run() -> None:
            period = 1.0 / camera_rate
            next_t = time.monotonic()
            try:
                while not self._stop.is_set():
                    if not self.feed.paused:
                        self._publish_once()
                    next_t += period
                    time.sleep(max(0.0, next_t - time.monotonic()))
            except Exception:  # every wait names it (instead of timing out)
                failure = record_failure("the harness feed thread", traceback.format_exc())
                with _failures_lock:
                    _dead_feeds[id(self)] = failure

        self._feed_thread = threading.Thread(target=run, name="harness_feed", daemon=True)
        self._feed_thread.start()

    def _publish_once(self) -> None:
        feed = self.feed
        now_ns = time.time_ns()
        offset = feed.stamp_offset
        if feed.mode == "stale":
            offset = -2.0
        stamp_ns = now_ns + int(offset * 1e9)
        sec, nsec = ns_to_stamp_fields(stamp_ns)
        t = now_ns * 1e-9
        for i, name in enumerate(feed.cameras):
            if name in feed.silent:
                continue
            frame = synthetic_frame(t, 48, 64, i)
            if name in self.compressed:
                msg = rgb_to_compressed(frame, "jpeg")
            else:
                msg = rgb_to_image(frame, self.encodings.get(name, "rgb8"))
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nsec
            if feed.mode == "bad_encoding" and name == "wrist":
                msg.encoding = "yuv422"
            if feed.mode == "bad_size" and name == "wrist":
                msg.height = 47  # data no longer matches step * height
            self.cam_pubs[name].publish(msg)
        names = list(JOINTS)
        pos = synthetic_joints(t, len(JOINTS))
        if feed.mode == "nan_joint":
            pos[2] = np.nan
        if feed.mode == "missing_joint":
            names, pos = names[:-1], pos[:-1]
        if feed.mode == "duplicate_joint":  # joint_1 twice, the last value differs
            names, pos = [*names, "joint_1"], np.append(pos, 2.9)
        js = JointState(name=names, position=pos.tolist())
        js.header.stamp.sec, js.header.stamp.nanosec = sec, nsec
        self.joint_pub.publish(js)
        with self.lock:
            self.image_stamps.append(stamp_ns)
            self.joint_stamps.append(stamp_ns)
            feed.published += 1

    def publish_joints(self, nan: bool = False) -> int:
        """Publish one JointState now (``nan``: joint_3 is NaN); returns its stamp (ns)."""
        stamp_ns = time.time_ns()
        pos = synthetic_joints(stamp_ns * 1e-9, len(JOINTS))
        if nan:
            pos[2] = np.nan
        js = JointState(name=list(JOINTS), position=pos.tolist())
        js.header.stamp.sec, js.header.stamp.nanosec = ns_to_stamp_fields(stamp_ns)
        self.joint_pub.publish(js)
        with self.lock:
            self.joint_stamps.append(stamp_ns)
        return stamp_ns

    def wait_matched(self, timeout: float = 60.0) -> None:
        """Wait until the node's subscriptions and our subscriptions are matched."""
        wait_for(
            lambda: all(p.get_subscription_count() > 0 for p in self.cam_pubs.values())
            and self.joint_pub.get_subscription_count() > 0,
            timeout,
            "the policy node to subscribe to cameras and joints",
        )

    # ------------------------------------------------------------------ recorded data
    def snapshot(self, store: list[Recorded], since_ns: int = 0) -> list[Recorded]:
        """Messages in ``store`` received after ``since_ns``."""
        with self.lock:
            return [r for r in store if r.recv_ns >= since_ns]

    def events(self, kind: str | None = None, since_ns: int = 0) -> list[Any]:
        """The node's status events (optionally of one kind) received after ``since_ns``."""
        return self.client.events(kind, since_ns)

    def wait_commands(self, n: int, timeout: float, since_ns: int | None = None) -> list[Recorded]:
        """Wait for ``n`` commands received after ``since_ns`` (default: now)."""
        since = time.time_ns() if since_ns is None else since_ns
        return wait_for(
            lambda: (c := self.snapshot(self.commands, since)) and len(c) >= n and c,
            timeout,
            f"{n} commands",
        )

    def latest_report(self, timeout: float = 10.0) -> PeriodicEvent:
        """The next periodic status report."""
        try:
            return self.client.latest_report(timeout)
        except ClientError as exc:
            raise self._waited(exc) from None

    def commands_during(self, seconds: float) -> list[Recorded]:
        """The commands that arrive during the next ``seconds`` (a window in which the test
        expects none, or counts them)."""
        start = time.time_ns()
        time.sleep(seconds)
        return self.snapshot(self.commands, start)

    def latest_diagnostics(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next /diagnostics message from the node: {part: (level, message, values)}."""
        since = time.time_ns()

        def get():
            for r in reversed(self.snapshot(self.diagnostics, since)):
                parts = {}
                for st in r.msg.status:
                    if st.name.startswith(self.ns + ":"):
                        parts[st.name.split(": ", 1)[1]] = (
                            int.from_bytes(st.level, "little"),
                            st.message,
                            {kv.key: kv.value for kv in st.values},
                        )
                if parts:
                    return parts
            return None

        return wait_for(get, timeout, "/diagnostics from the node")

    def wait_diagnostic(self, part: str, *texts: str, timeout: float = 20.0) -> tuple[int, str]:
        """``(level, message)`` of the next ``part`` diagnostic (``inputs``, ``commands``, ...)
        whose message names every one of ``texts``."""
        return wait_for(
            lambda: (d := self.latest_diagnostics()[part])
            and all(t in d[1] for t in texts)
            and d[:2],
            timeout,
            f"the {part} diagnostic to name {texts}",
        )

    # ------------------------------------------------------------------ services
    def call(self, srv_type: type, name: str, request: Any, timeout: float = 60.0) -> Any:
        """Call a service (waits for it to appear)."""
        try:
            return self.client.call(srv_type, name, request, timeout)
        except ClientError as exc:
            if (cause := broken()) is None:
                raise
            raise AssertionError(f"{exc} ({cause})") from exc

    def trigger(self, name: str) -> Trigger.Response:
        """Call a std_srvs/Trigger service of the node (``reset``, ``pause``, ``resume``)."""
        return self.client.call(Trigger, name, Trigger.Request())

    def lifecycle_state(self) -> str:
        """Current lifecycle state label."""
        return self.client.lifecycle_state()

    def transition(self, transition_id: int) -> bool:
        """Request a lifecycle transition; True on success."""
        return self.client.change_state(transition_id)

    def set_params(self, **values: Any) -> list[Any]:
        """Set node parameters (names with ``__`` for dots); returns the SetParametersResults."""
        return self.client.try_set_parameters({k.replace("__", "."): v for k, v in values.items()})

    def get_params(self, *names: str) -> list[Any]:
        """Values of node parameters (python values)."""
        values = self.client.get_parameters(list(names))
        return [values[n] for n in names]


def node_parameters(overrides: dict[str, Any]) -> list[Parameter]:
    """config/policy.yaml with ``overrides`` applied, as rclpy Parameters (for a node built in
    this process); empty lists get their type from the parameter table."""
    from snapflow_ros.params.policy_node import spec_for
    from snapflow_ros.params.schema import type_name

    data = yaml.safe_load((REPO / "config" / "policy.yaml").read_text())
    values = flat_parameters(data["/**/policy_node"]["ros__parameters"])
    values.update(overrides)
    array_types = {
        "string[]": Parameter.Type.STRING_ARRAY,
        "double[]": Parameter.Type.DOUBLE_ARRAY,
        "int[]": Parameter.Type.INTEGER_ARRAY,
    }
    out = []
    for name, value in values.items():
        if isinstance(value, list) and not value and spec_for(name) is not None:
            out.append(Parameter(name, array_types[type_name(spec_for(name)[0])], []))
        else:
            out.append(Parameter(name, value=value))
    return out


class InProcessNode:
    """A PolicyNode in this process, in its own Context on ``domain``, spun by one
    SingleThreadedExecutor thread as the executable does (real DDS to a :class:`Harness`;
    its methods and state can also be reached directly)."""

    def __init__(self, domain: int, parameters: list[Parameter]) -> None:
        from snapflow_ros.nodes.policy_node import PolicyNode

        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = PolicyNode(context=self.context, parameter_overrides=parameters)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.errors: list[str] = []
        self.failures: list[Failure] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="in_process_node", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception as exc:  # a failing callback fails the test it happened in
                # Recorded for the test BEFORE it becomes visible in ``errors``: a test that
                # waits on ``errors`` must not end its call phase between the two (seen in a
                # stress run: the failure then landed in the teardown).
                text = traceback.format_exc()
                self.failures.append(record_failure("a callback of the in-process node", text))
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Shut the node down (shutdown transition), stop spinning, end the context."""
        try:
            if self.node.state_label != "finalized":
                self.node.trigger_shutdown()
        finally:
            self._stop.set()
            self._thread.join(10)
            self.executor.shutdown()
            self.node.destroy_node()
            rclpy.try_shutdown(context=self.context)


def wait_task_taken(harness: Harness, node: Any, timeout: float = 60.0) -> None:
    """Wait until the in-process ``node`` has taken a task from the topic and that callback,
    its log line included, is over. A fixture that returns earlier lets the node's
    ``task: ...`` line fall between two phases of a test, where pytest captures nothing."""
    wait_for(
        lambda: node.controller.session.inputs.task_count > 0, timeout, "the node to take the task"
    )
    # its executor runs one callback at a time: a round trip through it ends after the task's
    harness.get_params("task.topic")


def chunk_actions(traj: JointTrajectory) -> np.ndarray:
    """The (H, D) positions of a chunk message."""
    return np.array([list(p.positions) for p in traj.points], np.float64)


def header_ns(msg: Any) -> int:
    """Header stamp of ``msg`` in ns."""
    return stamp_to_ns(msg.header.stamp)


@contextlib.contextmanager
def fed_node_process(
    params: Path,
    domain: int,
    log_path: Path,
    extra_args: list[str] | None = None,
    **harness_options: Any,
) -> Iterator[tuple[Harness, NodeProcess]]:
    """A policy node process fed by a :class:`Harness` (``harness_options``: its keyword
    arguments, e.g. ``compressed``) with good inputs, commands flowing. On the way out:
    Ctrl-C, and the node must have stopped cleanly (status 0, no traceback)."""
    harness = Harness(domain, **harness_options)
    proc = NodeProcess(params, domain, log_path, extra_args)
    try:
        harness.start_feed()
        harness.wait_matched(120)
        harness.wait_commands(5, timeout=120)
        yield harness, proc
    finally:
        rc = proc.stop()
        harness.close()
    log = proc.log()
    assert rc == 0, log[-3000:]
    assert "Traceback" not in log and "policy node stopped" in log, log[-3000:]


@contextlib.contextmanager
def active_in_process_node(domain: int, overrides: dict[str, Any]) -> Iterator[tuple[Harness, Any]]:
    """A :class:`Harness` and an active policy node in this process (config/policy.yaml with
    ``overrides``); on the way out no callback of the node may have failed since the last
    test (a failure during a test fails that test, see :func:`take_failures`)."""
    harness = Harness(domain)
    proc = InProcessNode(domain, node_parameters(overrides))
    try:
        proc.node.autostart()
        assert proc.node.state_label == "active", proc.node.report().configure_error
        yield harness, proc.node
    finally:
        proc.close()
        harness.close()
    late = [f for f in proc.failures if not f.reported]  # the others failed their test
    for f in late:
        f.reported = True
    assert not late, describe(late)
