"""Rolling latency percentiles, event rates, jitter and throttled logs (plain Python,
thread-safe)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

import numpy as np


def percentiles(values: Iterable[float], qs: Iterable[float] = (50, 95, 99)) -> dict[str, float]:
    """``{"p50": ..., ...}`` with numpy's linear interpolation; NaN when there are no values."""
    arr = np.asarray(list(values), np.float64)
    out = {}
    for q in qs:
        key = f"p{q:g}"
        out[key] = float(np.percentile(arr, q)) if arr.size else math.nan
    return out


class LatencyStats:
    """The last ``window`` samples of several named latencies (seconds)."""

    def __init__(self, window: int = 200) -> None:
        self.window = int(window)
        self._samples: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        """Record one sample of ``name``."""
        with self._lock:
            self._samples.setdefault(name, deque(maxlen=self.window)).append(float(seconds))

    def add_many(self, samples: dict[str, float]) -> None:
        """Record one sample for each name in ``samples``."""
        for name, value in samples.items():
            self.add(name, value)

    def names(self) -> list[str]:
        """Names that have samples, in insertion order."""
        with self._lock:
            return list(self._samples)

    def values(self, name: str) -> list[float]:
        """The samples of ``name`` (oldest first)."""
        with self._lock:
            return list(self._samples.get(name, ()))

    def summary(self, name: str) -> dict[str, float]:
        """p50/p95/p99 (and count) of ``name``."""
        vals = self.values(name)
        return {**percentiles(vals), "count": float(len(vals))}

    def clear(self) -> None:
        """Forget every sample."""
        with self._lock:
            self._samples.clear()


class RateMeter:
    """Rate of events over a sliding time window, and the jitter of their intervals."""

    def __init__(self, window: float = 5.0, nominal_period: float | None = None) -> None:
        if window <= 0:
            raise ValueError("window must be > 0")
        self.window = float(window)
        self.nominal_period = nominal_period
        self._times: deque[float] = deque()
        self._start: float | None = None
        self._lock = threading.Lock()

    def start(self, now: float) -> None:
        """Start measuring at ``now`` (rates before a full window use the elapsed time)."""
        with self._lock:
            self._start = float(now)
            self._times.clear()

    def record(self, t: float) -> None:
        """Record an event at time ``t`` (times must not go backwards by much)."""
        with self._lock:
            if self._start is None:
                self._start = float(t)
            self._times.append(float(t))
            self._trim(t)

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()

    def rate(self, now: float) -> float:
        """Events per second in ``(now - window, now]`` (0 when nothing happened)."""
        with self._lock:
            self._trim(now)
            if self._start is None:
                return 0.0
            span = min(self.window, now - self._start)
            if span <= 0:
                return 0.0
            return len(self._times) / span

    def intervals(self) -> np.ndarray:
        """Intervals between the events still in the window."""
        with self._lock:
            return np.diff(np.asarray(self._times, np.float64))

    def jitter(self) -> dict[str, float]:
        """Interval statistics: mean, std, and p99/max of |interval - nominal period|."""
        iv = self.intervals()
        if iv.size == 0:
            return {
                "mean": math.nan,
                "std": math.nan,
                "p99_abs_dev": math.nan,
                "max_abs_dev": math.nan,
            }
        nominal = self.nominal_period if self.nominal_period else float(np.mean(iv))
        dev = np.abs(iv - nominal)
        return {
            "mean": float(np.mean(iv)),
            "std": float(np.std(iv)),
            "p99_abs_dev": float(np.percentile(dev, 99)),
            "max_abs_dev": float(np.max(dev)),
        }

    def clear(self) -> None:
        """Forget every event."""
        with self._lock:
            self._times.clear()
            self._start = None


class Throttle:
    """Allow one event per ``period`` seconds for each key (throttled log lines)."""

    def __init__(self, period: float = 2.0) -> None:
        self.period = float(period)
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def ready(self, key: str, now: float) -> tuple[bool, int]:
        """``(True, n_suppressed_since_last)`` when ``key`` may fire at ``now``."""
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False, 0
            self._last[key] = now
            return True, self._suppressed.pop(key, 0)


class ThrottledLog:
    """Log lines limited per key: at most one every ``period`` seconds, with the number of
    suppressed ones appended to the next (``emit(level, message)`` writes the line)."""

    def __init__(
        self,
        emit: Callable[[str, str], None],
        period: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit = emit
        self._throttle = Throttle(period)
        self._monotonic = monotonic

    def __call__(self, key: str, level: str, message: str) -> None:
        """Log ``message`` at ``level`` unless ``key`` logged within the period."""
        ok, suppressed = self._throttle.ready(key, self._monotonic())
        if not ok:
            return
        if suppressed:
            message += f" (+{suppressed} similar)"
        self._emit(level, message)


class ChangeLog:
    """Log lines about values that change (the task, ``num_steps``), bounded in rate.

    :meth:`changed` logs the first change of a key at once, then at most one line per
    ``period`` seconds for that key: a change made meanwhile is kept (only the latest) and
    logged by :meth:`flush` once the period is over, saying how many earlier changes were
    not logged. A flood of changes thus gives two lines per period at most, and the log
    always ends with the value in force. Whoever calls :meth:`flush` on a timer calls
    ``flush(force=True)`` before that timer stops (the owner goes away): a line held back
    must not come out later from a timer, nor be lost.
    """

    def __init__(
        self,
        emit: Callable[[str, str], None],
        period: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit = emit
        self.period = float(period)
        self._monotonic = monotonic
        self._last: dict[str, float] = {}
        self._pending: dict[str, tuple[str, str, int]] = {}  # key -> level, message, changes
        self._lock = threading.Lock()

    def changed(self, key: str, level: str, message: str) -> None:
        """``key`` changed; ``message`` (at ``level``) describes its new value."""
        with self._lock:
            _, _, count = self._pending.get(key, ("", "", 0))
            self._pending[key] = (level, message, count + 1)
        self.flush(key)

    def flush(self, key: str | None = None, force: bool = False) -> None:
        """Log the pending change of ``key`` (of every key: None) whose period is over
        (``force``: now, whatever the period)."""
        now = self._monotonic()
        lines = []
        with self._lock:
            for k in [key] if key is not None else list(self._pending):
                last = self._last.get(k)
                if k not in self._pending:
                    continue
                if not force and last is not None and now - last < self.period:
                    continue
                level, message, count = self._pending.pop(k)
                self._last[k] = now
                if count > 1:
                    plural = "s" if count > 2 else ""
                    message += f" (+{count - 1} earlier change{plural} not logged)"
                lines.append((level, message))
        for level, message in lines:
            self._emit(level, message)
