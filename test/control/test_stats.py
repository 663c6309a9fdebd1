"""Latency percentiles, rates, jitter and log throttling, exact values."""

from __future__ import annotations

import math

import pytest

from snapflow_ros.control import LatencyStats, RateMeter, Throttle, percentiles


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
