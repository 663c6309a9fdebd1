"""``replay``: play a bag's inputs into a running policy node and record its outputs.

::

    replay inputs_bag -o outputs_bag                       # lock-step (node on sim time)
    replay inputs_bag -o outputs_bag --mode timed          # original timing

Inputs are the bag topics the node subscribes to (from the ROS graph; ``--topics`` to
choose), published as the recorded bytes. Outputs are the topics the node publishes,
recorded into a new rosbag2 whose ``custom_data`` says how it was made.

Time (the node checks the age of its inputs from their header stamps):

* ``lockstep`` (default) needs the node to run with ``use_sim_time:=true``; stamps are kept.
  For every new camera frame (see :mod:`snapflow_ros.bags.lockstep`) the node, paused in
  between, gets the newest message of each input, ``/clock`` is set to the observation's
  oldest stamp, and ``~/reset`` (drop the plan, re-seed the denoising noise) + ``~/resume``
  make it compute exactly one chunk, which must carry the expected observation stamp (else
  the inputs are published again and that chunk dropped). So every chunk depends only on its
  observation, the checkpoint and the seed. A ``rejected`` event on the node's status topic
  with the expected stamp (the node refused the observation as malformed, e.g. NaN joint
  positions) is its answer too: logged, counted, nothing recorded for it, and the replay goes
  on with the next observation (``--stop-on-reject``: stop there, exit code 1).
  Meanwhile ``replan_threshold`` is 0 (no inference of the node's own), ``input_timeout``
  tiny (older inputs are stale, so the node waits for the replayed ones) and
  ``max_future_stamp`` at its largest (``/clock`` is the observation's oldest stamp, so its
  newer inputs are ahead of the clock by the spread of the recorded stamps, which a robot's
  sensors easily put beyond the default 0.25 s); all are restored at the end.
  ``--trigger recorded --noise continue`` asks only for the recorded chunks' observations
  and re-seeds once: a lock-step simulation recording is reproduced exactly.
* ``timed``: messages at their original spacing (``--rate``). With a sim-time node, stamps
  are kept and ``/clock`` follows the bag; with a wall-clock node, header stamps are moved to
  "now" (one constant shift, stored in the outputs bag; ``compare`` undoes it).

Exit codes: 0 done (rejected observations included), 1 the node did not answer / an
observation was rejected with ``--stop-on-reject`` / interrupted, 2 bad input (bag, topics,
types, node not found, lock-step without sim time).

This module is the thin rclpy driver: it asks the graph about the node, publishes, waits and
records. What to publish when and what to wait for is decided without ROS in
:mod:`snapflow_ros.bags.replay_plan` (and :mod:`snapflow_ros.bags.lockstep`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from snapflow_ros.bags.chunks import CHUNK_TYPE, STATUS_TYPE
from snapflow_ros.bags.errors import BagError
from snapflow_ros.bags.io import (
    CUSTOM_KEY,
    IGNORED_TOPICS,
    STORAGES,
    BagReader,
    BagWriter,
    deserialize,
    header_stamp_ns,
    latched,
    with_header_stamp,
)
from snapflow_ros.bags.lockstep import Answer, Answers, Rejection, Step, parse_rejection
from snapflow_ros.bags.record import TopicRecorder, endpoint_hash, import_message
from snapflow_ros.bags.replay_plan import (
    IGNORED_INPUTS,
    MAX_LISTED_REJECTIONS,
    MODES,
    Ask,
    LockstepPlan,
    NodeGraph,
    Publish,
    Skip,
    Stats,
    TimedPlan,
    choose_inputs,
    choose_outputs,
    outputs_info,
    recorded_stamps,
    summary,
)
from snapflow_ros.client import (
    ClientError,
    NodeClient,
    absolute,
    split_name,
    unique_name,
    wait_until,
)
from snapflow_ros.control.input_slots import MAX_FUTURE_STAMP
from snapflow_ros.control.status import decode

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class ReplayError(Exception):
    """The node did not behave (timeout, wrong answers): exit code 1."""


class Interrupted(Exception):
    """Ctrl-C / SIGTERM."""


class QueuedWrites:
    """Writes into a bag from any thread, carried out by the thread that opened it (SQLite
    storage accepts only that one): :meth:`write` queues, :meth:`drain` writes."""

    def __init__(self, writer: BagWriter) -> None:
        self.writer = writer
        self._queue: queue.SimpleQueue[tuple[str, int, bytes]] = queue.SimpleQueue()

    def add_topic(self, *args: Any, **kwargs: Any) -> Any:
        """Add a topic (from the opening thread)."""
        return self.writer.add_topic(*args, **kwargs)

    def write(self, topic: str, log_ns: int, data: bytes) -> None:
        """Queue one message."""
        self._queue.put((topic, int(log_ns), bytes(data)))

    def drain(self) -> None:
        """Write every queued message (from the opening thread)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            self.writer.write(*item)


class Replayer:
    """One replay run (see the module docstring): carries out the plan of
    :mod:`snapflow_ros.bags.replay_plan` on a live node."""

    def __init__(self, args: argparse.Namespace, stop: threading.Event) -> None:
        self.args = args
        self.stop = stop
        self.target = absolute(args.node).rstrip("/")
        self.target_ns, self.target_name = split_name(self.target)
        self.stats = Stats()
        self.clock_ns = 0
        self.sim_time = False
        self.shift_ns = 0
        # the outputs (the node's status included) are recorded raw: no decoded status here
        self.client = NodeClient(self.target, name=unique_name("bag_replay"), status=False)
        self.node = self.client.node
        self.pubs: dict[str, Any] = {}
        self.clock_pub = None
        self.answers = Answers()
        self.chunk_topic = ""
        self.status_topic = ""
        self.writer: BagWriter | None = None
        self.out: QueuedWrites | None = None  # every write of a message goes through it
        self.recorder: TopicRecorder | None = None
        self._restoring = False

    # ------------------------------------------------------------------ plumbing
    def log(self, text: str) -> None:
        """Progress line on stdout."""
        if not self.args.quiet:
            print(f"replay: {text}", flush=True)

    def interrupted(self) -> str:
        """Write what the recorder queued; raise :class:`Interrupted` after Ctrl-C / SIGTERM
        (except while restoring the node). Every wait calls it while it polls."""
        if self.out is not None:
            self.out.drain()
        if self.stop.is_set() and not self._restoring:
            raise Interrupted()
        return ""

    def pause_for(self, seconds: float) -> None:
        """Let the client's thread handle callbacks for ``seconds`` (Ctrl-C ends it)."""
        self.interrupted()
        time.sleep(seconds)

    def wait(
        self,
        predicate: Callable[[], Any],
        timeout: float,
        what: str,
        error: type[Exception] = ReplayError,
    ) -> Any:
        """Wait until ``predicate()`` is truthy; ``error`` after ``timeout`` seconds."""
        try:
            return wait_until(predicate, timeout, what, self.interrupted)
        except ClientError as exc:
            raise error(str(exc)) from None

    def trigger(self, name: str) -> None:
        """Call ``<node>/<name>`` (std_srvs/Trigger)."""
        try:
            self.client.trigger(name, self.args.timeout, self.interrupted)
        except ClientError as exc:
            raise ReplayError(str(exc)) from None

    def get_params(self, names: list[str]) -> dict[str, Any]:
        """The node's parameter values (None: not set/declared)."""
        try:
            return self.client.get_parameters(names, timeout=self.args.timeout)
        except ClientError as exc:
            raise ReplayError(str(exc)) from None

    def set_param(self, name: str, value: Any) -> None:
        """Set one parameter of the node."""
        try:
            self.client.set_parameters({name: value}, timeout=self.args.timeout)
        except ClientError as exc:
            raise ReplayError(f"cannot set {name}: {exc}") from None

    def publish_clock(self, ns: int) -> None:
        """Publish ``/clock`` (monotonic)."""
        self.clock_ns = max(self.clock_ns, int(ns))
        if self.clock_pub is not None:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(self.clock_ns, 1_000_000_000)
            self.clock_pub.publish(msg)

    def publish(self, topic: str, data: bytes) -> None:
        """Publish one recorded message."""
        self.pubs[topic].publish(data)
        self.stats.published += 1

    def now_ns(self) -> int:
        """Log time of recorded outputs: the /clock we publish, or the wall clock."""
        return self.clock_ns if self.sim_time else time.time_ns()

    # ------------------------------------------------------------------ the node and the graph
    def find_node(self) -> None:
        """Wait for the node, its active state and its inputs in the graph."""
        self.wait(
            self.client.has_node,
            self.args.wait,
            f"node {self.target} (is it running, same ROS_DOMAIN_ID?)",
            BagError,
        )
        state_srv = f"{self.target}/get_state"
        if any(name == state_srv for name, _ in self.node.get_service_names_and_types()):

            def active() -> bool:
                try:
                    state = self.client.lifecycle_state(None, self.args.timeout, self.interrupted)
                except ClientError as exc:
                    raise ReplayError(str(exc)) from None
                return state == "active" or self.pause_for(0.3) or False

            self.wait(active, self.args.wait, f"{self.target} to become active", BagError)
        last: list[Any] = []

        def stable() -> bool:
            subs = sorted(self.node_endpoints(subscriptions=True))
            same = subs == last and bool(subs)
            last[:] = subs
            return same or self.pause_for(0.3) or False

        self.wait(stable, self.args.wait, f"the subscriptions of {self.target}", BagError)

    def node_endpoints(self, subscriptions: bool) -> dict[str, str]:
        """Topics the node subscribes to / publishes, with their types."""
        get = (
            self.node.get_subscriber_names_and_types_by_node
            if subscriptions
            else self.node.get_publisher_names_and_types_by_node
        )
        ignored = IGNORED_INPUTS if subscriptions else IGNORED_TOPICS
        out = {}
        for topic, types in get(self.target_name, self.target_ns):
            if topic not in ignored and types:
                out[topic] = types[0]
        return out

    def node_endpoint_infos(self, topic: str, subscriptions: bool) -> list[Any]:
        """Graph endpoints of the target node on ``topic``."""
        get = (
            self.node.get_subscriptions_info_by_topic
            if subscriptions
            else self.node.get_publishers_info_by_topic
        )
        return [
            e
            for e in get(topic)
            if e.node_name == self.target_name and e.node_namespace == self.target_ns
        ]

    def graph(self) -> NodeGraph:
        """The node as the graph shows it now."""
        subs = self.node_endpoints(subscriptions=True)
        return NodeGraph(
            self.target,
            subs,
            self.node_endpoints(subscriptions=False),
            {t: {endpoint_hash(e) for e in self.node_endpoint_infos(t, True)} for t in subs},
        )

    def make_publishers(self, reader: BagReader, inputs: dict[str, str]) -> None:
        """Reliable publishers, transient local where the bag or the node's subscription is."""
        topics = reader.topics
        for topic, msgtype in inputs.items():
            subs = self.node_endpoint_infos(topic, True)
            tl = latched(topics[topic].qos) or any(
                e.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for e in subs
            )
            depth = max([10] + [q.depth for q in topics[topic].qos])
            qos = QoSProfile(
                history=HistoryPolicy.KEEP_LAST,
                depth=depth,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL if tl else DurabilityPolicy.VOLATILE,
            )
            self.pubs[topic] = self.node.create_publisher(import_message(msgtype), topic, qos)
        if self.sim_time:
            self.clock_pub = self.node.create_publisher(Clock, "/clock", 10)
        self.wait(
            lambda: all(p.get_subscription_count() > 0 for p in self.pubs.values()),
            self.args.wait,
            "the node to match the replayed topics (QoS?)",
            BagError,
        )

    def start_recording(self) -> None:
        """Subscribe to the node's outputs (or ``--record`` topics) into the outputs bag."""
        assert self.writer is not None
        lockstep = self.args.mode == "lockstep"
        if lockstep and not self.args.chunk_topic:
            # discovery reports a node's publishers one by one: wait for its chunk publisher
            self.wait(
                lambda: CHUNK_TYPE in self.node_endpoints(subscriptions=False).values(),
                self.args.wait,
                f"a {CHUNK_TYPE} publisher of {self.target} (--chunk-topic)",
                BagError,
            )
        outputs = choose_outputs(
            self.graph(), self.args.mode, self.args.record, self.args.chunk_topic
        )
        self.chunk_topic, self.status_topic = outputs.chunk_topic, outputs.status_topic
        if outputs.warning:
            self.log(outputs.warning)
        self.recorder = TopicRecorder(self.node, self.out, self.now_ns)
        for topic, msgtype in sorted(outputs.topics.items()):
            handler = None
            if topic == self.chunk_topic and lockstep:
                handler = self._on_chunk
            elif topic == self.status_topic:
                handler = self._on_status
            infos = self.node_endpoint_infos(topic, False)
            if not self.recorder.subscribe_from_graph(topic, msgtype, handler, infos):
                self.recorder.subscribe_from_graph(topic, msgtype, handler)
        self.log(f"recording {', '.join(self.recorder.topics)}")

    def _on_chunk(self, topic: str, data: bytes, log_ns: int) -> None:
        self.answers.add_chunk(header_stamp_ns(data), data)

    def _on_status(self, topic: str, data: bytes, log_ns: int) -> None:
        assert self.out is not None
        self.out.write(topic, log_ns, data)
        try:
            event = decode(deserialize(data, STATUS_TYPE, topic).data)
        except BagError:
            return
        if event is not None and event.kind == "chunk":
            self.stats.status_chunk_events += 1
        rejection = parse_rejection(event)
        if rejection is not None and self.args.mode == "lockstep":
            self.answers.add_rejection(rejection)

    # ------------------------------------------------------------------ lock-step
    def run_lockstep(self, reader: BagReader, inputs: dict[str, str]) -> None:
        """Observation by observation, one chunk each (see the module docstring)."""
        args = self.args
        params = self.get_params(
            ["observation_stamp", "replan_threshold", "input_timeout", "max_future_stamp"]
        )
        plan = LockstepPlan(
            inputs,
            params,
            args.step_topics,
            args.step_every,
            recorded_stamps(reader, self.chunk_topic) if args.trigger == "recorded" else None,
        )
        what = "recorded chunk" if args.trigger == "recorded" else "new frame"
        self.log(
            f"lock-step: one chunk per {what} of {', '.join(plan.step_topics)}, "
            f"noise {args.noise}"
        )
        changed, restore = plan.node_settings()
        try:
            self.trigger("pause")
            for name, value in changed.items():
                self.set_param(name, value)
            if args.noise == "continue":
                self.trigger("reset")  # re-seed once: the noise stream of a fresh node
            for action in plan.actions(reader.messages(inputs)):
                if isinstance(action, Publish):
                    self.publish(action.topic, action.data)
                    continue
                self.interrupted()  # (the observation is out: a chance to stop between steps)
                if isinstance(action, Skip):
                    self.too_spread(action)
                    continue
                self.ask(action)
                if args.max_steps and self.stats.steps >= args.max_steps:
                    break
            self.stop_recording()
        finally:
            self.stop_recording(wait_events=False)  # not what the node does once restored
            if self.client.context.ok():
                self._restoring = True
                try:
                    for name, value in restore.items():
                        self.set_param(name, value)
                    self.trigger("resume")
                except ReplayError as exc:
                    self.log(f"could not restore the node: {exc}")
                finally:
                    self._restoring = False
        self.stats.skipped = plan.skipped

    def too_spread(self, skip: Skip) -> None:
        """An observation not asked for: its inputs are stamped too far apart."""
        self.stats.too_spread += 1
        self.log(
            f"observation {skip.step.index}: its inputs are stamped {skip.spread_s:.3f} s apart, "
            f"more than the node accepts ahead of its clock (max_future_stamp <= "
            f"{MAX_FUTURE_STAMP:g} s); not asked for"
        )

    def ask(self, ask: Ask) -> None:
        """Ask for the answer to ``ask.step``'s observation: record its chunk, or count its
        rejection; publish the observation again if the node answered another one."""
        assert self.writer is not None
        step = ask.step
        start = time.monotonic()
        self.publish_clock(ask.clock_ns)
        answer: Answer | None = None
        for attempt in range(self.args.retries + 1):
            if attempt:
                for topic, data in ask.observation.items():  # the observation again
                    self.pubs[topic].publish(data)
                self.interrupted()
            self.answers.clear()
            if self.args.noise == "reseed":
                self.trigger("reset")
            self.trigger("resume")
            answer = self.wait(
                lambda: self.answers.take(step.expected_stamp_ns),
                self.args.timeout,
                f"a chunk (or a rejection) for observation {step.index} (stamp "
                f"{step.expected_stamp_ns}); see the node's log",
            )
            self.trigger("pause")
            if answer.stamp_ns == step.expected_stamp_ns:
                self.stats.steps += 1
                self.stats.step_wall_s.append(time.monotonic() - start)
                if answer.rejection is not None:
                    self.rejected(step, answer.rejection)
                    return
                assert answer.chunk is not None and self.out is not None
                self.out.write(self.chunk_topic, self.clock_ns, answer.chunk)
                self.out.drain()
                self.stats.chunks += 1
                return
            self.stats.resent += 1
            note = (
                " (its noise draw is lost: later chunks shift)"
                if self.args.noise == "continue"
                else ""
            )
            kind = "rejected stamp" if answer.rejection is not None else "answered for stamp"
            self.log(
                f"observation {step.index}: the node {kind} {answer.stamp_ns}, expected "
                f"{step.expected_stamp_ns}; publishing it again{note}"
            )
        raise ReplayError(
            f"observation {step.index}: after {self.args.retries + 1} tries the node still "
            f"answers for another observation (stamp {answer.stamp_ns if answer else None}, "
            f"expected {step.expected_stamp_ns}); does it get every input, is input_timeout "
            "large enough?"
        )

    def rejected(self, step: Step, rejection: Rejection) -> None:
        """The node rejected ``step``'s observation: log and count it (nothing recorded);
        with ``--stop-on-reject`` end the replay (exit code 1)."""
        self.stats.rejected += 1
        if len(self.stats.rejections) < MAX_LISTED_REJECTIONS:
            self.stats.rejections.append({"observation": step.index, **rejection.as_dict()})
        what = (
            f"observation {step.index} (stamp {rejection.stamp_ns}) rejected by the node: "
            f"{rejection.input}: {rejection.reason}"
        )
        if self.args.stop_on_reject:
            raise ReplayError(f"{what} (--stop-on-reject)")
        self.log(f"{what}; no chunk recorded, going on")

    # ------------------------------------------------------------------ timed
    def run_timed(self, reader: BagReader, inputs: dict[str, str]) -> None:
        """Publish at the original spacing (``--rate``), /clock or restamped headers."""
        plan = TimedPlan(inputs, self.args.rate, self.args.duration, self.sim_time)
        plan.measure_offset(reader.messages(inputs))
        wall0 = time.monotonic()
        next_clock = 0.0
        end_log = None
        for msg in plan.messages(reader.messages(inputs)):
            if end_log is None:  # the first message
                self.shift_ns = 0 if self.sim_time else time.time_ns() - msg.log_ns
            target = wall0 + msg.at_s
            while (left := target - time.monotonic()) > 0:
                if self.sim_time and time.monotonic() >= next_clock:
                    self.publish_clock(plan.clock_at(time.monotonic() - wall0))
                    next_clock = time.monotonic() + 0.01
                self.pause_for(min(left, 0.01))
            data = msg.data
            if msg.clock_ns is not None:
                self.publish_clock(msg.clock_ns)
            elif msg.restamp:
                data = with_header_stamp(data, header_stamp_ns(data) + self.shift_ns)
            self.publish(msg.topic, data)
            end_log = msg.log_ns
        if end_log is None or plan.first_log_ns is None:
            return
        tail_end = time.monotonic() + self.args.tail
        while time.monotonic() < tail_end:
            if self.sim_time:
                self.publish_clock(plan.clock_at(time.monotonic() - wall0))
            self.pause_for(0.01)
        if self.out is not None:
            self.out.drain()
        self.stats.chunks = self.writer.counts.get(self.chunk_topic, 0) if self.writer else 0
        self.log(
            f"played {self.stats.published} messages over "
            f"{(end_log - plan.first_log_ns) * 1e-9:.2f} s of bag time"
        )

    # ------------------------------------------------------------------ run
    def run(self) -> int:
        """The whole replay; returns the exit code."""
        args = self.args
        with BagReader(args.bag) as reader:
            if os.path.exists(args.output):
                raise BagError(f"output {args.output} exists already (choose a new path)")
            self.log(f"waiting for {self.target}")
            self.find_node()
            inputs = choose_inputs(reader, self.graph(), args.topics, args.allow_missing)
            self.sim_time = bool(self.get_params(["use_sim_time"]).get("use_sim_time"))
            if args.mode == "lockstep" and not self.sim_time:
                raise BagError(
                    f"lock-step replay needs {self.target} on sim time: start it with "
                    "-p use_sim_time:=true (or use --mode timed)"
                )
            self.make_publishers(reader, inputs)
            self.writer = BagWriter(args.output, args.storage)
            self.out = QueuedWrites(self.writer)
            try:
                self.start_recording()
                self.log(
                    f"{args.mode}: publishing {', '.join(sorted(inputs))} into "
                    f"{self.target} ({'sim time' if self.sim_time else 'wall clock'})"
                )
                # let the recorder's subscriptions match the node's publishers
                self.wait(self.recorder.matched, args.wait, "the node's output topics")
                if args.mode == "lockstep":
                    self.run_lockstep(reader, inputs)
                else:
                    self.run_timed(reader, inputs)
                    self.stop_recording()
            finally:
                self.finish()
        return EXIT_OK

    def stop_recording(self, wait_events: bool = True) -> None:
        """Stop recording the node's outputs, after its last status events (``wait_events``):
        the outputs bag holds what the node did during the replay; write what is queued."""
        if self.recorder is None or not self.recorder.topics:
            return
        if wait_events and self.status_topic:
            expected = self.stats.chunks or 1
            with contextlib.suppress(ReplayError):
                self.wait(
                    lambda: self.stats.status_chunk_events >= expected,
                    5.0,
                    "the node's last status events",
                )
        self.recorder.close()
        if self.out is not None:
            self.out.drain()

    def finish(self) -> None:
        """Stop recording and finalise the outputs bag (with how it was made)."""
        self.stop_recording(wait_events=False)
        if self.writer is None or self.writer.closed:
            return
        args = self.args
        info = outputs_info(
            os.path.abspath(args.bag),
            args.mode,
            self.target,
            self.sim_time,
            self.shift_ns,
            self.stats,
            args.rate,
            args.trigger,
            args.noise,
        )
        self.writer.set_custom_data(CUSTOM_KEY, json.dumps(info))
        self.writer.close()
        self.log(summary(args.output, self.writer.counts, self.stats))

    def close(self) -> None:
        """Shut the ROS context down."""
        self.client.close()


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``replay``."""
    p = argparse.ArgumentParser(
        prog="replay",
        description="Replay a bag's inputs into a running policy node and record its outputs "
        "(exit 0 done, 1 node failure or --stop-on-reject, 2 bad input).",
    )
    p.add_argument("bag", help="input bag (rosbag2 folder, mcap or sqlite3)")
    p.add_argument("-o", "--output", required=True, help="outputs bag to create")
    p.add_argument("--mode", choices=MODES, default="lockstep")
    p.add_argument("--node", default="/policy_node", help="the policy node (default /policy_node)")
    p.add_argument(
        "--topics",
        nargs="+",
        default=[],
        help="input topics to publish (default: bag topics the node subscribes to)",
    )
    p.add_argument(
        "--allow-missing",
        nargs="+",
        default=[],
        metavar="TOPIC",
        help="node inputs that may be absent from the bag",
    )
    p.add_argument(
        "--record",
        action="append",
        default=[],
        metavar="REGEX",
        help="record only the node's outputs matching this (default: all)",
    )
    p.add_argument("--chunk-topic", help="the node's chunk topic (default: <node>/action_chunk)")
    p.add_argument(
        "--step-topics",
        nargs="+",
        default=[],
        help="lock-step: topics whose new frames make an observation (default: cameras)",
    )
    p.add_argument(
        "--trigger",
        choices=("frames", "recorded"),
        default="frames",
        help="lock-step: a chunk for every new camera frame (default), or only for the "
        "observations the bag has a recorded chunk for",
    )
    p.add_argument(
        "--noise",
        choices=("reseed", "continue"),
        default="reseed",
        help="lock-step: re-seed the denoising noise before every chunk (default: each chunk "
        "depends only on its observation), or re-seed once and let it run on like a freshly "
        "started node (with --trigger recorded: reproduces a lock-step recording exactly)",
    )
    p.add_argument(
        "--step-every", type=int, default=1, help="lock-step: one chunk every N frames (default 1)"
    )
    p.add_argument(
        "--max-steps",
        type=int,
        default=0,
        help="lock-step: stop after N observations (chunks or rejections)",
    )
    p.add_argument(
        "--stop-on-reject",
        action="store_true",
        help="lock-step: stop at the first observation the node rejects (exit 1); default: "
        "log it, count it, record nothing for it and go on",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=3,
        help="lock-step: re-publish an observation this often if the node missed it",
    )
    p.add_argument("--rate", type=float, default=1.0, help="timed: playback speed factor")
    p.add_argument("--duration", type=float, default=0.0, help="timed: play only this much (s)")
    p.add_argument(
        "--tail",
        type=float,
        default=1.0,
        help="timed: keep recording this long after the last message (s)",
    )
    p.add_argument("-s", "--storage", choices=STORAGES, default="mcap")
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for one chunk / service reply (default 60)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=120.0,
        help="seconds to wait for the node to appear and match (default 120)",
    )
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``replay``."""
    args = build_parser().parse_args(argv)
    if args.rate <= 0:
        print("replay: error: --rate must be > 0", file=sys.stderr)
        return EXIT_BAD_INPUT
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    replayer = None
    try:
        replayer = Replayer(args, stop)
        return replayer.run()
    except BagError as exc:
        print(f"replay: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ReplayError as exc:
        print(f"replay: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (Interrupted, KeyboardInterrupt):
        print("replay: interrupted (outputs bag finalised)", file=sys.stderr)
        return EXIT_FAILED
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        if replayer is not None:
            replayer.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
