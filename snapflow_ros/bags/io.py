"""rosbag2 reading and writing with ``rosbags`` (no ROS install, no rclpy).

* :class:`BagReader` opens a rosbag2 folder (``metadata.yaml`` + mcap or sqlite3 files) or a
  bare ``.mcap`` / ``.db3`` file and turns every failure (missing, truncated, corrupt) into a
  :class:`~snapflow_ros.bags.errors.BagError` with one clear sentence.
* :class:`BagWriter` writes a standard rosbag2 (metadata version 9, as ROS 2 Jazzy/Kilted):
  message definitions and RIHS01 type hashes come from rosbags' Kilted type store, or from the
  ``.msg`` files of the installed message packages for types the store does not know.
* Header stamps are read and rewritten directly in the serialized CDR bytes (the header is
  the first field of the message), so recorded bytes are replayed untouched otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag2,
    MessageDefinitionFormat,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from snapflow_ros.bags.errors import BagError

STORAGES = ("mcap", "sqlite3")
HEADER_TYPE = "std_msgs/msg/Header"
CUSTOM_KEY = "snapflow_replay"  # custom_data key of bags written by `replay`
IGNORED_TOPICS = ("/rosout", "/parameter_events")  # recorded only when named
_STORE: Typestore | None = None


# ============================================================================ types
def typestore() -> Typestore:
    """The shared rosbags type store (ROS 2 Kilted definitions + registered extras)."""
    global _STORE
    if _STORE is None:
        _STORE = get_typestore(Stores.ROS2_KILTED)
    return _STORE


def _share_dirs() -> list[Path]:
    dirs = [Path(sys.prefix) / "share"]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            dirs.append(Path(prefix) / "share")
    return dirs


def _referenced_types(fielddefs: Any) -> set[str]:
    """Message type names referenced by rosbags field definitions (recursively in arrays)."""
    names: set[str] = set()

    def walk(desc: Any) -> None:
        kind, rest = desc
        if kind.name == "NAME":
            names.add(rest)
        elif kind.name in ("ARRAY", "SEQUENCE"):
            walk(rest[0])

    for _consts, fields in fielddefs.values():
        for _name, desc in fields:
            walk(desc)
    return names


def ensure_type(msgtype: str) -> None:
    """Make ``msgtype`` (``pkg/msg/Name``) known to :func:`typestore`.

    Types missing from rosbags' store are read from ``share/<pkg>/msg/<Name>.msg`` of the
    installed packages (this venv, then ``AMENT_PREFIX_PATH``), with their dependencies.
    """
    store = typestore()
    pending = [msgtype]
    while pending:
        name = pending.pop()
        if name in store.fielddefs:
            continue
        parts = name.split("/")
        if len(parts) != 3 or parts[1] != "msg":
            raise BagError(f"unknown message type {name!r} (expected pkg/msg/Name)")
        text = None
        for share in _share_dirs():
            path = share / parts[0] / "msg" / f"{parts[2]}.msg"
            if path.is_file():
                text = path.read_text()
                break
        if text is None:
            raise BagError(
                f"unknown message type {name!r}: not in rosbags' ROS 2 Kilted types and no "
                f"{parts[0]}/msg/{parts[2]}.msg found in {', '.join(map(str, _share_dirs()))}"
            )
        defs = get_types_from_msg(text, name)
        store.register(defs)
        pending += [t for t in _referenced_types(defs) if t not in store.fielddefs]


def type_hash(msgtype: str) -> str:
    """RIHS01 hash of ``msgtype`` as the type store defines it."""
    ensure_type(msgtype)
    return typestore().hash_rihs01(msgtype)


def has_header(msgtype: str) -> bool:
    """True when the first field of ``msgtype`` is a ``std_msgs/Header``."""
    try:
        ensure_type(msgtype)
    except BagError:
        return False
    fields = typestore().fielddefs[msgtype][1]
    return bool(fields) and fields[0][1][0].name == "NAME" and fields[0][1][1] == HEADER_TYPE


def register_connection_types(connections: Iterable[Connection]) -> None:
    """Register the message definitions stored in a bag for types the store lacks."""
    store = typestore()
    for conn in connections:
        if conn.msgtype in store.fielddefs:
            continue
        if conn.msgdef.format == MessageDefinitionFormat.MSG and conn.msgdef.data:
            try:
                store.register(get_types_from_msg(conn.msgdef.data, conn.msgtype))
                continue
            except Exception:  # fall back to the installed .msg files
                pass
        # unknown types can still be replayed raw; only decoding them fails
        with contextlib.suppress(BagError):
            ensure_type(conn.msgtype)


def deserialize(data: bytes | memoryview, msgtype: str, topic: str = "") -> Any:
    """Decode one CDR message with the type store (BagError if it does not fit the type)."""
    try:
        ensure_type(msgtype)
        return typestore().deserialize_cdr(data, msgtype)
    except BagError:
        raise
    except Exception as exc:
        where = f" on {topic}" if topic else ""
        raise BagError(f"cannot decode a {msgtype} message{where}: {exc}") from None


# ============================================================================ header stamps
def _endian(data: bytes | memoryview) -> str:
    if len(data) < 12:
        raise BagError(f"message too short for a header stamp ({len(data)} bytes)")
    return "<" if data[1] & 1 else ">"


def header_stamp_ns(data: bytes | memoryview) -> int:
    """Header stamp (ns) of a serialized message whose first field is a ``Header``."""
    sec, nsec = struct.unpack_from(_endian(data) + "iI", data, 4)
    return sec * 1_000_000_000 + nsec


def with_header_stamp(data: bytes | memoryview, stamp_ns: int) -> bytes:
    """A copy of a serialized header-first message with its header stamp set to ``stamp_ns``."""
    out = bytearray(data)
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    struct.pack_into(_endian(out) + "iI", out, 4, sec, nsec)
    return bytes(out)


# ============================================================================ QoS
_ZERO = QosTime(0, 0)


def make_qos(reliable: bool = True, transient_local: bool = False, depth: int = 10) -> Qos:
    """A rosbags QoS profile (durations unspecified, automatic liveliness)."""
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=int(depth),
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=_ZERO,
        lifespan=_ZERO,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=_ZERO,
        avoid_ros_namespace_conventions=False,
    )


def latched(profiles: Iterable[Qos]) -> bool:
    """True when every offered profile is transient local (a latched topic)."""
    profiles = list(profiles)
    return bool(profiles) and all(p.durability == QosDurability.TRANSIENT_LOCAL for p in profiles)


# ============================================================================ reading
@dataclass
class TopicInfo:
    """One topic of a bag."""

    name: str
    msgtype: str
    count: int
    type_hash: str
    qos: list[Qos] = field(default_factory=list)


@dataclass
class BagMessage:
    """One stored message: topic, type, log time (ns) and CDR bytes."""

    topic: str
    msgtype: str
    log_ns: int
    data: bytes


def _describe(exc: BaseException) -> str:
    """One line from an exception (the first line of multi-line parser messages)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = (lines[0] if lines else type(exc).__name__)[:300]
    return text if text.endswith(".") else text + "."


class BagReader:
    """A rosbag2 opened for reading; use as a context manager."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        if self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
            raise BagError(f"{self.path} is not a rosbag2 folder (no metadata.yaml)")
        self.custom_data: dict[str, str] = {}
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:
            raise BagError(
                f"cannot open bag {self.path} (missing, truncated or corrupt file): "
                f"{_describe(exc)}"
            ) from None
        if self.path.is_dir():
            try:
                meta = yaml.safe_load((self.path / "metadata.yaml").read_text())
                info = meta.get("rosbag2_bagfile_information", {})
                self.custom_data = dict(info.get("custom_data") or {})
            except Exception:
                self.custom_data = {}
        for conn in self._reader.connections:
            if not isinstance(conn.ext, ConnectionExtRosbag2):
                raise BagError(f"{self.path} is not a rosbag2 bag")
            if conn.ext.serialization_format != "cdr":
                raise BagError(
                    f"topic {conn.topic}: serialization {conn.ext.serialization_format!r} "
                    "is not supported (cdr only)"
                )
        register_connection_types(self._reader.connections)

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying reader."""
        if self._reader is not None:
            with contextlib.suppress(Exception):
                self._reader.close()
            self._reader = None

    @property
    def topics(self) -> dict[str, TopicInfo]:
        """Topics of the bag by name (one type per topic)."""
        out: dict[str, TopicInfo] = {}
        for conn in self._reader.connections:
            qos = list(conn.ext.offered_qos_profiles)
            if conn.topic in out:
                info = out[conn.topic]
                if info.msgtype != conn.msgtype:
                    raise BagError(
                        f"topic {conn.topic} has two types in {self.path}: "
                        f"{info.msgtype} and {conn.msgtype}"
                    )
                info.count += conn.msgcount
                info.qos += qos
                continue
            out[conn.topic] = TopicInfo(conn.topic, conn.msgtype, conn.msgcount, conn.digest, qos)
        return out

    @property
    def start_ns(self) -> int:
        """Log time of the first message."""
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        """Log time just after the last message."""
        return int(self._reader.end_time)

    @property
    def message_count(self) -> int:
        """Number of messages."""
        return int(self._reader.message_count)

    def replay_info(self) -> dict[str, Any]:
        """What ``replay`` stored in the bag's custom data (empty for other bags)."""
        text = self.custom_data.get(CUSTOM_KEY)
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            raise BagError(f"{self.path}: custom_data {CUSTOM_KEY} is not JSON") from None
        return value if isinstance(value, dict) else {}

    def require(self, topic: str, msgtype: str | None = None) -> TopicInfo:
        """The topic's info; BagError if missing or of another type."""
        topics = self.topics
        if topic not in topics:
            have = ", ".join(sorted(topics)) or "none"
            raise BagError(f"topic {topic} is not in bag {self.path} (topics: {have})")
        info = topics[topic]
        if msgtype is not None and info.msgtype != msgtype:
            raise BagError(
                f"type mismatch on {topic} in {self.path}: {info.msgtype}, expected {msgtype}"
            )
        return info

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """Messages in log-time order (of ``topics`` only, if given)."""
        wanted = None if topics is None else set(topics)
        conns = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
        if not conns:
            return
        try:
            for conn, log_ns, data in self._reader.messages(connections=conns):
                yield BagMessage(conn.topic, conn.msgtype, int(log_ns), bytes(data))
        except BagError:
            raise
        except Exception as exc:
            raise BagError(
                f"bag {self.path} is damaged (truncated or corrupt): {_describe(exc)}"
            ) from None


# ============================================================================ writing
class BagWriter:
    """A new rosbag2 (mcap or sqlite3) that is always finalised by :meth:`close`."""

    def __init__(self, path: str | os.PathLike, storage: str = "mcap") -> None:
        self.path = Path(path)
        if storage not in STORAGES:
            raise BagError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
        if self.path.exists():
            raise BagError(f"output {self.path} exists already (choose a new path)")
        if not self.path.parent.is_dir():
            raise BagError(f"output folder {self.path.parent} does not exist")
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer: Writer | None = Writer(self.path, version=9, storage_plugin=plugin)
        try:
            self._writer.open()
        except Exception as exc:
            raise BagError(f"cannot create bag {self.path}: {_describe(exc)}") from None
        self._conns: dict[str, Connection] = {}
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True once the bag is finalised."""
        return self._writer is None

    def add_topic(
        self, topic: str, msgtype: str, qos: Iterable[Qos] = (), expected_hash: str = ""
    ) -> None:
        """Declare a topic (definition from the type store; ``expected_hash`` is checked)."""
        with self._lock:
            self._add_topic(topic, msgtype, qos, expected_hash)

    def _add_topic(self, topic: str, msgtype: str, qos: Iterable[Qos], expected_hash: str) -> None:
        if self._writer is None:
            raise BagError(f"bag {self.path} is closed")
        if topic in self._conns:
            if self._conns[topic].msgtype != msgtype:
                raise BagError(
                    f"type mismatch on {topic}: {self._conns[topic].msgtype} and {msgtype}"
                )
            return
        ensure_type(msgtype)
        digest = typestore().hash_rihs01(msgtype)
        if expected_hash and expected_hash.startswith("RIHS01_") and expected_hash != digest:
            raise BagError(
                f"type mismatch on {topic}: the publishers' {msgtype} definition (hash "
                f"{expected_hash[:19]}...) differs from the known one ({digest[:19]}...)"
            )
        self._conns[topic] = self._writer.add_connection(
            topic, msgtype, typestore=typestore(), offered_qos_profiles=list(qos)
        )
        self.counts[topic] = 0

    def write(self, topic: str, log_ns: int, data: bytes | memoryview) -> None:
        """Store one serialized message of an added topic."""
        with self._lock:
            if self._writer is None:
                return  # closed (e.g. a late callback during shutdown): drop silently
            self._writer.write(self._conns[topic], int(log_ns), bytes(data))
            self.counts[topic] += 1

    def set_custom_data(self, key: str, value: str) -> None:
        """Store a string in the bag's ``custom_data`` (written at close)."""
        with self._lock:
            if self._writer is not None:
                self._writer.set_custom_data(key, value)

    def close(self) -> None:
        """Write the index/summary and ``metadata.yaml`` (idempotent)."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()


def bag_size(path: str | os.PathLike) -> int:
    """Bytes used by a bag folder (or file)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
