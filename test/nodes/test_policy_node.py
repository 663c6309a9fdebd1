"""The policy node as a separate process, fed over real DDS (one node for the whole module).

What is checked: chunk stamps/names/shapes; command rate and jitter (generous bounds, never
absolute latency); that the published commands are exactly what the pure-Python scheduler
gives for the chunks the node published and the times it received them (so latency
compensation and blending are the unit-tested ones); skipped actions with old stamps;
continuity at chunk boundaries; stale / missing / malformed inputs -> no command, WARN/ERROR,
recovery; run-time num_steps, dry_run, pause/resume/reset; diagnostics contents.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from snapflow_ros.control import ActionLimits, BlendConfig, CommandLoop, skipped_actions

from .harness import (
    ACTIONS,
    Harness,
    chunk_actions,
    domain_id,
    fed_node_process,
    header_ns,
    wait_for,
    write_params,
)

DOMAIN = domain_id(1)
RATE = 20.0
DT = 1.0 / RATE
HORIZON = 10
LIMIT = 100.0


@pytest.fixture(scope="module")
def running(tiny_smolvla_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("policy_node")
    params = write_params(
        tmp / "params.yaml",
        {
            "policy_path": str(tiny_smolvla_dir),
            "control_rate": RATE,
            "num_steps": 1,
            "torch_threads": 1,
            "input_timeout": 1.0,
            "status_rate": 4.0,
            "blend.mode": "linear",
            "limits.lower": [-LIMIT],
            "limits.upper": [LIMIT],
            "limits.max_delta": [],
            "task.text": "",
        },
    )
    with fed_node_process(params, DOMAIN, tmp / "node.log") as running:
        yield running


@pytest.fixture
def node(running):
    """The running harness, back in the good state (commands flowing) before each test."""
    harness, proc = running
    harness.feed.mode = "good"
    harness.feed.silent = set()
    harness.feed.stamp_offset = 0.0
    harness.set_params(dry_run=False, num_steps=1)
    harness.trigger("resume")
    harness.wait_commands(3, timeout=60)
    assert proc.alive()
    return harness


def measure(seconds: float) -> tuple[int, int]:
    """Let the system run for a measurement window; returns (start_ns, end_ns)."""
    start = time.time_ns()
    time.sleep(seconds)
    return start, time.time_ns()


def wait_quiet(harness: Harness, quiet: float, timeout: float) -> int:
    """Wait until no command has arrived for ``quiet`` s; returns the time that began."""

    def quiet_since():
        cmds = harness.snapshot(harness.commands)
        last = cmds[-1].recv_ns if cmds else 0
        return last if time.time_ns() - last > quiet * 1e9 else None

    return wait_for(quiet_since, timeout, f"commands to stop for {quiet} s")


# ------------------------------------------------------------------------------- replay
def replay(harness: Harness, since_ns: int):
    """Re-run the node's scheduling offline from the chunks it published after ``since_ns``.

    Returns [(command_msg, TickResult, plan_before_or_None, (merged_event, its actions) or
    None)].

    One consistent cut of three streams that arrive on different topics: the chunk events
    are read first; the node merges chunks one at a time and sends their events in merge
    order, so every merge before the last event read is known, and only commands ticked
    before that merge are replayed. The chunk messages (sent just before their events, on
    another topic) are then awaited for every published event read; messages that arrived
    later than the events read are left out.
    """
    all_events = harness.events("chunk")
    published = [e for e in all_events if e.published]
    chunks = wait_for(
        lambda: (c := harness.snapshot(harness.chunks)) is not None
        and len(c) >= len(published)
        and (c,),
        10,
        f"the chunk messages of {len(published)} published chunk events",
    )[0]
    actions_of = {}
    # the node publishes each chunk message just before its event: pair them in order
    for ev, rec in zip(published, chunks, strict=False):
        assert header_ns(rec.msg) == ev.stamp_ns, "chunk messages and events out of step"
        actions_of[id(ev)] = chunk_actions(rec.msg)
    events = [e for e in all_events if e.received_ns > since_ns and id(e) in actions_of]
    merges = [(ev.received_ns, ev.stamp_ns, actions_of[id(ev)], ev) for ev in events]
    merges.sort(key=lambda m: m[0])
    cut_ns = max((e.received_ns for e in all_events), default=0)  # the last merge known
    loop = CommandLoop(
        dt=DT,
        action_dim=len(ACTIONS),
        blend=BlendConfig("linear"),
        limits=ActionLimits.build(len(ACTIONS), [-LIMIT], [LIMIT]),
    )
    first_merge = merges[0][0] if merges else None
    commands = [
        c
        for c in harness.snapshot(harness.commands)
        if first_merge is not None and first_merge < header_ns(c.msg) < cut_ns
    ]
    out = []
    i = 0
    for cmd in commands:
        t_ns = header_ns(cmd.msg)
        before, merged = None, None
        while i < len(merges) and merges[i][0] < t_ns:
            received, stamp, actions, ev = merges[i]
            before = loop.scheduler.plan
            res = loop.add_chunk(actions, stamp * 1e-9, received * 1e-9)
            assert res.skipped == ev.skipped and res.overlap == ev.overlap, ev
            merged = (ev, actions)
            i += 1
        out.append((cmd, loop.tick(t_ns * 1e-9), before, merged))
    return out, events


# ------------------------------------------------------------------------------- tests
def test_chunks_have_capture_stamps_names_and_shapes(node):
    since = time.time_ns()
    recs = wait_for(
        lambda: (c := node.snapshot(node.chunks, since)) and len(c) >= 3 and c, 30, "3 chunks"
    )
    published = set(node.image_stamps)
    for rec in recs:
        msg = rec.msg
        assert list(msg.joint_names) == ACTIONS
        assert len(msg.points) == HORIZON
        stamp = header_ns(msg)
        assert stamp in published, "chunk stamp must be the capture time of an input"
        assert stamp < rec.recv_ns
        for k, point in enumerate(msg.points):
            assert len(point.positions) == len(ACTIONS)
            assert np.all(np.isfinite(point.positions))
            ns = point.time_from_start.sec * 10**9 + point.time_from_start.nanosec
            assert ns == round(k * DT * 1e9)


def _jitter_problems(cmds: list, seconds: float) -> list[str]:
    """What is wrong with one window of commands (empty: rate and jitter are within bounds)."""
    if len(cmds) < 0.5 * seconds * RATE:
        return [f"only {len(cmds)} commands in {seconds} s"]
    intervals = np.diff(np.array([header_ns(c.msg) for c in cmds]) * 1e-9)
    problems = []
    if not abs(np.median(intervals) - DT) < 0.2 * DT:
        problems.append(f"median interval {np.median(intervals):.4f} s")
    if not np.percentile(np.abs(intervals - DT), 75) < 0.5 * DT:
        problems.append(f"p75 deviation {np.percentile(np.abs(intervals - DT), 75):.4f} s")
    if not intervals.max() < 1.0:
        problems.append(f"a gap of {intervals.max():.2f} s")
    return problems


@pytest.mark.timing
def test_commands_at_control_rate_with_bounded_jitter(node):
    """Tick times (command stamps) at the control rate, jitter within generous bounds.

    A shared 2-core box can stall a process for seconds: a window spoilt by such a stall is
    measured again (at most 3 windows, each reason printed); the bounds stay as they are.
    """
    seconds = 4.0
    for attempt in range(3):
        start, end = measure(seconds)
        cmds = [c for c in node.snapshot(node.commands, start) if c.recv_ns <= end]
        problems = _jitter_problems(cmds, seconds)
        if not problems:
            break
        print(f"window {attempt + 1} spoilt ({'; '.join(problems)}), measuring again")
    report = node.latest_report()
    info = {
        k: getattr(report, k)
        for k in ("counters", "latency_s", "replan_threshold_s", "problems", "command_rate_hz")
    }
    assert not problems, f"{problems}: {info}"
    # the node's own rate meter agrees (its 5 s window may reach back before this window)
    assert report.command_rate_hz > 0.5 * RATE, info
    assert list(cmds[-1].msg.name) == ACTIONS
    values = np.array([list(c.msg.position) for c in cmds])
    assert np.all(np.isfinite(values)) and np.all(np.abs(values) <= LIMIT)


def test_commands_are_the_scheduled_blended_chunks(node):
    """Exact replay: skipped actions, blending and per-tick indices match the scheduler."""
    reset_ns = node.trigger("reset") and node.events("reset")[-1].t_ns
    for _ in range(3):  # measure longer if a stall of the shared CI box starved the window
        measure(4.0)
        ticks, events = replay(node, reset_ns)
        if len(events) >= 3 and len(ticks) >= 20:
            break
    assert len(events) >= 3 and len(ticks) >= 20
    for ev in events:
        assert ev.skipped == skipped_actions(
            ev.received_ns * 1e-9, ev.stamp_ns * 1e-9, DT, ev.horizon
        )
        assert ev.skipped >= 1  # action 0 is due at capture time: always in the past
    for cmd, res, _, _ in ticks:
        assert res.source == "plan", "the node commanded where the scheduler had no action"
        np.testing.assert_allclose(cmd.msg.position, res.command, rtol=0, atol=1e-9)
        assert res.index >= 1
    assert any(ev.overlap > 0 for ev in events), "no overlapping chunks were blended"


def test_latency_compensation_skips_actions_of_old_observations(node):
    node.feed.stamp_offset = -0.3  # observations 0.3 s old when they arrive (timeout 1 s)
    measure(0.5)
    reset_ns = node.trigger("reset") and node.events("reset")[-1].t_ns
    measure(3.0)
    ticks, events = replay(node, reset_ns)
    assert len(events) >= 3 and ticks
    for ev in events:
        age = (ev.received_ns - ev.stamp_ns) * 1e-9
        assert age >= 0.3
        assert ev.skipped >= 6  # 0.3 s at 20 Hz: actions 0..5 are in the past
        assert ev.skipped == skipped_actions(ev.received_ns * 1e-9, ev.stamp_ns * 1e-9, DT, HORIZON)
    for cmd, res, _, _ in ticks:
        assert res.source == "plan" and res.index >= 6
        np.testing.assert_allclose(cmd.msg.position, res.command, rtol=0, atol=1e-9)


def test_blending_is_continuous_at_chunk_boundaries(node):
    """At a boundary the command interpolates between the old plan and the new chunk."""
    reset_ns = node.trigger("reset") and node.events("reset")[-1].t_ns
    measure(4.0)
    ticks, _ = replay(node, reset_ns)
    blended = 0
    current = None
    for cmd, res, before, merged in ticks:
        if merged is not None:
            current = (*merged, before)
        if current is None or current[2] is None:
            continue
        ev, actions, old_plan = current
        i = res.index - ev.skipped
        if not 0 <= i < ev.overlap:
            continue  # past the overlap: the new chunk alone
        # the old plan's action for the new action's due time (what blending mixes with)
        old = old_plan.value_at(ev.stamp_ns * 1e-9 + res.index * DT)
        new = actions[res.index]
        w = (i + 1) / (ev.overlap + 1)  # linear blending weight of the new chunk
        assert 0 < w < 1
        np.testing.assert_allclose(cmd.msg.position, old + w * (new - old), rtol=0, atol=1e-9)
        blended += 1
    assert blended >= 3, "too few commands fell in an overlap between chunks"


@pytest.mark.parametrize(
    ("mode", "level", "text"),
    [
        ("stale", 1, "stale"),
        ("silent_wrist", 1, "camera wrist"),
        ("bad_encoding", 2, "yuv422"),
        ("bad_size", 2, "bytes"),
        ("nan_joint", 2, "NaN"),
        ("missing_joint", 2, "lacks joints"),
    ],
)
def test_bad_inputs_give_no_command_then_recover(node, mode, level, text):
    """No command (and no chunk) once the node sees the bad input; WARN/ERROR; recovery.

    Exact, not a timing window: the node's status reports, its control ticks and its input
    callbacks run on one executor thread and judge the inputs the same way, so once a report
    stamped ``t`` names the problem, no tick after ``t`` may command and no chunk triggered
    after ``t`` may exist (the input stays bad meanwhile). ``wait_quiet``'s deadline bounds
    how long after the switch the commands may go on at all (a silent camera's last image
    stays usable until input_timeout, 1 s, has passed).
    """
    if mode == "silent_wrist":
        node.feed.silent = {"wrist"}
    else:
        node.feed.mode = mode
    switch = time.time_ns()
    wait_quiet(node, quiet=1.0, timeout=15)
    start, _ = measure(1.0)
    assert not node.snapshot(node.commands, start), "a command was published from bad inputs"
    held = wait_for(
        lambda: next(
            (
                r
                for r in node.events("periodic", switch)
                if any(text in p["message"] for p in r.problems)
            ),
            None,
        ),
        10,
        f"a status report naming {text!r}",
    )
    assert not held.healthy, held.problems
    late = [c for c in node.snapshot(node.commands, switch) if header_ns(c.msg) > held.t_ns]
    assert not late, f"{len(late)} commands ticked after the node reported {held.problems}"
    fresh = [e for e in node.events("chunk", switch) if e.trigger_ns > held.t_ns]
    assert not fresh, "a chunk was computed from bad inputs"
    diag = node.latest_diagnostics()
    lvl, message, values = diag["inputs"]
    assert lvl == level, diag["inputs"]
    assert text in message
    assert diag["commands"][0] == 1  # WARN: holding
    report = node.latest_report()
    assert not report.healthy and report.state == "active"
    # good data again: the node recovers by itself
    node.feed.mode = "good"
    node.feed.silent = set()
    node.wait_commands(5, timeout=30)
    diag = wait_for(
        lambda: (d := node.latest_diagnostics()) and d["inputs"][0] == 0 and d,
        30,
        "inputs OK again",
    )
    assert diag["inputs"][1] == "all inputs fresh"


def test_num_steps_changes_at_run_time(node):
    res = node.set_params(num_steps=3)
    assert res[0].successful
    since = time.time_ns()
    wait_for(
        lambda: any(e.num_steps == 3 for e in node.events("chunk", since)), 30, "a 3-step chunk"
    )
    bad = node.set_params(num_steps=-1)
    assert not bad[0].successful and "num_steps" in bad[0].reason
    assert node.get_params("num_steps") == [3]
    node.set_params(num_steps=1)
    since = time.time_ns()
    wait_for(
        lambda: any(e.num_steps == 1 for e in node.events("chunk", since)), 30, "a 1-step chunk"
    )


def test_dry_run_computes_but_publishes_nothing(node):
    assert node.set_params(dry_run=True)[0].successful
    wait_quiet(node, quiet=1.0, timeout=15)
    start, _ = measure(1.5)
    assert not node.snapshot(node.commands, start)
    assert not node.snapshot(node.chunks, start)
    assert node.events("chunk", start), "inference must keep running in dry_run"
    report = node.latest_report()
    assert report.dry_run and report.counters["dry_run_commands"] > 0
    node.set_params(dry_run=False)
    node.wait_commands(3, timeout=30)


def test_pause_resume_and_reset_services(node):
    res = node.trigger("pause")
    assert res.success and res.message == "paused"
    wait_quiet(node, quiet=1.0, timeout=15)
    start, _ = measure(1.0)
    assert not node.snapshot(node.commands, start)
    assert not node.events("chunk", start + int(3e8))
    assert node.latest_report().paused
    assert node.trigger("resume").success
    node.wait_commands(3, timeout=30)
    assert node.trigger("reset").success
    report = node.latest_report()
    assert report.counters["commands"] < 4 * RATE  # counters restarted at the reset


def test_diagnostics_report_latency_rates_and_inputs(node):
    measure(1.0)
    diag = wait_for(
        lambda: (d := node.latest_diagnostics()) and d["inputs"][0] == 0 and d,
        20,
        "healthy diagnostics",
    )
    level, _, inference = diag["inference"]
    assert level == 0
    for stage in ("preprocess", "prefix", "denoise", "postprocess", "total", "overhead"):
        for q in ("p50", "p95", "p99"):
            assert float(inference[f"latency_{stage}_{q}_ms"]) >= 0.0
    assert float(inference["chunk_rate_hz"]) > 0
    assert inference["num_steps"] == "1"
    _, _, inputs = diag["inputs"]
    for name in ("camera.front", "camera.wrist", "state.joints"):
        assert 0.0 <= float(inputs[f"{name}.age_ms"]) < 1000.0
    _, _, commands = diag["commands"]
    assert float(commands["command_rate_hz"]) > 0  # its value: the timing test above
    for key in ("jitter_std_ms", "jitter_p99_ms", "starvation_events", "starved_ticks"):
        assert key in commands
