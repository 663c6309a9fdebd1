"""``compare`` as CI runs it: report, plot, gate exit codes, and clean errors on bad input."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from snapflow_ros.bags.io import BagReader, BagWriter, header_stamp_ns

from .helpers import (
    CHUNK_TOPIC,
    GOLDEN_INPUTS,
    GOLDEN_OUTPUTS,
    assert_clean_error,
    edit_chunk,
    rewrite_bag,
    run_cli,
)

STRICT = ["--max-action-rmse", "1e-5", "--max-missing", "0", "--max-extra", "0"]


def _golden_chunk_stamps_and_compute_times() -> tuple[list[int], list[float]]:
    """From the golden outputs, read with rosbags' own reader (not the bag layer under test):
    the chunks' observation stamps, and the compute time the node reported for each chunk."""
    store = get_typestore(Stores.ROS2_KILTED)
    stamps, totals = [], []
    with Reader(GOLDEN_OUTPUTS) as reader:
        for conn, _, raw in reader.messages():
            if conn.topic == CHUNK_TOPIC:
                stamp = store.deserialize_cdr(raw, conn.msgtype).header.stamp
                stamps.append(stamp.sec * 10**9 + stamp.nanosec)
            elif conn.topic == "/policy_node/status":
                event = json.loads(store.deserialize_cdr(raw, conn.msgtype).data)
                if event.get("event") == "chunk":
                    totals.append(event["timings"]["total"])
    return stamps, totals


def test_identical_bags_pass_with_report_and_plot(tmp_path):
    report, plot = tmp_path / "r.json", tmp_path / "r.png"
    run = run_cli(
        [
            "compare",
            str(GOLDEN_OUTPUTS),
            str(GOLDEN_OUTPUTS),
            *STRICT,
            "--max-latency-p95",
            "30",
            "--min-matched",
            "20",
            "--report",
            str(report),
            "--plot",
            str(plot),
        ]
    )
    assert run.rc == 0, run.text
    assert "PASS" in run.out
    data = json.loads(report.read_text())
    n = data["chunks"]["reference"]
    assert data["chunks"]["matched"] == data["chunks"]["output"] == n >= 20
    assert data["chunks"]["missing"] == data["chunks"]["extra"] == 0
    assert data["actions"]["overall"] == {"mean_abs": 0.0, "max_abs": 0.0, "rmse": 0.0}
    assert len(data["actions"]["per_dimension"]) == 7
    assert len(data["actions"]["rmse_per_step"]) == 10
    # the report's numbers against the recorded data itself
    stamps, compute_s = _golden_chunk_stamps_and_compute_times()
    assert len(stamps) == len(compute_s) == n
    inference = data["latency_s"]["inference"]
    assert inference["count"] == n
    assert inference["max"] == max(compute_s)
    rank = 0.95 * (n - 1)  # p95 lies between the two values around this rank
    ordered = sorted(compute_s)
    assert ordered[math.floor(rank)] <= inference["p95"] <= ordered[math.ceil(rank)]
    # lock-step replay of a LIBERO episode: one chunk per control step of 0.05 s sim time
    assert np.unique(np.diff(stamps)).tolist() == [50_000_000]
    assert data["chunks"]["rate_hz"] == pytest.approx(20.0, rel=1e-9)
    assert data["gate"]["passed"] is True
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


def test_a_small_action_change_fails_the_gate_and_names_the_dimension(tmp_path):
    def nudge(msg):
        if msg.topic != CHUNK_TOPIC:
            return msg.data

        def change(traj):
            values = traj.points[3].positions.copy()
            values[2] += 1e-3  # third dimension, one action of every chunk
            traj.points[3].positions = values

        return edit_chunk(msg.data, change)

    changed = rewrite_bag(GOLDEN_OUTPUTS, tmp_path / "changed", nudge)
    report = tmp_path / "r.json"
    run = run_cli(["compare", str(changed), str(GOLDEN_OUTPUTS), *STRICT, "--report", str(report)])
    assert run.rc == 1, run.text
    data = json.loads(report.read_text())
    dims = data["actions"]["per_dimension"]
    third = list(dims)[2]
    assert "FAIL" in run.out and "action RMSE" in run.out and f"dimension {third}" in run.out
    assert dims[third]["max_abs"] == pytest.approx(1e-3, rel=1e-6)
    assert all(v["max_abs"] == 0 for k, v in dims.items() if k != third)
    assert data["actions"]["rmse_per_step"][3] > 0
    assert data["actions"]["rmse_per_step"][0] == 0
    assert data["gate"]["passed"] is False
    # the same bags pass a looser gate: the threshold is what decides
    assert (
        run_cli(["compare", str(changed), str(GOLDEN_OUTPUTS), "--max-action-abs", "2e-3"]).rc == 0
    )


def test_missing_and_extra_chunks_are_counted_and_gated(tmp_path):
    seen = []

    def drop_two(msg):
        if msg.topic == CHUNK_TOPIC:
            seen.append(header_stamp_ns(msg.data))
            if len(seen) in (3, 7):
                return None
        return msg.data

    fewer = rewrite_bag(GOLDEN_OUTPUTS, tmp_path / "fewer", drop_two)
    report = tmp_path / "r.json"
    run = run_cli(["compare", str(fewer), str(GOLDEN_OUTPUTS), *STRICT, "--report", str(report)])
    assert run.rc == 1 and "2 missing chunks > 0" in run.out, run.text
    data = json.loads(report.read_text())
    assert data["chunks"]["missing_stamps_ns"] == [seen[2], seen[6]]
    assert data["chunks"]["extra"] == 0
    assert data["actions"]["overall"]["rmse"] == 0.0  # the matched ones are identical
    # swapped roles: the two are extra
    run = run_cli(["compare", str(GOLDEN_OUTPUTS), str(fewer), "--max-extra", "1"])
    assert run.rc == 1 and "2 extra chunks > 1" in run.out, run.text
    assert run_cli(["compare", str(GOLDEN_OUTPUTS), str(fewer), "--max-extra", "2"]).rc == 0


def test_latency_and_rate_gates(tmp_path):
    base = ["compare", str(GOLDEN_OUTPUTS), str(GOLDEN_OUTPUTS)]
    run = run_cli([*base, "--max-latency-p95", "1e-6"])
    assert run.rc == 1 and "inference latency p95" in run.out, run.text
    run = run_cli([*base, "--max-latency-p95", "1.0", "--latency-metric", "receive"])
    assert run.rc == 0, run.text
    run = run_cli([*base, "--min-chunk-rate", "1000"])
    assert run.rc == 1 and "chunk rate" in run.out, run.text


def test_comparing_with_the_live_recording_matches_by_stamp(tmp_path):
    report = tmp_path / "r.json"
    run = run_cli(
        [
            "compare",
            str(GOLDEN_OUTPUTS),
            str(GOLDEN_INPUTS),
            "--stamp-tolerance",
            "0.2",
            "--report",
            str(report),
        ]
    )
    assert run.rc == 0, run.text  # no gate given: only the report
    data = json.loads(report.read_text())
    assert data["chunks"]["reference"] >= 1
    assert data["chunks"]["matched"] + data["chunks"]["missing"] == data["chunks"]["reference"]
    assert data["chunks"]["matched"] >= 1


# ---------------------------------------------------------------------------- bad input
def test_truncated_and_corrupt_bags_are_clean_errors(tmp_path):
    truncated = shutil.copytree(GOLDEN_OUTPUTS, tmp_path / "truncated")
    mcap = next(truncated.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    assert_clean_error(
        run_cli(["compare", str(truncated), str(GOLDEN_OUTPUTS)]),
        "truncated or corrupt",
        str(truncated),
    )
    garbage = shutil.copytree(GOLDEN_OUTPUTS, tmp_path / "garbage")
    next(garbage.glob("*.mcap")).write_bytes(np.random.default_rng(0).bytes(4096))
    assert_clean_error(run_cli(["compare", str(GOLDEN_OUTPUTS), str(garbage)]), str(garbage))
    bad_meta = shutil.copytree(GOLDEN_OUTPUTS, tmp_path / "bad_meta")
    (bad_meta / "metadata.yaml").write_text("rosbag2_bagfile_information: [1, 2\n")
    assert_clean_error(run_cli(["compare", str(bad_meta), str(GOLDEN_OUTPUTS)]), "metadata.yaml")
    no_file = shutil.copytree(GOLDEN_OUTPUTS, tmp_path / "no_file")
    next(no_file.glob("*.mcap")).unlink()
    assert_clean_error(run_cli(["compare", str(no_file), str(GOLDEN_OUTPUTS)]), "missing")
    (tmp_path / "empty").mkdir()
    assert_clean_error(
        run_cli(["compare", str(tmp_path / "empty"), str(GOLDEN_OUTPUTS)]), "not a rosbag2 folder"
    )
    assert_clean_error(
        run_cli(["compare", str(tmp_path / "nope"), str(GOLDEN_OUTPUTS)]), "does not exist"
    )


def test_missing_topics_and_type_mismatches_are_clean_errors(tmp_path):
    inputs_only = rewrite_bag(
        GOLDEN_INPUTS,
        tmp_path / "inputs_only",
        lambda m: None if m.topic.startswith("/policy_node") else m.data,
    )
    # the chunk topic is declared (0 messages): the reference has no chunks
    assert_clean_error(run_cli(["compare", str(GOLDEN_OUTPUTS), str(inputs_only)]), "no chunks")
    assert_clean_error(
        run_cli(["compare", str(GOLDEN_OUTPUTS), str(GOLDEN_OUTPUTS), "--topic", "/nope"]),
        "topic /nope is not in bag",
    )
    assert_clean_error(
        run_cli(
            ["compare", str(GOLDEN_OUTPUTS), str(GOLDEN_OUTPUTS), "--topic", "/policy_node/status"]
        ),
        "type mismatch on /policy_node/status",
        "trajectory_msgs/msg/JointTrajectory",
    )
    with BagReader(GOLDEN_INPUTS) as reader, BagWriter(tmp_path / "cams") as writer:
        writer.add_topic("/camera/front/image_raw", "sensor_msgs/msg/Image")
        for m in reader.messages(["/camera/front/image_raw"]):
            writer.write(m.topic, m.log_ns, m.data)
    assert_clean_error(
        run_cli(["compare", str(tmp_path / "cams"), str(GOLDEN_OUTPUTS)]),
        "no trajectory_msgs/msg/JointTrajectory",
    )

    def rename(msg):
        if msg.topic != CHUNK_TOPIC:
            return msg.data
        return edit_chunk(msg.data, lambda t: setattr(t, "joint_names", ["x"] * 7))

    renamed = rewrite_bag(GOLDEN_OUTPUTS, tmp_path / "renamed", rename)
    assert_clean_error(
        run_cli(["compare", str(renamed), str(GOLDEN_OUTPUTS)]), "same action dimensions"
    )
    assert run_cli(["compare", str(GOLDEN_OUTPUTS)]).rc == 2  # usage error
