"""Shared helpers of the bag tests: golden paths and tolerances, the golden policy node, CLI runs,
bag rewriting, an MCAP reader, a stall probe for the timing tests."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml

from snapflow_ros.bags.chunks import read_chunks
from snapflow_ros.bags.io import BagMessage, BagReader, BagWriter, deserialize, typestore

from ..nodes.harness import Harness, LoggedProcess, NodeProcess, console_script

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
    from snapflow_ros.policies.tiny import TinySpec

    spec = dict(golden_info()["checkpoint"]["tiny_spec"])
    spec["camera_names"] = tuple(spec["camera_names"])
    return TinySpec(**spec)


def golden_params() -> dict[str, Any]:
    """The golden policy node's parameters (``policy_params.yaml``; ``policy_path`` empty)."""
    params = yaml.safe_load((GOLDEN / "policy_params.yaml").read_text())
    return params["/**/policy_node"]["ros__parameters"]


@contextmanager
def golden_node(tiny_cache: Path, tmp: Path, domain: int) -> Iterator[tuple[Harness, NodeProcess]]:
    """The golden policy node (golden parameters and tiny checkpoint) on sim time, a separate
    process on ``domain``, and a harness joined to it; on exit the node must stop with exit
    code 0 and no traceback in its log (``tmp / "node.log"``)."""
    from snapflow_ros.policies.tiny import ensure_tiny_checkpoint

    ckpt = ensure_tiny_checkpoint(golden_spec(), tiny_cache)
    params = yaml.safe_load((GOLDEN / "policy_params.yaml").read_text())
    params["/**/policy_node"]["ros__parameters"]["policy_path"] = str(ckpt)
    params_file = tmp / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    proc = NodeProcess(params_file, domain, tmp / "node.log", ["use_sim_time:=true"])
    harness = Harness(domain)
    try:
        yield harness, proc
    finally:
        harness.close()
        rc = proc.stop()
        log = proc.log()
    assert rc == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def golden_camera_topics() -> list[str]:
    """Image input topics of the golden bag."""
    return [t for t, ty in golden_info()["inputs"].items() if ty == "sensor_msgs/msg/Image"]


# ---------------------------------------------------------------------------- across CPUs
EPS32 = float(np.finfo(np.float32).eps)  # 2**-23 = 1.19e-7: one ulp at magnitude 1
ULPS_PER_STEP = 8  # K in golden_action_tolerance
WEIGHT_NORM_RTOL = 8 * EPS32  # see weights_fingerprint


def golden_action_tolerance() -> float:
    """Largest absolute action difference accepted between a replay and the committed chunks.

    The golden chunks were computed on one CPU; the same torch build rounds differently on
    another (other SIMD widths and BLAS / oneDNN code paths change summation orders and the
    vectorised exp/log/sin, and each machine builds the tiny checkpoint itself, whose random
    weights differ by a few ulps). Each of the N Euler steps of a chunk adds such rounding
    differences to the actions: tol = K * eps32 * M * N, with M the largest |action| in the
    committed chunks (1.0: the golden limits), N the golden policy's denoising steps (10),
    K = 8 ulps per step: 9.5e-6. Measured on an Intel Xeon (AVX-512) against the committed
    chunks, max abs difference: ATEN_CPU_CAPABILITY=avx2 2.4e-7, =default 3.6e-7 (4.5e-7 on
    the live session's chunks), default + MKL_ENABLE_INSTRUCTIONS=SSE4_2 +
    ONEDNN_MAX_CPU_ISA=SSE41 5.4e-7: at least 17x below. A real change is far above it: one
    denoising step instead of ten gives an RMSE > 1e-3.
    """
    steps = golden_spec().num_steps
    magnitude = 0.0
    for bag in (GOLDEN_OUTPUTS, GOLDEN_INPUTS):
        with BagReader(bag) as reader:
            for chunk in read_chunks(reader, CHUNK_TOPIC):
                magnitude = max(magnitude, float(np.abs(chunk.actions).max()))
    return ULPS_PER_STEP * EPS32 * magnitude * steps


def weights_fingerprint(checkpoint: Path) -> dict[str, Any]:
    """What identifies a tiny checkpoint's weights on any CPU.

    ``structure``: SHA-256 of every tensor's name, dtype and shape (exact: the architecture);
    ``norms``: each tensor's L2 norm (float64, names in sorted order), compared with
    :data:`WEIGHT_NORM_RTOL`. A SHA-256 of the weights themselves holds only on the CPU that
    made them: torch's random sampler has per-ISA kernels, so the same seed gives weights a
    few ulps apart elsewhere (measured with ATEN_CPU_CAPABILITY=default: 87 of 108 tensors
    differ, by at most 5.2e-7 of the tensor's largest value; norms by at most 1.8e-8
    relative, 53x below the tolerance). Another seed moves the norms of the 87 randomly
    initialised tensors of the golden checkpoint by 3.2e-4 to 0.23 relative (the other 21 are
    constant-initialised); another architecture changes ``structure``.
    """
    from safetensors.numpy import load_file

    tensors = load_file(str(Path(checkpoint) / "model.safetensors"))
    names = sorted(tensors)
    layout = "\n".join(f"{n} {tensors[n].dtype} {list(tensors[n].shape)}" for n in names)
    return {
        "structure": hashlib.sha256(layout.encode()).hexdigest(),
        "tensors": len(names),
        "parameters": int(sum(t.size for t in tensors.values())),
        "norms": [float(np.linalg.norm(tensors[n].astype(np.float64).ravel())) for n in names],
    }


def fingerprint_differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Why ``actual`` is not the checkpoint ``expected`` describes (empty: it is)."""
    if expected["structure"] != actual["structure"]:
        return [
            f"architecture: {actual['tensors']} tensors / {actual['parameters']} parameters, "
            f"expected {expected['tensors']} / {expected['parameters']} (or other names/shapes)"
        ]
    return [
        f"tensor #{i}: norm {got!r}, expected {want!r}"
        for i, (want, got) in enumerate(zip(expected["norms"], actual["norms"], strict=True))
        if abs(got - want) > WEIGHT_NORM_RTOL * abs(want)
    ]


# ---------------------------------------------------------------------------- timing
class StallProbe:
    """Measures how late this process wakes from short sleeps while open: the machine's stalls.

    A timing check is only judged on a quiet interval: when :attr:`worst_s` exceeds what the
    check allows for, the measurement says nothing about the code under test.
    """

    def __init__(self, period_s: float = 0.01) -> None:
        self.period_s = period_s
        self.worst_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            time.sleep(self.period_s)
            self.worst_s = max(self.worst_s, time.monotonic() - start - self.period_s)

    def __enter__(self) -> StallProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


T = TypeVar("T")


def on_a_quiet_interval(
    measure: Callable[[], T], quiet_s: float, attempts: int = 3
) -> tuple[T, float]:
    """Run ``measure`` until no stall longer than ``quiet_s`` happened during it (at most
    ``attempts`` times, printing why it measures again); returns its result and the worst
    stall of the run returned, which a timing window has to allow for on top of its own
    margin when no attempt was quiet."""
    for attempt in range(1, attempts + 1):
        with StallProbe() as probe:
            result = measure()
        if probe.worst_s <= quiet_s or attempt == attempts:
            return result, probe.worst_s
        print(
            f"timing: the machine stalled {probe.worst_s:.2f} s (> {quiet_s} s) during "
            f"attempt {attempt}; measuring again"
        )
    raise AssertionError("unreachable")
