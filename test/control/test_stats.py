"""Latency percentiles, rates, jitter and log throttling, exact values."""

from __future__ import annotations

import math

import pytest

from snapflow_ros.control import ChangeLog, LatencyStats, RateMeter, Throttle, percentiles


def test_percentiles_exact():
    p = percentiles(range(1, 101))
    assert p == {"p50": 50.5, "p95": pytest.approx(95.05), "p99": pytest.approx(99.01)}
    assert math.isnan(percentiles([])["p50"])


def test_latency_window_keeps_last_samples():
    s = LatencyStats(window=10)
    for i in range(100):
        s.add("total", float(i))
    assert s.values("total") == [float(i) for i in range(90, 100)]
    assert s.summary("total")["p50"] == 94.5 and s.summary("total")["count"] == 10
    s.add_many({"prefix": 1.0, "denoise": 2.0})
    assert s.names() == ["total", "prefix", "denoise"]
    s.clear()
    assert s.names() == []


def test_rate_meter_counts_events_in_window():
    m = RateMeter(window=2.0, nominal_period=0.1)
    m.start(0.0)
    for i in range(1, 31):  # 10 Hz for 3 s
        m.record(i * 0.1)
    assert m.rate(3.0) == pytest.approx(20 / 2.0)  # events in (1.0, 3.0]
    assert m.rate(10.0) == 0.0  # nothing recent
    assert m.rate(0.0) == 0.0


def test_rate_before_full_window_uses_elapsed_time():
    m = RateMeter(window=5.0)
    m.start(0.0)
    for i in range(1, 11):
        m.record(i * 0.1)
    assert m.rate(1.0) == pytest.approx(10.0)


def test_jitter_exact():
    m = RateMeter(window=100.0, nominal_period=0.1)
    for t in (0.0, 0.1, 0.2, 0.35, 0.45):
        m.record(t)
    j = m.jitter()
    assert j["mean"] == pytest.approx(0.1125)
    assert j["max_abs_dev"] == pytest.approx(0.05)
    assert RateMeter().jitter()["std"] != RateMeter().jitter()["std"]  # NaN when empty


def test_throttle_per_key():
    th = Throttle(period=1.0)
    assert th.ready("a", 0.0) == (True, 0)
    assert th.ready("a", 0.5) == (False, 0)
    assert th.ready("b", 0.5) == (True, 0)
    assert th.ready("a", 0.7) == (False, 0)
    assert th.ready("a", 1.1) == (True, 2)


def test_a_change_held_back_is_logged_by_a_forced_flush_and_not_again():
    """A line held back for the period was only logged by the next timed flush: up to 2 s
    later, from a timer of a node that might be shutting down (a test's line printed outside
    any test's output), or never."""
    now = [0.0]
    lines: list[tuple[str, str]] = []
    log = ChangeLog(lambda level, message: lines.append((level, message)), 2.0, lambda: now[0])
    log.changed("task", "info", "task: 'a'")
    now[0] = 0.5
    log.changed("task", "info", "task: 'b'")
    log.changed("task", "info", "task: 'c'")
    log.flush()  # within the period: held back
    assert lines == [("info", "task: 'a'")]
    log.flush(force=True)
    assert lines[1:] == [("info", "task: 'c' (+1 earlier change not logged)")]
    now[0] = 10.0
    log.flush()
    log.flush(force=True)
    assert len(lines) == 2  # nothing left for a later flush
