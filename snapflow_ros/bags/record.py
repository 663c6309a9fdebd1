"""``record``: raw subscriptions written to a standard rosbag2 (mcap or sqlite3) with rosbags.

::

    record /camera/front/image_raw /joint_states /task -o my_bag
    record --regex '^/(camera|policy_node)/' --regex '^/joint_states$' -o my_bag --duration 30
    record --all -o my_bag --storage sqlite3

Topics are subscribed as soon as the graph shows a publisher (their type and offered QoS come
from the graph: reliable only if every publisher is, transient local only if every publisher
is, so latched topics such as the task are caught), or at once for ``--type TOPIC:=TYPE``.
Messages are stored as received (CDR bytes) with the receive time. Ctrl-C, SIGTERM or
``--duration`` (counted from the first message) stop it; the bag is always finalised
(summary, ``metadata.yaml``).
Exit codes: 0 recorded, 2 bad input (output exists, unknown type, type mismatch).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rosbags.interfaces import Qos, QosHistory

from snapflow_ros.bags.errors import BagError
from snapflow_ros.bags.io import (
    IGNORED_TOPICS,
    STORAGES,
    BagWriter,
    bag_size,
    ensure_type,
    make_qos,
)
from snapflow_ros.client import absolute

Handler = Callable[[str, bytes, int], None]


def import_message(msgtype: str) -> type:
    """The rclpy message class of ``pkg/msg/Name`` (BagError if not installed)."""
    parts = msgtype.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or parts[1] != "msg":
        raise BagError(f"bad message type {msgtype!r} (expected pkg/msg/Name)")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.msg"), parts[2])
    except (ImportError, AttributeError):
        raise BagError(
            f"message type {msgtype} is not installed (no Python package "
            f"{parts[0]}.msg with {parts[2]})"
        ) from None


def bag_qos(profile: QoSProfile) -> Qos:
    """The rosbags form of a publisher's offered QoS, as the graph reports it (like rosbag2:
    the graph gives no history depth, so history/depth are stored as unknown/0)."""
    qos = make_qos(
        reliable=profile.reliability == ReliabilityPolicy.RELIABLE,
        transient_local=profile.durability == DurabilityPolicy.TRANSIENT_LOCAL,
        depth=int(profile.depth or 0),
    )
    if profile.history != HistoryPolicy.KEEP_LAST or not profile.depth:
        qos = qos._replace(history=QosHistory.UNKNOWN, depth=int(profile.depth or 0))
    return qos


def subscription_qos(endpoints: list[Any], depth: int = 100) -> QoSProfile:
    """A QoS that matches every publisher (rosbag2's rule) and gets latched messages."""
    profiles = [e.qos_profile for e in endpoints]
    reliable = bool(profiles) and all(p.reliability == ReliabilityPolicy.RELIABLE for p in profiles)
    latched = bool(profiles) and all(
        p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in profiles
    )
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def endpoint_hash(endpoint: Any) -> str:
    """RIHS01 type hash of a graph endpoint ('' if unknown)."""
    text = str(getattr(endpoint, "topic_type_hash", "") or "")
    return text if text.startswith("RIHS01_") else ""


class TopicRecorder:
    """Raw subscriptions of ``node`` into a :class:`BagWriter` (also used by ``replay``).

    ``clock()`` gives the log time of each message (default: the node's clock); a per-topic
    ``handler(topic, data, log_ns)`` replaces writing for that topic.
    """

    def __init__(
        self,
        node: Node,
        writer: BagWriter,
        clock: Callable[[], int] | None = None,
        on_first: Callable[[str], None] | None = None,
    ) -> None:
        self.node = node
        self.writer = writer
        self.clock = clock or (lambda: node.get_clock().now().nanoseconds)
        self.on_first = on_first  # called with the topic when its first message arrives
        self.types: dict[str, str] = {}
        self._subs: dict[str, Any] = {}

    @property
    def topics(self) -> list[str]:
        """Subscribed topics."""
        return list(self._subs)

    def subscribe(
        self,
        topic: str,
        msgtype: str,
        offered: list[Qos],
        qos: QoSProfile,
        expected_hash: str = "",
        handler: Handler | None = None,
    ) -> None:
        """Add ``topic`` to the bag and subscribe to its raw bytes."""
        cls = import_message(msgtype)
        self.writer.add_topic(topic, msgtype, offered, expected_hash)
        write = self.writer.write

        first = [True]

        def callback(data: bytes) -> None:
            log_ns = self.clock()
            if first[0]:
                first[0] = False
                if self.on_first is not None:
                    self.on_first(topic)
            if handler is not None:
                handler(topic, data, log_ns)
            else:
                write(topic, log_ns, data)

        self._subs[topic] = self.node.create_subscription(cls, topic, callback, qos, raw=True)
        self.types[topic] = msgtype

    def subscribe_from_graph(
        self,
        topic: str,
        msgtype: str,
        handler: Handler | None = None,
        endpoints: list[Any] | None = None,
    ) -> bool:
        """Subscribe with the publishers' QoS and type hash; False while none is known."""
        pubs = endpoints if endpoints is not None else self.node.get_publishers_info_by_topic(topic)
        pubs = [p for p in pubs if p.topic_type == msgtype]
        if not pubs:
            return False
        hashes = {endpoint_hash(p) for p in pubs} - {""}
        self.subscribe(
            topic,
            msgtype,
            [bag_qos(p.qos_profile) for p in pubs],
            subscription_qos(pubs),
            next(iter(hashes)) if len(hashes) == 1 else "",
            handler,
        )
        return True

    def matched(self) -> bool:
        """True when every subscription has matched at least one publisher."""
        return all(sub.get_publisher_count() > 0 for sub in self._subs.values())

    def close(self) -> None:
        """Destroy the subscriptions (the writer stays open)."""
        for sub in self._subs.values():
            self.node.destroy_subscription(sub)
        self._subs = {}


# ============================================================================ the executable
def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``record``."""
    p = argparse.ArgumentParser(
        prog="record", description="Record ROS 2 topics into a rosbag2 (mcap or sqlite3)."
    )
    p.add_argument("topics", nargs="*", help="topics to record")
    p.add_argument("-o", "--output", required=True, help="bag folder to create (must not exist)")
    p.add_argument(
        "-e",
        "--regex",
        action="append",
        default=[],
        help="also record topics matching this regular expression (re.search)",
    )
    p.add_argument("-a", "--all", action="store_true", help="record every topic")
    p.add_argument(
        "-x",
        "--exclude",
        action="append",
        default=[],
        help="skip topics matching this regular expression",
    )
    p.add_argument(
        "--type",
        action="append",
        default=[],
        metavar="TOPIC:=TYPE",
        help="subscribe at once with this type (e.g. /task:=std_msgs/msg/String)",
    )
    p.add_argument("-s", "--storage", choices=STORAGES, default="mcap")
    p.add_argument(
        "-d",
        "--duration",
        type=float,
        help="stop this many seconds after the first recorded message",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=60.0,
        help="with --duration: give up (exit 2) if no message came within this many seconds",
    )
    p.add_argument("--use-sim-time", action="store_true", help="log times from /clock")
    p.add_argument("--quiet", action="store_true", help="no per-topic messages")
    return p


class _Recording:
    def __init__(self, args: argparse.Namespace, node: Node, writer: BagWriter) -> None:
        self.args = args
        self.node = node
        self.first_message: float | None = None  # monotonic time of the first message
        self.recorder = TopicRecorder(node, writer, on_first=self._on_first)
        self.explicit = [absolute(t) for t in args.topics]
        self.given: dict[str, str] = {}
        for item in args.type:
            topic, sep, msgtype = item.partition(":=")
            if not sep or not topic or not msgtype:
                raise BagError(f"--type expects TOPIC:=TYPE, got {item!r}")
            self.given[absolute(topic)] = msgtype
        self.regexes = [re.compile(r) for r in args.regex]
        self.excludes = [re.compile(r) for r in args.exclude]

    def _on_first(self, topic: str) -> None:
        if self.first_message is None:
            self.first_message = time.monotonic()
        self.log(f"first message on {topic}")

    def wanted(self, topic: str) -> bool:
        if any(r.search(topic) for r in self.excludes):
            return False
        if topic in self.explicit or topic in self.given:
            return True
        if topic in IGNORED_TOPICS:
            return False
        return self.args.all or any(r.search(topic) for r in self.regexes)

    def log(self, text: str) -> None:
        if not self.args.quiet:
            print(f"record: {text}", flush=True)

    def start_given(self) -> None:
        for topic, msgtype in self.given.items():
            ensure_type(msgtype)
            qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)
            self.recorder.subscribe(topic, msgtype, [], qos)
            self.log(f"recording {topic} ({msgtype}, given type)")

    def discover(self) -> None:
        for topic, types in self.node.get_topic_names_and_types():
            if not self.wanted(topic):
                continue
            if topic in self.given:
                wrong = [t for t in types if t != self.given[topic]]
                if wrong:
                    raise BagError(
                        f"type mismatch on {topic}: --type says {self.given[topic]}, "
                        f"the graph has {', '.join(wrong)}"
                    )
                continue
            if topic in self.recorder.types:
                if any(t != self.recorder.types[topic] for t in types):
                    raise BagError(
                        f"type mismatch on {topic}: recording "
                        f"{self.recorder.types[topic]}, a publisher now offers "
                        f"{', '.join(types)}"
                    )
                continue
            if len(types) != 1:
                raise BagError(
                    f"topic {topic} has several types ({', '.join(types)}); "
                    "choose one with --type"
                )
            if self.recorder.subscribe_from_graph(topic, types[0]):
                self.log(f"recording {topic} ({types[0]})")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``record``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.topics or args.regex or args.all or args.type):
        parser.error("give topics, --regex, --type or --all")
    try:
        writer = BagWriter(args.output, args.storage)
    except BagError as exc:
        print(f"record: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    context = Context()
    rclpy.init(args=["--ros-args"], context=context, signal_handler_options=SignalHandlerOptions.NO)
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    node = rclpy.create_node(
        f"bag_record_{os.getpid()}",
        context=context,
        parameter_overrides=[Parameter("use_sim_time", value=True)] if args.use_sim_time else [],
    )
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    code = 0
    rec = None
    try:
        rec = _Recording(args, node, writer)
        rec.start_given()
        rec.log(f"recording to {args.output} ({args.storage}); Ctrl-C to stop")
        start = time.monotonic()
        next_scan = 0.0
        while not stop.is_set() and context.ok():
            now = time.monotonic()
            if args.duration is not None:
                if rec.first_message is not None and now - rec.first_message >= args.duration:
                    break
                if rec.first_message is None and now - start >= args.wait:
                    raise BagError(
                        f"no message on the requested topics within {args.wait:g} s "
                        "(wrong names, other ROS_DOMAIN_ID, or nothing published)"
                    )
            if now >= next_scan:
                rec.discover()
                next_scan = now + 0.2
            executor.spin_once(timeout_sec=0.05)
    except BagError as exc:
        print(f"record: error: {exc}", file=sys.stderr)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        if rec is not None:
            rec.recorder.close()
        writer.close()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    counts = writer.counts
    missing = [t for t in (rec.explicit if rec else []) if t not in counts]
    total = sum(counts.values())
    print(
        f"record: wrote {total} messages on {len(counts)} topics to {args.output} "
        f"({bag_size(Path(args.output)) / 1e6:.2f} MB)",
        flush=True,
    )
    for topic, n in sorted(counts.items()):
        print(f"  {topic}: {n}")
    if missing and code == 0:
        print(f"record: warning: never saw a publisher for {', '.join(missing)}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
