"""What ``replay`` does, decided without ROS: which topics to publish and record, and, message
by message, what to publish when and what to wait for.

The driver (:mod:`snapflow_ros.bags.replay`) asks the ROS graph what the node subscribes to and
publishes (:class:`NodeGraph`), reads the node's parameters, and then only carries out what
this module yields:

* lock-step (:class:`LockstepPlan`): :class:`Publish` a recorded message now, :class:`Ask` the
  node for the chunk of one observation (``/clock`` value, expected stamp, the messages to
  publish again if the node answers another observation), or :class:`Skip` an observation
  whose inputs are stamped too far apart. When a frame starts an observation is
  :class:`snapflow_ros.bags.lockstep.StepPlanner`'s decision;
* timed (:class:`TimedPlan`): each message with its time after the start at the playback rate,
  the ``/clock`` value to publish with it (sim time) or whether its header stamp is moved to
  now (wall clock).

Also here: the counters of a run (:class:`Stats`) and what the outputs bag says about it
(:func:`outputs_info`, :func:`summary`). No ROS import.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from snapflow_ros.bags.chunks import CHUNK_TYPE, STATUS_TYPE
from snapflow_ros.bags.errors import BagError
from snapflow_ros.bags.io import BagMessage, BagReader, has_header, header_stamp_ns
from snapflow_ros.bags.lockstep import Step, StepPlanner
from snapflow_ros.client.names import absolute
from snapflow_ros.control.input_slots import MAX_FUTURE_STAMP

MODES = ("lockstep", "timed")
GATE_TIMEOUT_S = 1e-4  # lock-step input_timeout: anything older than the observation is stale
MAX_LISTED_REJECTIONS = 100  # rejections listed in the outputs bag's info (all are counted)
IGNORED_INPUTS = ("/clock", "/parameter_events")  # the node's subscriptions replay never feeds


@dataclass
class Stats:
    """What happened during the replay."""

    published: int = 0
    steps: int = 0  # observations the node answered (a chunk or a rejection)
    chunks: int = 0
    rejected: int = 0  # observations the node rejected (lock-step)
    resent: int = 0  # observations published again (the node answered another one)
    skipped: int = 0
    too_spread: int = 0  # observations whose inputs are stamped too far apart for the node
    status_chunk_events: int = 0
    step_wall_s: list[float] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------- topics
@dataclass(frozen=True)
class NodeGraph:
    """The replayed node as the ROS graph shows it: its full name, the topics it subscribes to
    (but :data:`IGNORED_INPUTS`) and publishes (but ``bags.io.IGNORED_TOPICS``) with their
    types, and the RIHS01 type hashes of its subscriptions (empty when the graph gives none)."""

    name: str
    subscriptions: dict[str, str]
    publications: dict[str, str] = field(default_factory=dict)
    subscription_hashes: dict[str, set[str]] = field(default_factory=dict)


def choose_inputs(
    reader: BagReader,
    node: NodeGraph,
    topics: Iterable[str] = (),
    allow_missing: Iterable[str] = (),
) -> dict[str, str]:
    """The bag topics to publish, with their types: ``topics`` if given, else every bag topic
    the node subscribes to. :class:`BagError` for a topic the node does not subscribe to, a node
    input missing from the bag (unless in ``allow_missing``), a type or type-hash mismatch, a
    topic without messages, or nothing to publish."""
    bag = reader.topics
    subs = node.subscriptions
    chosen = [absolute(t) for t in topics]
    if chosen:
        for topic in chosen:
            reader.require(topic)
            if topic not in subs:
                raise BagError(f"--topics: {topic} is not an input of {node.name}")
    else:
        chosen = [t for t in subs if t in bag]
        allowed = {absolute(t) for t in allow_missing}
        missing = [t for t in subs if t not in bag and t not in allowed]
        if missing:
            raise BagError(
                "the bag has no messages for topics the node subscribes to: "
                + ", ".join(f"{t} ({subs[t]})" for t in sorted(missing))
                + f" (bag topics: {', '.join(sorted(bag))}; --allow-missing to go on)"
            )
    if not chosen:
        raise BagError(f"none of the bag's topics is an input of {node.name}")
    for topic in chosen:
        bag_type = bag[topic].msgtype
        if topic in subs and subs[topic] != bag_type:
            raise BagError(
                f"type mismatch on {topic}: the bag has {bag_type}, "
                f"{node.name} subscribes with {subs[topic]}"
            )
        hashes = node.subscription_hashes.get(topic, set()) - {""}
        digest = bag[topic].type_hash
        if digest.startswith("RIHS01_") and hashes and digest not in hashes:
            raise BagError(
                f"type mismatch on {topic}: the bag's {bag_type} definition "
                f"differs from the node's (type hash)"
            )
        if bag[topic].count == 0:
            raise BagError(f"topic {topic} has no messages in the bag")
    return {t: bag[t].msgtype for t in chosen}


@dataclass(frozen=True)
class Outputs:
    """The node's topics to record, the chunk topic that answers lock-step observations and
    its status topic (rejections; '' when it has none), and a warning for the user ('')."""

    topics: dict[str, str]
    chunk_topic: str
    status_topic: str
    warning: str = ""


def choose_outputs(
    node: NodeGraph, mode: str, record: Iterable[str] = (), chunk_topic: str | None = None
) -> Outputs:
    """What to record of the node's publications: all, or those matching a ``record`` regular
    expression; in lock-step also its status (its rejected events answer observations). The
    chunk topic is ``chunk_topic``, else the node's ``JointTrajectory`` topic (one ending in
    ``action_chunk`` first). :class:`BagError` in lock-step without a chunk topic."""
    outputs = dict(node.publications)
    status = f"{node.name}/status"
    status_type = outputs.get(status)
    patterns = [re.compile(r) for r in record]
    if patterns:
        outputs = {t: ty for t, ty in outputs.items() if any(p.search(t) for p in patterns)}
    if mode == "lockstep" and status_type == STATUS_TYPE:
        outputs[status] = status_type
    chunk = absolute(chunk_topic) if chunk_topic else ""
    if not chunk:
        chunks = sorted(t for t, ty in outputs.items() if ty == CHUNK_TYPE)
        preferred = [t for t in chunks if t.endswith("action_chunk")]
        chunk = (preferred or chunks or [""])[0]
    if mode == "lockstep" and chunk not in outputs:
        raise BagError(
            f"{node.name} publishes no {CHUNK_TYPE} chunk topic to wait for "
            f"(outputs: {', '.join(sorted(outputs)) or 'none'}; --chunk-topic)"
        )
    status_topic = status if outputs.get(status) == STATUS_TYPE else ""
    warning = ""
    if mode == "lockstep" and not status_topic:
        warning = (
            f"{node.name} publishes no {status} ({STATUS_TYPE}): an observation it "
            "rejects will end the replay with a time-out"
        )
    return Outputs(outputs, chunk, status_topic, warning)


def recorded_stamps(reader: BagReader, chunk_topic: str) -> set[int]:
    """Observation stamps of the chunks recorded in the input bag (``--trigger recorded``)."""
    info = reader.topics.get(chunk_topic)
    if info is None or info.msgtype != CHUNK_TYPE or info.count == 0:
        raise BagError(f"--trigger recorded: the bag has no recorded chunks on {chunk_topic}")
    return {header_stamp_ns(m.data) for m in reader.messages([chunk_topic])}


# ---------------------------------------------------------------------------- lock-step
@dataclass(frozen=True)
class Publish:
    """Publish this recorded message now."""

    topic: str
    data: bytes
    log_ns: int


@dataclass(frozen=True)
class Ask:
    """Every input of ``step``'s observation is published: set ``/clock`` to ``clock_ns``, ask
    the node for one chunk and wait for its answer stamped ``step.expected_stamp_ns``. If the
    node answers another observation, publish ``observation`` (the latest message of each
    observation topic, in this order) again and ask again."""

    step: Step
    clock_ns: int
    observation: dict[str, bytes]


@dataclass(frozen=True)
class Skip:
    """``step``'s inputs are stamped ``spread_s`` apart, more than the node accepts ahead of its
    clock (``max_future_stamp`` at its largest): not asked for."""

    step: Step
    spread_s: float


Action = Publish | Ask | Skip


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class LockstepPlan:
    """The lock-step replay of ``inputs`` (topic -> type), given the node's parameters
    (``params``: ``observation_stamp``, ``input_timeout``, ...).

    While it replays, the node is paused between observations, ``replan_threshold`` is 0 (no
    inference of its own) and, when every observation input has a header stamp and the node has
    a numeric ``input_timeout`` (the *gate*), ``input_timeout`` is tiny (older inputs are stale,
    so the node waits for the replayed ones) and ``max_future_stamp`` at its largest (``/clock``
    is then the observation's oldest stamp, and its newer inputs are ahead of it):
    :meth:`node_settings`. :meth:`actions` turns the bag's messages into what to do.
    """

    def __init__(
        self,
        inputs: dict[str, str],
        params: dict[str, Any],
        step_topics: Iterable[str] = (),
        every: int = 1,
        only_stamps: set[int] | None = None,
    ) -> None:
        self.inputs = dict(inputs)
        self.params = dict(params)
        self.stamped = {t: has_header(ty) for t, ty in self.inputs.items()}
        self.frames = StepPlanner(
            self.inputs,
            self.stamped,
            [absolute(t) for t in step_topics],
            str(params.get("observation_stamp") or "oldest"),
            every,
            only_stamps,
        )
        self.gate = all(self.stamped[t] for t in self.frames.observation) and _is_number(
            params.get("input_timeout")
        )

    @property
    def observation(self) -> list[str]:
        """The observation topics (inputs other than the task)."""
        return self.frames.observation

    @property
    def step_topics(self) -> list[str]:
        """The topics whose new frames make an observation."""
        return self.frames.step_topics

    @property
    def skipped(self) -> int:
        """Complete frames not asked for (``every``, ``only_stamps``) or incomplete."""
        return self.frames.skipped

    def node_settings(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The parameters to set for the replay and their values to restore afterwards, for
        those the node has (a parameter it lacks is left alone)."""
        changed: dict[str, Any] = {"replan_threshold": 0.0}
        if self.gate:
            changed["input_timeout"] = GATE_TIMEOUT_S
            changed["max_future_stamp"] = MAX_FUTURE_STAMP
        present = {k: v for k, v in changed.items() if self.params.get(k) is not None}
        return present, {k: self.params[k] for k in present}

    def actions(self, messages: Iterable[BagMessage]) -> Iterator[Action]:
        """What to do for ``messages`` (the inputs, in log-time order).

        The task (not part of an observation) is published at once. Observation messages wait
        in a window until their observation is complete; then the newest message of each
        topic is published (the node is paused meanwhile, so older ones could not change its
        chunk), in log-time order, followed by the :class:`Ask` (or :class:`Skip`). Stop
        iterating to end the replay early.
        """
        window: dict[str, BagMessage] = {}  # latest unpublished message per topic
        latest: dict[str, bytes] = {}  # latest published message per topic
        for msg in messages:
            stamp = header_stamp_ns(msg.data) if self.stamped[msg.topic] else None
            step = self.frames.before(msg.topic, stamp)
            if step is not None:
                yield from self._step(step, window, latest)
            if msg.topic in self.frames.observation:
                window[msg.topic] = msg
            else:  # the task: at once (latched)
                yield Publish(msg.topic, msg.data, msg.log_ns)
            self.frames.after(msg.topic, msg.log_ns, stamp)
        step = self.frames.flush()
        if step is not None:
            yield from self._step(step, window, latest)

    def _step(
        self, step: Step, window: dict[str, BagMessage], latest: dict[str, bytes]
    ) -> Iterator[Action]:
        for msg in sorted(window.values(), key=lambda m: m.log_ns):
            latest[msg.topic] = msg.data
            yield Publish(msg.topic, msg.data, msg.log_ns)
        window.clear()
        spread = (step.clock_ns - step.oldest_ns) * 1e-9
        if self.gate and spread > MAX_FUTURE_STAMP:
            yield Skip(step, spread)
            return
        clock = step.oldest_ns if self.gate else step.clock_ns
        yield Ask(step, clock, {t: latest[t] for t in self.frames.observation})


# ---------------------------------------------------------------------------- timed
@dataclass(frozen=True)
class Timed:
    """One message of a timed replay: publish it ``at_s`` seconds after the first (at the
    playback rate), with ``/clock`` at ``clock_ns`` first (sim time; None on the wall clock),
    its header stamp moved by the replay's shift to now when ``restamp``."""

    topic: str
    data: bytes
    log_ns: int
    at_s: float
    clock_ns: int | None
    restamp: bool


class TimedPlan:
    """The timed replay of ``inputs`` at ``rate`` times the recorded speed, for ``duration``
    seconds of bag time (0: all). On sim time ``/clock`` follows the bag: its log time plus the
    offset of the recorded header stamps (:meth:`clock_at` between messages); on the wall clock
    header stamps are moved to now instead."""

    def __init__(
        self,
        inputs: dict[str, str],
        rate: float = 1.0,
        duration: float = 0.0,
        sim_time: bool = True,
    ) -> None:
        if rate <= 0:
            raise BagError("--rate must be > 0")
        self.inputs = dict(inputs)
        self.rate = rate
        self.duration = duration
        self.sim_time = sim_time
        self.stamped = {t: has_header(ty) for t, ty in self.inputs.items()}
        self.offset_ns = 0  # header stamp minus log time, of the first stamped message
        self.first_log_ns: int | None = None

    def measure_offset(self, messages: Iterable[BagMessage]) -> int:
        """Set :attr:`offset_ns` from the first stamped message of ``messages`` (0: none)."""
        for msg in messages:
            if self.stamped[msg.topic]:
                self.offset_ns = header_stamp_ns(msg.data) - msg.log_ns
                break
        return self.offset_ns

    def messages(self, messages: Iterable[BagMessage]) -> Iterator[Timed]:
        """Each message to publish, until ``duration`` seconds of bag time have passed."""
        for msg in messages:
            if self.first_log_ns is None:
                self.first_log_ns = msg.log_ns
            elapsed_ns = msg.log_ns - self.first_log_ns
            if self.duration and elapsed_ns > self.duration * 1e9:
                return
            yield Timed(
                msg.topic,
                msg.data,
                msg.log_ns,
                elapsed_ns / self.rate * 1e-9,
                msg.log_ns + self.offset_ns if self.sim_time else None,
                self.stamped[msg.topic] and not self.sim_time,
            )

    def clock_at(self, elapsed_s: float) -> int:
        """The ``/clock`` value ``elapsed_s`` wall seconds after the first message."""
        assert self.first_log_ns is not None, "no message played yet"
        return int(self.first_log_ns + elapsed_s * self.rate * 1e9) + self.offset_ns


# ---------------------------------------------------------------------------- the outputs bag
def outputs_info(
    source_bag: str,
    mode: str,
    node: str,
    sim_time: bool,
    shift_ns: int,
    stats: Stats,
    rate: float,
    trigger: str,
    noise: str,
) -> dict[str, Any]:
    """How the outputs bag was made (its ``custom_data``, read by ``compare``)."""
    return {
        "source_bag": source_bag,
        "mode": mode,
        "node": node,
        "sim_time": sim_time,
        "stamp_shift_ns": shift_ns,
        "rate": rate,
        "steps": stats.steps,
        "chunks": stats.chunks,
        "rejected_observations": stats.rejected,
        "rejections": stats.rejections,
        "resent_observations": stats.resent,
        "skipped_frames": stats.skipped,
        "too_spread_observations": stats.too_spread,
        "trigger": trigger,
        "noise": noise,
        "published": stats.published,
    }


def summary(output: str, counts: dict[str, int], stats: Stats) -> str:
    """The closing line: what the outputs bag holds and how the observations went."""
    walls = sorted(stats.step_wall_s)
    extra = f", median step {walls[len(walls) // 2] * 1000:.0f} ms" if walls else ""
    written = ", ".join(f"{t}: {n}" for t, n in sorted(counts.items()))
    rejected = ""
    if stats.rejected:
        stamps = ", ".join(str(r["stamp_ns"]) for r in stats.rejections[:5])
        more = ", ..." if stats.rejected > 5 else ""
        rejected = f" (stamps {stamps}{more})"
    return (
        f"wrote {output} ({written}); {stats.steps} observations: "
        f"{stats.chunks} chunks, {stats.rejected} rejected by the node"
        f"{rejected}, {stats.resent} re-sent{extra}"
    )
