"""``diagnostic_msgs/DiagnosticArray`` from the policy node's status report (no
diagnostic_updater).

Three statuses, named ``<node>: inference``, ``<node>: inputs`` and ``<node>: commands``;
their key/values are listed in ``docs/policy_node.md``.
"""

from __future__ import annotations

import math
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from snapflow_ros.control.status import PeriodicEvent
from snapflow_ros.ros_conversions import ns_to_stamp_fields

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def fmt(value: Any) -> str:
    """A diagnostic value as text (floats with 3 decimals, None as empty)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if not math.isfinite(value) else f"{value:.3f}"
    return str(value)


def _status(node: str, part: str, level: bytes, message: str, values: dict[str, Any]):
    return DiagnosticStatus(
        level=level,
        name=f"{node}: {part}",
        message=message,
        hardware_id=node,
        values=[KeyValue(key=k, value=fmt(v)) for k, v in values.items()],
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def build_diagnostics(
    report: PeriodicEvent,
    node: str,
    stamp_ns: int,
    inference_error: str = "",
    recent_starvation: bool = False,
) -> DiagnosticArray:
    """The node's three diagnostic statuses for ``report`` (the controller's report)."""
    arr = DiagnosticArray()
    arr.header.stamp.sec, arr.header.stamp.nanosec = ns_to_stamp_fields(stamp_ns)
    counters = report.counters
    state = report.state
    running = report.active and not report.paused
    idle_msg = "paused" if report.paused else state

    # --- inference: per-stage latency percentiles, chunk rate, errors
    values: dict[str, Any] = {
        "state": state,
        "num_steps": report.num_steps,
        "chunk_rate_hz": report.chunk_rate_hz,
    }
    for stage, summary in report.latency_s.items():
        for q in ("p50", "p95", "p99"):
            values[f"latency_{stage}_{q}_ms"] = _ms(summary[q])
    for key in (
        "chunks_accepted",
        "chunks_late",
        "chunks_early",
        "actions_skipped",
        "inference_errors",
        "discarded_chunks",
    ):
        values[key] = counters.get(key, 0)
    if report.configure_error:
        level, msg = ERROR, f"configure failed: {report.configure_error}"
    elif inference_error:
        level, msg = ERROR, inference_error
    elif not running:
        level, msg = OK, idle_msg
    else:
        level, msg = OK, f"{report.chunk_rate_hz or 0.0:.1f} chunks/s"
    arr.status.append(_status(node, "inference", level, msg, values))

    # --- inputs: ages, counts, errors
    values = {}
    for name, info in report.inputs.items():
        values[f"{name}.age_ms"] = _ms(info["age_s"])
        values[f"{name}.count"] = info["count"]
        values[f"{name}.errors"] = info["errors"]
    values["task"] = report.task
    values["input_faults"] = counters.get("input_faults", 0)
    severities = {p["severity"] for p in report.problems}
    text = "; ".join(p["message"] for p in report.problems)
    if not report.active:
        level, msg = OK, state
    elif "fault" in severities:
        level, msg = ERROR, text
    elif severities:
        level, msg = WARN, text
    else:
        level, msg = OK, "all inputs fresh"
    arr.status.append(_status(node, "inputs", level, msg, values))

    # --- commands: rate, jitter, starvation, holds
    jitter = report.command_jitter_s
    values = {
        "command_rate_hz": report.command_rate_hz,
        "control_rate_hz": report.control_rate,
        "jitter_std_ms": _ms(jitter["std"]),
        "jitter_p99_ms": _ms(jitter["p99_abs_dev"]),
        "starvation_events": counters.get("starvation_events", 0),
        "starved_ticks": counters.get("starved_ticks", 0),
        "plan_waits": counters.get("plan_waits", 0),
        "clock_jumps": counters.get("clock_jumps", 0),
        "holds": counters.get("holds", 0),
        "commands": counters.get("commands", 0),
        "dry_run": report.dry_run,
        "paused": report.paused,
        "replan_threshold_s": report.replan_threshold_s,
        "remaining_s": report.remaining_s,
    }
    if not running:
        level, msg = OK, idle_msg
    elif not report.healthy:
        level, msg = WARN, "holding: inputs not usable"
    elif recent_starvation:
        level, msg = WARN, "starving: chunks arrive too late for the control rate"
    else:
        level, msg = (
            OK,
            f"{report.command_rate_hz or 0.0:.1f} commands/s"
            + (" (dry run)" if report.dry_run else ""),
        )
    arr.status.append(_status(node, "commands", level, msg, values))
    return arr
