"""Shared helpers of the bag tests: golden paths, CLI runs, bag rewriting, an MCAP reader."""

from __future__ import annotations

import json
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snapflow_ros.bags.io import BagMessage, BagReader, BagWriter, deserialize, typestore

from ..nodes.harness import LoggedProcess, console_script

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "test" / "data" / "golden"
GOLDEN_INPUTS = GOLDEN / "inputs"
GOLDEN_OUTPUTS = GOLDEN / "outputs"
CHUNK_TOPIC = "/policy_node/action_chunk"


@dataclass
class Run:
    """Result of a CLI run."""

    rc: int
    out: str
    err: str

    @property
    def text(self) -> str:
        """stdout + stderr."""
        return self.out + self.err


def run_cli(args: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> Run:
    """Run a console script, capture its output."""
    res = subprocess.run(
        [console_script(args[0]), *args[1:]],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    return Run(res.returncode, res.stdout, res.stderr)


def assert_clean_error(run: Run, *needles: str) -> None:
    """Exit 2, one line on stderr naming ``needles``, no traceback."""
    assert run.rc == 2, run.text
    assert "Traceback" not in run.text, run.text
    lines = [ln for ln in run.err.splitlines() if ln.strip()]
    assert len(lines) == 1, run.err
    for needle in needles:
        assert needle in lines[0], lines[0]


def rewrite_bag(
    src: Path,
    dst: Path,
    transform: Callable[[BagMessage], bytes | None] | None = None,
    types: dict[str, str] | None = None,
    storage: str = "mcap",
    drop: tuple[str, ...] = (),
) -> Path:
    """Copy ``src`` into a new bag without the ``drop`` topics; ``transform`` returns new bytes
    or None (drop the message); ``types`` overrides topic types (``transform`` re-encodes)."""
    with BagReader(src) as reader, BagWriter(dst, storage) as writer:
        kept = [t for t in reader.topics if t not in drop]
        for topic, info in reader.topics.items():
            if topic in drop:
                continue
            writer.add_topic(topic, (types or {}).get(topic, info.msgtype), info.qos)
        for msg in reader.messages(kept):
            data = msg.data if transform is None else transform(msg)
            if data is not None:
                writer.write(msg.topic, msg.log_ns, data)
    return dst


def edit_chunk(data: bytes, fn: Callable[[Any], None]) -> bytes:
    """Decode a JointTrajectory, let ``fn`` change it, encode it again."""
    msg = deserialize(data, "trajectory_msgs/msg/JointTrajectory")
    fn(msg)
    return bytes(typestore().serialize_cdr(msg, "trajectory_msgs/msg/JointTrajectory"))


def golden_info() -> dict[str, Any]:
    """test/data/golden/golden.json."""
    return json.loads((GOLDEN / "golden.json").read_text())


# ---------------------------------------------------------------------------- MCAP (spec reader)
MCAP_MAGIC = b"\x89MCAP0\r\n"
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_METADATA, OP_DATA_END = 1, 2, 3, 4, 12, 15


class _Buf:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> Any:
        (value,) = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return value

    def string(self) -> str:
        n = self.take("I")
        self.pos += n
        return self.data[self.pos - n : self.pos].decode()

    def blob(self) -> bytes:
        n = self.take("I")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def string_map(self) -> dict[str, str]:
        end = self.take("I") + self.pos
        out = {}
        while self.pos < end:
            key = self.string()
            out[key] = self.string()
        return out


def read_mcap_records(path: Path) -> dict[str, Any]:
    """Top-level MCAP records as the spec defines them: header, schemas, channels, metadata."""
    data = path.read_bytes()
    assert data[:8] == MCAP_MAGIC and data[-8:] == MCAP_MAGIC, "bad MCAP magic"
    pos, out = (
        8,
        {
            "header": None,
            "schemas": {},
            "channels": {},
            "metadata": {},
            "footer": False,
            "data_end": False,
        },
    )
    while pos < len(data) - 8:
        op = data[pos]
        (length,) = struct.unpack_from("<Q", data, pos + 1)
        body = _Buf(data[pos + 9 : pos + 9 + length])
        pos += 9 + length
        if op == OP_HEADER:
            out["header"] = (body.string(), body.string())
        elif op == OP_SCHEMA:
            sid = body.take("H")
            out["schemas"][sid] = {
                "name": body.string(),
                "encoding": body.string(),
                "data": body.blob().decode(),
            }
        elif op == OP_CHANNEL:
            cid, sid = body.take("H"), body.take("H")
            out["channels"][cid] = {
                "schema_id": sid,
                "topic": body.string(),
                "encoding": body.string(),
                "metadata": body.string_map(),
            }
        elif op == OP_METADATA:
            name = body.string()
            out["metadata"][name] = body.string_map()
        elif op == OP_DATA_END:
            out["data_end"] = True
        elif op == OP_FOOTER:
            out["footer"] = True
    assert pos == len(data) - 8, "records do not end at the closing magic"
    return out


# ---------------------------------------------------------------------------- processes
class Proc(LoggedProcess):
    """A console script in its own process group, output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        super().__init__([console_script(args[0]), *args[1:]], env, log)


def golden_spec() -> Any:
    """The TinySpec of the golden policy (from golden.json)."""
    from snapflow_ros.fixtures.tiny_checkpoints import TinySpec

    spec = dict(golden_info()["checkpoint"]["tiny_spec"])
    spec["camera_names"] = tuple(spec["camera_names"])
    return TinySpec(**spec)


def golden_camera_topics() -> list[str]:
    """Image input topics of the golden bag."""
    return [t for t, ty in golden_info()["inputs"].items() if ty == "sensor_msgs/msg/Image"]
