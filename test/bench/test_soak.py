"""The soak benchmark end to end, shortened: it runs, the node survives every bad-input class,
no non-finite command goes out, and bad inputs show as unhealthy windows. The soak publishes
malformed inputs, so it runs on a domain of this session, and on its own it never joins the
caller's domain."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from snapflow_ros.bench.soak import BAD_INPUTS, isolate
from snapflow_ros.dds_domains import LOCK_DIR_ENV, PORTABLE_DOMAINS, lock_dir, reserve_domains

from ..nodes.harness import domain_id, tool_env_with_cache

DOMAIN = domain_id(25)


@pytest.mark.ros
@pytest.mark.slow
def test_short_soak_runs_every_bad_input_class(tiny_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    cycle = 4.0
    bad = cycle * len(BAD_INPUTS)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snapflow_ros.bench.soak",
            "--good",
            "4",
            "--bad",
            str(bad),
            "--cycle",
            str(cycle),
            "--window",
            "1",
            "--domain-id",
            str(DOMAIN),
            "--out",
            str(out),
        ],
        env=tool_env_with_cache(tiny_cache, tmp_path, DOMAIN),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["domain_id"] == DOMAIN
    assert f"ROS_DOMAIN_ID={DOMAIN}, localhost-only discovery" in proc.stdout
    assert result["node_alive_at_end"]
    summary = result["summary"]
    assert set(summary) == {"good", "recovery", *BAD_INPUTS}
    assert all(s["nonfinite_commands"] == 0 for s in summary.values())
    assert summary["good"]["command_rate_hz_mean"] > 0
    # Malformed input holds: the status reports of those windows are not all healthy.
    for name in ("nan_joint", "duplicate_joint", "future_stamp", "huge_task"):
        healthy = summary[name]["healthy_fraction"]
        assert healthy is not None and healthy < 1.0, (name, summary[name])
    assert out.with_suffix(".png").stat().st_size > 0


def test_soak_avoids_the_callers_graph_by_default(monkeypatch, tmp_path):
    """Without --domain-id: localhost discovery (even where the shell asks for the subnet),
    no static peers, and a free domain other than the shell's, held while the soak runs."""
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path))  # no other holders: a known first pick
    first = reserve_domains(1)
    caller = first.ids[0]
    first.release()
    monkeypatch.setenv("ROS_DOMAIN_ID", str(caller))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "SUBNET")
    monkeypatch.setenv("ROS_STATIC_PEERS", "192.168.1.7")
    domain, reservation = isolate(None)
    try:
        assert domain != caller and domain in PORTABLE_DOMAINS
        assert os.environ["ROS_DOMAIN_ID"] == str(domain)
        assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
        assert "ROS_STATIC_PEERS" not in os.environ
        lock_file = lock_dir() / f"domain-{domain}.lock"
        with open(lock_file) as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another holder is refused
    finally:
        assert reservation is not None
        reservation.release()


def test_soak_warns_when_told_to_use_the_callers_domain(monkeypatch, capsys):
    monkeypatch.setenv("ROS_DOMAIN_ID", "60")
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "SUBNET")
    assert isolate(60) == (60, None)
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert "--domain-id 60 is this shell's ROS_DOMAIN_ID" in capsys.readouterr().err
    assert isolate(61) == (61, None)
    assert "warning" not in capsys.readouterr().err
